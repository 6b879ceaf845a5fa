"""What an analysis runs on: snapshots (a file, a run directory, a glob), the zoo model or a
random init; the initialization each is compared with; where its results go.

Our snapshots describe themselves (``arch``, ``dataset``, ``seed`` optional, and must agree when
given); the reference tool's plain files need ``arch`` and ``dataset`` (and the class subset, the
upscaling and the seed they were trained with).
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from analyses.loading import LoadedModel, fresh_model, load_snapshot_model
from utils.checkpoints import resolve_snapshots, snapshot_sort_epoch
from utils.errors import UserError
from utils.paths import dataset_folder, results_dir

logger = logging.getLogger(__name__)

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

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, latest_only: bool = False) -> "SourceSettings":
        return cls(load_from=args.load_from, arch=args.arch, dataset=args.dataset,
                   subsample_classes=args.subsample_classes,
                   upscale=bool(getattr(args, "upscale", False) or getattr(args, "upscale_padding", False)),
                   seed=args.seed, pretrained=getattr(args, "pretrained", False),
                   download=getattr(args, "download", False), latest_only=latest_only,
                   layout=getattr(args, "layout", OUR_LAYOUT))


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


# -- the models ------------------------------------------------------------------------------------
def snapshot_paths(settings: SourceSettings) -> list[Path]:
    """The snapshots ``--load-from`` names, in epoch order (see :class:`SourceSettings`)."""
    snapshots = resolve_snapshots(settings.load_from, dedupe=settings.layout != REFERENCE_LAYOUT)
    if not settings.latest_only:
        return snapshots
    if Path(settings.load_from).is_dir():
        return snapshots[-1:]
    if len(snapshots) > 1:
        raise UserError(f"--load-from {settings.load_from} matches {len(snapshots)} snapshots; give one file")
    return snapshots


def iter_models(settings: SourceSettings, device: torch.device) -> Iterator[LoadedModel]:
    """Each snapshot of ``--load-from`` in epoch order (one at a time), else the zoo model or a seeded init."""
    if not settings.load_from:
        loaded = fresh_model(settings.arch, settings.dataset, pretrained=settings.pretrained, seed=settings.seed,
                             subsample_classes=settings.subsample_classes or 0, upscale=settings.upscale,
                             download=settings.download, check_input=settings.check_input, device=device)
        what = "pretrained weights from the model zoo" if settings.pretrained else f"a random init (seed {settings.seed})"
        logger.info("no --load-from: analysing %s of %s", what, settings.arch)
        yield loaded
        return
    if settings.pretrained:
        logger.warning("--pretrained is only used without --load-from; ignoring it")
    for path in snapshot_paths(settings):
        yield load_model(path, settings, device)


def load_model(path: Path, settings: SourceSettings, device: torch.device) -> LoadedModel:
    loaded = load_snapshot_model(path, arch=settings.arch, dataset=settings.dataset,
                                 subsample_classes=settings.subsample_classes or None, upscale=settings.upscale,
                                 seed=settings.seed, device=device)
    if settings.seed is not None and loaded.seed is not None and loaded.seed != settings.seed:
        raise UserError(f"--seed {settings.seed} disagrees with snapshot {path} (seed {loaded.seed}); "
                        "drop the flag or fix it")
    return loaded


def subsample_of(loaded: LoadedModel, settings: SourceSettings) -> int:
    """The class subset of ``loaded``'s run (the snapshot's, else the flag's; 0: all classes)."""
    return loaded.args.get("subsample_classes", settings.subsample_classes) or 0


def output_dir(loaded: LoadedModel, root: str, settings: SourceSettings) -> Path:
    """The run's folder under ``root``; class subset and label noise come from the snapshot when it
    knows them. ``--layout reference``: the reference's ``<dataset>[_<k>]/<arch>/[<seed>/]``."""
    subsample = subsample_of(loaded, settings)
    if settings.layout == REFERENCE_LAYOUT:
        folder = Path(root) / dataset_folder(loaded.dataset, subsample) / loaded.arch
        return folder / str(loaded.seed) if loaded.seed is not None else folder
    return results_dir(root, dataset=loaded.dataset, arch=loaded.arch, seed=loaded.seed,
                       subsample_classes=subsample, noise=loaded.args.get("noise") or 0.0)


def add_layout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=LAYOUTS, default=OUR_LAYOUT, help="ours: results under <results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/ with our schema and summaries; reference: each file where the reference tool writes it (<results>/<dataset>[_<k>]/<arch>/[<seed>/]), with its file name, keys, value types and epoch labels, so its notebooks read them unchanged [default = ours].")


# -- the initialization ----------------------------------------------------------------------------
@dataclass(frozen=True)
class InitSettings:
    """``--init-from`` (a snapshot, or a run directory's epoch-0 snapshot) and ``--no-init``."""

    init_from: str = ""
    no_init: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "InitSettings":
        return cls(init_from=args.init_from, no_init=args.no_init)


class Initializations:
    """The initialization each model is compared with, each file loaded once.

    An explicit ``--init-from`` that does not fit is an error; the run's own epoch-0 snapshot (the
    default) that does not fit is skipped with a warning.
    """

    def __init__(self, settings: InitSettings, device: torch.device) -> None:
        self.settings, self.device = settings, device
        self._cache: dict[Path, LoadedModel | None] = {}

    def __call__(self, loaded: LoadedModel) -> tuple[Path | None, LoadedModel | None]:
        path, explicit = self._path_for(loaded)
        if path is None:
            return None, None
        if path not in self._cache:
            try:
                self._cache[path] = self._load(path, loaded)
            except UserError as err:
                if explicit:
                    raise
                logger.warning("not comparing with %s: %s (pass --init-from or --no-init)", path, err)
                self._cache[path] = None
        return (path, self._cache[path]) if self._cache[path] is not None else (None, None)

    def _path_for(self, loaded: LoadedModel) -> tuple[Path | None, bool]:
        """``(path, explicit)``: --init-from (a file, or a run directory's epoch-0 snapshot), else the
        snapshot's own run's epoch-0 snapshot when there is one; nothing with --no-init."""
        if self.settings.no_init:
            return None, False
        if not self.settings.init_from:
            return (run_init_snapshot(loaded.path.parent, loaded.arch) if loaded.path is not None else None), False
        given = Path(self.settings.init_from)
        if not given.is_dir():
            return given, True
        found = run_init_snapshot(given, loaded.arch)
        if found is None:
            raise UserError(f"--init-from {given} is a folder without an epoch-0 snapshot; give the snapshot file")
        return found, True

    def _load(self, path: Path, loaded: LoadedModel) -> LoadedModel:
        """The initialization at ``path``; a plain file is built like ``loaded`` (classes, input size)."""
        init = load_snapshot_model(path, like=loaded, device=self.device)
        logger.info("initialization: %s (epoch %s)", path, init.epoch)
        return init


def run_init_snapshot(run_dir: Path, arch: str) -> Path | None:
    """The epoch-0 snapshot of a run directory (``<arch>_epoch0000.pt`` or the reference's
    ``*_init*``), preferring names that start with the architecture."""
    try:
        snapshots = resolve_snapshots(run_dir)
    except UserError:
        return None
    initial = [path for path in snapshots if snapshot_sort_epoch(path) == 0]
    initial.sort(key=lambda path: not path.name.startswith(f"{arch}_"))
    return initial[0] if initial else None
