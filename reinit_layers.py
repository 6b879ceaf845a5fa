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
from analyses.data import DataSettings
from analyses.reinit import Reinit, ReinitSettings
from analyses.sources import SourceSettings, add_layout_argument, print_missing_choice
from plotting.common import style
from plotting.reinit import reinit_figures_of
from utils.cli import keeps_caller_logging, open_log_file, run_main, setup_logging
from utils.devices import add_device_args, device_from_args
from utils.errors import UserError


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Reinit network weights and compute drop in performance.")
    SourceSettings.add_arguments(p, zoo=False, latest_only=True)
    ReinitSettings.add_inits_arguments(p)
    add_device_args(p)
    p.add_argument("--results", default="./results", help="Path to store results [default = './results'].")
    p.add_argument("--plots", default="./plots", help="Path to store plots [default = './plots'].")
    # The reference tool's name for this CLI's log file.
    p.add_argument("--log", default="reinit_weights.log", help="Logfile name, inside the results folder unless it has a folder [default = 'reinit_weights.log'].")
    p.add_argument("--workers", "-j", type=int, default=1, help="Number of parallel data processing jobs (image-folder datasets) [default = 1].")
    # The reference's evaluation batch size (compute_dse.py's forward passes take 256).
    p.add_argument("--batch-size", type=int, default=128, help="The minibatch size for evaluation [default = 128].")
    DataSettings.add_arguments(p)
    ReinitSettings.add_arguments(p)
    add_layout_argument(p)
    return p


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
