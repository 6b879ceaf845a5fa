"""Train or fine-tune a ConvNet with self-describing snapshots (the reference's train.py, fixed).

    python train.py --arch lenet --dataset digits --epochs 3 --snapshot-every 1

Snapshots, run.json and the log go to ``<models-path>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``,
TensorBoard events to the same sub-path of ``--tb-logdir``. Runs under ``torchrun`` use DDP. The
flags and checks: ``training/arguments.py`` (sweep.py checks its members with them); the run:
``training/session.py``.
"""
from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence

from analyses.sources import print_missing_choice
from training.analyzers import analyzers_from_args
from training.arguments import check_output_folders, check_resumed_epoch, get_args_parser, validate_args
from training.distributed import init_distributed, shutdown
from training.performance import SpeedOptions
from training.resume import already_converged, load_resume
from training.session import deterministic_mode, stop_signals, train
from utils.cli import keeps_caller_logging, open_log_file, run_main, setup_logging
from utils.devices import resolve_device

__all__ = ["get_args_parser", "main"]


@keeps_caller_logging
def main(argv: Sequence[str] | None = None, *, analyzers: list | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(None)  # the console now; the run's log file, with these first lines, once it has a folder
    checkpoint = load_resume(args, argv)
    if checkpoint is None and print_missing_choice(args):
        return 0
    validate_args(args)
    if already_converged(args, checkpoint):
        return 0
    check_resumed_epoch(args, checkpoint)
    check_output_folders(args)
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    device = resolve_device(cuda=args.cuda, device=args.device)
    SpeedOptions(args.channels_last, args.amp, args.compile).validate(device)
    ctx, device = init_distributed(device)
    try:
        with deterministic_mode(args.deterministic), stop_signals() as stop:
            return train(args, checkpoint, ctx, device, stop, analyzers_from_args(args) + list(analyzers or []),
                         open_log=open_log_file)
    finally:
        shutdown(ctx)


if __name__ == "__main__":
    sys.exit(run_main(main))
