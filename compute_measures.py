"""The field's generalization measures (Jiang et al. 2020) for snapshots, a run directory, a zoo model or a seed.

    python compute_measures.py --load-from runs/digits/lenet/0 --latest
    python compute_measures.py --load-from runs/digits/lenet/0/lenet_epoch0003.pt --measures norms margin

``--measures`` picks among the registered analyses this CLI runs (``analyses/registry.py``):
``norms`` (weight count, log product and sum of Frobenius and spectral norms, their exact-convolution
forms, distances from the epoch-0 snapshot, path-norm), ``margin`` (10th-percentile output margin on
the training set and the margin-normalized norms), ``sharpness`` (PAC-Bayes flatness and bounds, their
magnitude-aware forms, Keskar's sharpness, the worst-case sharpness family) and ``optimization`` (steps
to training cross-entropy 0.1 and from 0.1 to 0.01, from run.json). Every measure of the network is
computed on the folded network (each batch norm folded into the layer that ran before it). Margin and
PAC-Bayes read the run's training split (``--measure-samples``: a fixed, seeded draw of it), the
worst-case sharpness a draw of ``--sharpness-samples``, with the labels the run trained on; a
pretrained zoo model has no training data, gets one line saying so, and its data-free measures are
still computed. One ``<measure>_<stem>.json`` per snapshot goes to
``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``. Definitions:
docs/generalization-measures.md.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analyses import runner
from analyses.arguments import analysis_parser
from analyses.data import DataSettings
from analyses.field import CLI, FieldSettings
from analyses.registry import declarations
from analyses.sources import InitSettings, SourceSettings, print_missing_choice
from utils.cli import keeps_caller_logging, open_log_file, run_main, setup_logging
from utils.devices import device_from_args

PRETRAINED_MISSING = "the training data of --pretrained ImageNet weights are not available"


def measure_names() -> tuple[str, ...]:
    """The registered analyses this CLI runs, in registry order."""
    return tuple(found.name for found in declarations() if found.cli == CLI and found.make is not None)


def add_measures(parser) -> None:
    """``--latest`` and ``--measures`` (their flags: ``FieldSettings``)."""
    parser.add_argument("--latest", action="store_true", help="A run directory means its latest snapshot only (the model the ranking of measures reads) [default = every snapshot].")
    names = measure_names()
    parser.add_argument("--measures", nargs="+", choices=names, default=list(names), help=f"Which measures to compute [default = {' '.join(names)}].")


def get_args_parser() -> argparse.ArgumentParser:
    return analysis_parser("Compute the field's generalization measures (Jiang et al. 2020).", log="measures.log",
                           title="measures", own=[add_measures, FieldSettings.add_arguments], data=True)


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(None)  # the console now; the log file, with these first lines, with the first result
    if not args.load_from and print_missing_choice(args, needs_dataset=not args.pretrained):
        return 0
    settings = FieldSettings.from_args(args)
    missing = PRETRAINED_MISSING if args.pretrained and not args.load_from else None
    known = {found.name: found for found in declarations()}
    analyses = [known[name].make(settings, missing) for name in dict.fromkeys(args.measures)]
    runner.run(analyses, SourceSettings.from_args(args, latest_only=args.latest), data=DataSettings.from_args(args),
               init=InitSettings.from_args(args), device=device_from_args(args), args=vars(args),
               outputs=runner.Outputs(args.results, args.log, open_log=open_log_file))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
