"""Weight-spectrum metrics per layer (WeightWatcher's) for snapshots, a run directory, a zoo model or a seed.

    python compute_spectra.py --load-from models/digits/lenet/0
    python compute_spectra.py --load-from models/digits/lenet/0/lenet_epoch0003.pt --conv-mode flatten

For every conv and linear layer: the eigenvalues of ``W^T W / N`` (conv layers as their kh*kw
slices pooled into one spectrum, or flattened with ``--conv-mode flatten``), the normalized matrix
entropy, stable rank, spectral norm, log norm, the power-law exponent ``alpha`` and
``alpha_weighted``, ``rand_distance`` (Jensen-Shannon distance to the spectrum of the shuffled
weights) and, given an initialization, the relative Frobenius distance and cosine from it
(definitions: ``metrics/spectral.py``). One ``spectra_<stem>.json`` per snapshot goes to
``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``, plus ``spectra_summary.json``
(layers x epochs arrays) when a folder gets more than one snapshot. With ``--conv-mode flatten`` the
files are ``spectra_conv-flatten_<stem>.json`` and ``spectra_conv-flatten_summary.json``, so both
modes can live in one folder. The analysis: ``analyses/spectra.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Sequence

from analyses import runner
from analyses.sources import InitSettings, SourceSettings, print_missing_choice
from analyses.spectra import Spectra, SpectraSettings
from utils.devices import add_device_args, device_from_args
from utils.cli import run_main


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Compute weight-spectrum metrics per layer.")
    p.add_argument("--arch", default=None, help="Network architecture. Run without this option (and without --load-from) to see a list of all available archs. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--subsample-classes", type=int, default=0, help="Number of classes in the prediction head of the network. Specify 0 (default) for using the standard number of classes of DATASET.")
    p.add_argument("--dataset", default=None, help="Dataset used to train the model. Used to specify the number of classes of the prediction layer of the model. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--load-from", default="", help="Load trained network(s) from a snapshot file, a run directory (every snapshot, in epoch order) or a glob [default = none: --pretrained or a random init].")
    p.add_argument("--init-from", default="", help="Network initialization: a snapshot (or a run directory, for its epoch-0 snapshot) to measure the distance from initialization of each layer [default = the run's epoch-0 snapshot when it has one].")
    p.add_argument("--no-init", action="store_true", help="Do not compare with any initialization, not even the run's epoch-0 snapshot [default = off].")
    p.add_argument("--pretrained", action="store_true", help="Load pretrained architecture on ImageNet from the local model-zoo cache [default=False].")
    p.add_argument("--download", action="store_true", help="Allow downloading the --pretrained weights [default = off: offline].")
    add_device_args(p)
    SpectraSettings.add_arguments(p)
    p.add_argument("--upscale", action="store_true", help="The model was trained on images upscaled to 224x224 (plain reference files and random inits only; snapshots know) [default = off].")
    p.add_argument("--upscale-padding", action="store_true", help="The model was trained on images upscaled to 112x112 and zero-padded to 224x224 (as --upscale: the input size is 224) [default = off].")
    p.add_argument("--results", default="./results", help="Path to store results [default = './results'].")
    p.add_argument("--log", default="spectra.log", help="Logfile name, inside the results folder unless it has a folder [default = 'spectra.log'].")
    p.add_argument("--seed", type=int, default=None, help="Pytorch seed. (Optional) If using --load-from with plain reference files, specify the seed the model was trained with; without a snapshot it seeds the random init [default = none].")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not args.load_from and print_missing_choice(args):
        return 0
    sources = dataclasses.replace(SourceSettings.from_args(args), check_input=False)  # weights alone suffice
    runner.run([Spectra(SpectraSettings.from_args(args))], sources,
               init=InitSettings.from_args(args), outputs=runner.Outputs(args.results, args.log),
               device=device_from_args(args), args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
