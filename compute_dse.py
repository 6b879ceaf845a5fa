"""Diffusion Spectral Entropy of a representation for snapshots, a run directory, a zoo model or a seed.

    python compute_dse.py --load-from models/digits/lenet/0
    python compute_dse.py --load-from models/digits/lenet/0/lenet_epoch0003.pt --layer classifier.3
    python compute_dse.py --arch resnet18 --dataset cifar10 --pretrained --data-path ./data --cuda

For every model: DSE(Z), DSMI(Z; Y) with the true labels and CSE(Z) of the representation Z (by
default the input of the last linear layer; ``--layer`` names any module, whose output is used)
on a fixed probe set: ``--dse-samples`` samples of the validation split, else of the test split,
drawn with ``--dse-seed``. A snapshot's data options (class subset, validation split, upscaling,
...) come from the run that wrote it, so the probe is the one ``train.py`` used at every snapshot.
One ``dse_<stem>.json`` per model goes to
``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``, plus ``dse_summary.json``
(values per epoch, from every result file there measured with the same settings). With
``--layer`` the files are named ``dse_layer-<module>_<stem>.json`` and ``dse_layer-<module>_summary.json``.

``--hsic`` adds, on the same probe, the HSIC information plane of every conv and linear layer's
output T: HSIC(T, X) with the inputs and HSIC(T, Y) with one-hot labels (Gaussian kernels, median
heuristic bandwidths or ``--hsic-sigma``), written to ``hsic_<stem>.json`` and ``hsic_summary.json``.
The analyses: ``analyses/dse.py`` and ``analyses/hsic.py``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from analyses import runner
from analyses.data import DataSettings
from analyses.dse import DSE, DSESettings
from analyses.hsic import HSIC, HSICSettings
from analyses.sources import SourceSettings, print_missing_choice
from datasets.reference import add_convention_arguments
from utils.cli import run_main
from utils.devices import add_device_args, device_from_args


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Compute DSE, DSMI and CSE of a representation.")
    p.add_argument("--arch", default=None, help="Network architecture. Run without this option (and without --load-from) to see a list of all available archs. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--dataset", default=None, help="Dataset the model was trained on; the probe samples come from it. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--subsample-classes", type=int, default=0, help="Number of classes in the prediction head of the network (and of the probe). Specify 0 (default) for using the standard number of classes of DATASET.")
    p.add_argument("--load-from", default="", help="Load trained network(s) from a snapshot file, a run directory (every snapshot, in epoch order) or a glob [default = none: --pretrained or a random init].")
    p.add_argument("--pretrained", action="store_true", help="Load pretrained architecture on ImageNet from the local model-zoo cache [default=False].")
    p.add_argument("--download", action="store_true", help="Allow downloading the --pretrained weights or the dataset [default = off: offline].")
    add_device_args(p)
    p.add_argument("--seed", type=int, default=None, help="Pytorch seed. (Optional) If using --load-from with plain reference files, specify the seed the model was trained with; without a snapshot it seeds the random init [default = none].")
    DSESettings.add_arguments(p)
    p.add_argument("--batch-size", type=int, default=256, help="Batch size of the forward passes [default = 256].")
    p.add_argument("--data-path", default=None, help="Path to the local dataset files [default = the snapshot's, else './data'].")
    p.add_argument("--split", type=float, default=None, help="Validation split size the model was trained with (plain reference files and zoo models; snapshots know) [default = 0].")
    p.add_argument("--stratified", action="store_true", default=None, help="The validation split was stratified (as --split) [default = off].")
    p.add_argument("--split-seed", type=int, default=None, help="Seed of the validation split (as --split) [default = 42].")
    p.add_argument("--shuffle", action="store_true", default=None, help="The training data was shuffled before the validation split (as --split) [default = off].")
    p.add_argument("--class-sample-seed", type=int, default=None, help="Seed used for sampling classes with --subsample-classes (as --split) [default = 42].")
    p.add_argument("--upscale", action="store_true", help="The model was trained on images upscaled to 224x224 (plain reference files and random inits only; snapshots know) [default = off].")
    p.add_argument("--upscale-padding", action="store_true", default=None, help="The model was trained on images upscaled to 112x112 and padded to 224x224 (as --upscale) [default = off].")
    p.add_argument("--unnormalize", action="store_true", default=None, help="The model was trained on unnormalized [0,1] pixels (as --upscale) [default = off].")
    add_convention_arguments(p)
    HSICSettings.add_arguments(p)
    p.add_argument("--results", default="./results", help="Path to store results [default = './results'].")
    p.add_argument("--log", default="dse.log", help="Logfile name, inside the results folder unless it has a folder [default = 'dse.log'].")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not args.load_from and print_missing_choice(args):
        return 0
    analyses = [DSE(DSESettings.from_args(args))] + ([HSIC(HSICSettings.from_args(args))] if args.hsic else [])
    runner.run(analyses, SourceSettings.from_args(args), data=DataSettings.from_args(args),
               outputs=runner.Outputs(args.results, args.log), device=device_from_args(args), args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
