"""Diffusion Spectral Entropy of a representation for snapshots, a run directory, a zoo model or a seed.

    python compute_dse.py --load-from runs/digits/lenet/0
    python compute_dse.py --load-from runs/digits/lenet/0/lenet_epoch0003.pt --layer classifier.3
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

``--hsic`` adds, on the same probe, the HSIC information plane of every conv, linear and attention layer's
output T: HSIC(T, X) with the inputs and HSIC(T, Y) with one-hot labels (Gaussian kernels, median
heuristic bandwidths or ``--hsic-sigma``), written to ``hsic_<stem>.json`` and ``hsic_summary.json``.
The analyses: ``analyses/dse.py`` and ``analyses/hsic.py``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analyses import runner
from analyses.arguments import analysis_parser
from analyses.data import DataSettings
from analyses.dse import DSE, DSESettings
from analyses.hsic import HSIC, HSICSettings
from analyses.sources import SourceSettings, print_missing_choice
from utils.cli import keeps_caller_logging, open_log_file, run_main, setup_logging
from utils.devices import device_from_args


def add_batch_size(parser) -> None:
    # DSE's forward passes take larger batches than reinit's full evaluations (reinit_layers.py: 128).
    parser.add_argument("--batch-size", type=int, default=256, help="Batch size of the forward passes [default = 256].")


def get_args_parser() -> argparse.ArgumentParser:
    # Each CLI's log file is named after its analysis (the reference tool's CLIs name theirs so too).
    return analysis_parser("Compute DSE, DSMI and CSE of a representation.", log="dse.log", title="DSE and HSIC",
                           own=[DSESettings.add_arguments, add_batch_size, HSICSettings.add_arguments], init=False,
                           data=True)


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(None)  # the console now; the log file, with these first lines, with the first result
    if not args.load_from and print_missing_choice(args):
        return 0
    analyses = [DSE(DSESettings.from_args(args))] + ([HSIC(HSICSettings.from_args(args))] if args.hsic else [])
    runner.run(analyses, SourceSettings.from_args(args), data=DataSettings.from_args(args),
               outputs=runner.Outputs(args.results, args.log, open_log=open_log_file), device=device_from_args(args), args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
