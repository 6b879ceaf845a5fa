"""Projection statistics of oriented hyperplanes for snapshots, a run directory, a zoo model or a seed.

    python compute_projections.py --load-from runs/digits/lenet/0 --normalize
    python compute_projections.py --arch alexnet --dataset imagenet --normalize --pretrained

For every conv layer (1x1 skipped unless ``--include-1x1``; linear layers with ``--with-linear``)
it reports the distribution of ``p(w) = <w, 1>`` over filters (``--normalize``: the cosine
``<w, 1> / (||w|| sqrt(d))``) and, given an initialization, the distance from it. One
``projections_<stem>.json`` per snapshot goes to
``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``, plus
``projections_summary.json`` (layers x epochs arrays) when a folder gets more than one snapshot;
``--layout reference`` writes the reference's ``<stem>.json`` where it writes them. The analysis: ``analyses/projections.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from analyses import runner
from analyses.arguments import analysis_parser
from analyses.projections import Projections, ProjectionSettings
from analyses.sources import InitSettings, SourceSettings, print_missing_choice
from utils.cli import keeps_caller_logging, open_log_file, run_main, setup_logging
from utils.devices import device_from_args


def get_args_parser() -> argparse.ArgumentParser:
    # Each CLI's log file keeps the name the reference tool gave it.
    return analysis_parser("Compute projection statistics.", log="positive_orthant.log", title="projections",
                           own=[ProjectionSettings.add_arguments], layout=True)


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(None)  # the console now; the log file, with these first lines, with the first result
    if not args.load_from and print_missing_choice(args):
        return 0
    sources = dataclasses.replace(SourceSettings.from_args(args), check_input=False)  # weights alone suffice
    runner.run([Projections(ProjectionSettings.from_args(args))], sources,
               init=InitSettings.from_args(args), outputs=runner.Outputs(args.results, args.log, open_log=open_log_file),
               device=device_from_args(args), args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
