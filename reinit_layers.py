"""Layer re-initialization robustness (Zhang, Bengio, Singer 2019, "Are All Layers Created Equal?").

    python reinit_layers.py --load-from runs/digits/lenet/0/lenet_epoch0012.pt \\
        --inits-from runs/digits/lenet/0 --rand

For a trained snapshot, each layer in turn gets its parameters from an earlier checkpoint
(re-initialization) or from a fresh random initialization (``--rand``, re-randomization) while
every other layer stays trained, and the test accuracy is measured. The test data are the
snapshot's own (class subset, upscaling, normalization from the training run). Writes
``reinit_<snapshot stem>.json`` under ``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``
and the heatmap (PNG and PDF) under the same layout in ``--plots``. The analysis: ``analyses/reinit.py``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analyses import runner
from analyses.arguments import analysis_parser
from analyses.data import DataSettings
from analyses.reinit import Reinit, ReinitSettings
from analyses.sources import SourceSettings, print_missing_choice
from plotting.common import style
from plotting.reinit import reinit_figures_of
from utils.cli import keeps_caller_logging, open_log_file, run_main, setup_logging
from utils.devices import device_from_args
from utils.errors import UserError


def add_evaluation(parser) -> None:
    parser.add_argument("--workers", "-j", type=int, default=1, help="Number of parallel data processing jobs (image-folder datasets) [default = 1].")
    # The reference's evaluation batch size (compute_dse.py's forward passes take 256).
    parser.add_argument("--batch-size", type=int, default=128, help="The minibatch size for evaluation [default = 128].")


def get_args_parser() -> argparse.ArgumentParser:
    # The reference tool's name for this CLI's log file. The snapshots to reset from (--inits-from) stand
    # in for the initialization flags.
    return analysis_parser("Reinit network weights and compute drop in performance.", log="reinit_weights.log",
                           title="re-initialization", own=[ReinitSettings.add_inits_arguments, add_evaluation,
                                                           ReinitSettings.add_arguments],
                           init=False, data=True, zoo=False, latest_only=True, plots=True, layout=True)


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(None)  # the console now; the log file, with these first lines, with the first result
    if not args.load_from and print_missing_choice(args):
        return 0
    if not args.load_from:
        raise UserError("--load-from is required: the trained snapshot whose layers are reset")
    analysis = Reinit(ReinitSettings.from_args(args))
    outputs = runner.Outputs(args.results, args.log, open_log=open_log_file, plots=args.plots, figures={"reinit": reinit_figures_of})
    with style():  # the heatmap's style, also when it is saved
        runner.run([analysis], SourceSettings.from_args(args, latest_only=True), data=DataSettings.from_args(args),
                   outputs=outputs, device=device_from_args(args), args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
