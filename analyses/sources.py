"""What an analysis runs on, as the CLIs say it: snapshots (a file, a run directory, a glob), the
zoo model or a random init, and the initialization each is compared with (``analyses.loading``
builds them); where its results go.

Our snapshots describe themselves (``arch``, ``dataset``, ``seed`` optional, and must agree when
given); the reference tool's plain files need ``arch`` and ``dataset`` (and the class subset, the
upscaling and the seed they were trained with).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from analyses.subject import Subject
from utils.paths import dataset_folder, results_dir

OUR_LAYOUT, REFERENCE_LAYOUT = "ours", "reference"
LAYOUTS = (OUR_LAYOUT, REFERENCE_LAYOUT)


@dataclass(frozen=True)
class SourceSettings:
    """``--load-from`` and the flags that describe plain weight files (or build a zoo model / init)."""

    load_from: str = ""
    arch: str | None = None
    dataset: str | None = None
    subsample_classes: int | None = None  # None or 0: the snapshot's, else the dataset's classes
    upscale: bool = False
    seed: int | None = None
    pretrained: bool = False
    download: bool = False
    latest_only: bool = False  # a run directory means its latest snapshot; a glob must match one file
    layout: str = OUR_LAYOUT  # "reference": the reference's epoch labels, so no two files share an epoch
    check_input: bool = True  # a zoo model / random init must run on the dataset's images

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, *, zoo: bool = True, latest_only: bool = False) -> None:
        """The flags of every analysis CLI that say which model to analyse and how it was built.

        ``zoo``: the model may also be a zoo model or a random init (``--pretrained``, ``--download``).
        ``latest_only``: a run directory means its latest snapshot (reinit_layers.py sweeps one snapshot).
        """
        parser.add_argument("--arch", default=None, help="Network architecture. Run without this option (and without --load-from) to see a list of all available archs. Optional with a self-describing snapshot, where it must agree.")
        parser.add_argument("--dataset", default=None, help="Dataset the model was trained on: it sets the classes of the prediction layer (and the data of the analyses that evaluate the model). Optional with a self-describing snapshot, where it must agree.")
        parser.add_argument("--subsample-classes", type=int, default=0, help="Number of classes of DATASET the model was trained on (a class subset); 0 = all of them. Optional with a self-describing snapshot, where it must agree [default = the snapshot's, else 0].")
        if latest_only:  # reinit_layers.py: the one snapshot whose layers are reset
            parser.add_argument("--load-from", default="", help="Load trained network from file (a run directory means its latest epoch snapshot).")
        else:
            parser.add_argument("--load-from", default="", help="Load trained network(s) from a snapshot file, a run directory (every snapshot, in epoch order) or a glob [default = none: --pretrained or a random init].")
        if zoo:
            parser.add_argument("--pretrained", action="store_true", help="Load pretrained architecture on ImageNet from the local model-zoo cache [default=False].")
            parser.add_argument("--download", action="store_true", help="Allow downloading the --pretrained weights (and the dataset, for the analyses that read data) [default = off: offline].")
        else:
            parser.set_defaults(pretrained=False, download=False)
        if latest_only:  # the seed of reinit_layers.py also seeds its --rand draws
            parser.add_argument("--seed", type=int, default=None, help="Pytorch seed. (Optional) If using --load-from, specify the seed the model was trained with (snapshots know it; the flag must agree). It also seeds the --rand initializations [default = the snapshot's, else 0].")
        else:
            parser.add_argument("--seed", type=int, default=None, help="Pytorch seed. (Optional) If using --load-from with plain reference files, specify the seed the model was trained with; without a snapshot it seeds the random init [default = none].")
        parser.add_argument("--upscale", action="store_true", help="The model was trained on images upscaled to 224x224 (plain reference files and random inits; snapshots know, and the flag must agree) [default = off].")
        parser.add_argument("--upscale-padding", action="store_true", help="The model was trained on images upscaled to 112x112 and zero-padded to 224x224 (as --upscale: the input size is 224) [default = off].")
        parser.set_defaults(layout=OUR_LAYOUT)  # add_layout_argument() offers --layout

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, latest_only: bool = False) -> SourceSettings:
        return cls(load_from=args.load_from, arch=args.arch, dataset=args.dataset,
                   subsample_classes=args.subsample_classes, upscale=bool(args.upscale or args.upscale_padding),
                   seed=args.seed, pretrained=args.pretrained, download=args.download, latest_only=latest_only,
                   layout=args.layout)


def print_missing_choice(args: argparse.Namespace, *, needs_dataset: bool = True) -> bool:
    """Without --arch list the architectures; without --dataset the datasets (as the reference does).

    Returns True when something was listed (the CLI then exits 0).
    """
    import datasets
    import models

    if getattr(args, "arch", None) is None:
        print("Supported architectures:\n  " + "\n  ".join(models.list_models()))
        print("(and any torchvision classification model by name)")
        return True
    if needs_dataset and getattr(args, "dataset", None) is None:
        print("Supported datasets:")
        for name in datasets.list_datasets():
            print(f"  {name:14s}{datasets.get_dataset_spec(name).description}")
        return True
    return False


# -- where results go ------------------------------------------------------------------------------
def subsample_of(subject: Subject, settings: SourceSettings) -> int:
    """The class subset of ``subject``'s run (the snapshot's, else the flag's; 0: all classes)."""
    return subject.args.get("subsample_classes", settings.subsample_classes) or 0


def output_dir(subject: Subject, root: str, settings: SourceSettings) -> Path:
    """The run's folder under ``root``; class subset and label noise come from the snapshot when it
    knows them. ``--layout reference``: the reference's ``<dataset>[_<k>]/<arch>/[<seed>/]``."""
    subsample = subsample_of(subject, settings)
    if settings.layout == REFERENCE_LAYOUT:
        folder = Path(root) / dataset_folder(subject.dataset, subsample) / subject.arch
        return folder / str(subject.seed) if subject.seed is not None else folder
    return results_dir(root, dataset=subject.dataset, arch=subject.arch, seed=subject.seed,
                       subsample_classes=subsample, noise=subject.args.get("noise") or 0.0)


def add_layout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=LAYOUTS, default=OUR_LAYOUT, help="ours: results under <results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/ with our schema and summaries; reference: each file where the reference tool writes it (<results>/<dataset>[_<k>]/<arch>/[<seed>/]), with its file name, keys, value types and epoch labels, so its notebooks read them unchanged [default = ours].")


# -- the initialization ----------------------------------------------------------------------------
@dataclass(frozen=True)
class InitSettings:
    """``--init-from`` (a snapshot, or a run directory's epoch-0 snapshot) and ``--no-init``."""

    init_from: str = ""
    no_init: bool = False

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--init-from", default="", help="Network initialization: a snapshot (or a run directory, for its epoch-0 snapshot) to measure the distance from initialization of each layer [default = the run's epoch-0 snapshot when it has one].")
        parser.add_argument("--no-init", action="store_true", help="Do not compare with any initialization, not even the run's epoch-0 snapshot [default = off].")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> InitSettings:
        return cls(init_from=args.init_from, no_init=args.no_init)
