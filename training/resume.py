"""Resuming a run: reconciling the command line with the snapshot, and restoring its state.

Flags that define the run (architecture, data options, seed) must agree with the snapshot: those
not given are taken from it. Hyperparameters stored in the snapshot win unless ``--override`` is
given, in which case the command line wins. Everything else (epochs, device, paths) comes from
the command line.
"""
from __future__ import annotations

import argparse
import logging
from typing import Sequence

from training import rng
from training.arguments import explicit_flags
from utils.checkpoints import load_checkpoint
from utils.errors import UserError

logger = logging.getLogger(__name__)

IDENTITY_KEYS = (
    "arch", "dataset", "subsample_classes", "class_sample_seed", "noise", "noise_seed", "pixel_shuffle",
    "split", "stratified", "split_seed", "shuffle", "upscale", "upscale_padding", "unnormalize", "seed",
    "pretrained",
)
HYPER_KEYS = (
    "optimizer", "lr", "lr_step", "lr_decay", "lr_schedule", "weight_decay", "momentum", "batch_size",
    "augmentation", "snapshot_every", "snapshot_all_until", "kill_plateaus", "plateau_patience",
)


def merge_resume_args(args: dict, explicit: set[str], saved: dict, *, override: bool) -> dict:
    """The effective arguments of a resumed run (see the module docstring); ``args`` is not changed."""
    merged = dict(args)
    for key in IDENTITY_KEYS:
        if key not in saved:
            continue
        if key in explicit and args[key] != saved[key]:
            flag = "--" + key.replace("_", "-")
            raise UserError(
                f"{flag} {args[key]} differs from the resumed snapshot's {saved[key]!r}; drop {flag} "
                "or start a new run"
            )
        merged[key] = saved[key]
    for key in HYPER_KEYS:
        if key not in saved:
            continue
        if key in explicit and args[key] != saved[key] and override:
            logger.info("--override: using %s=%s instead of the snapshot's %s", key, args[key], saved[key])
            continue
        if key in explicit and args[key] != saved[key]:
            logger.warning(
                "keeping the snapshot's %s=%s (command line: %s); pass --override to use the command line",
                key, saved[key], args[key],
            )
        merged[key] = saved[key]
    return merged


def load_resume(args: argparse.Namespace, argv: Sequence[str] | None) -> dict | None:
    """Read --resume-from and merge its stored arguments into ``args`` (see :func:`merge_resume_args`)."""
    if not args.resume_from:
        return None
    checkpoint = load_checkpoint(args.resume_from)
    saved = checkpoint.get("args") or {}
    merged = merge_resume_args(vars(args), explicit_flags(argv), saved, override=args.override)
    vars(args).update(merged)
    if args.arch is None or args.dataset is None:
        raise UserError(f"{args.resume_from} holds plain weights; pass --arch and --dataset with it")
    return checkpoint


def restore_training_state(checkpoint, optimizer, scheduler, generator) -> int:
    """Restore optimizer/scheduler/RNG from a full snapshot; return the epoch to continue after."""
    if checkpoint is None or "optimizer_state_dict" not in checkpoint:
        return None
    if checkpoint.get("args", {}).get("optimizer") == type(optimizer).__name__.lower():
        optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    if scheduler is not None and checkpoint.get("scheduler_state_dict"):
        scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
    if checkpoint.get("rng_state"):
        rng.restore(checkpoint["rng_state"], generator)
    return int(checkpoint["epoch"])


def apply_override(args, optimizer) -> None:
    """--override: the command line's hyperparameters replace the restored optimizer's."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = args.lr
        group["weight_decay"] = args.weight_decay
        if "momentum" in group:
            group["momentum"] = args.momentum
