"""Reconciling the command line with a snapshot being resumed.

Flags that define the run (architecture, data options, seed) must agree with the snapshot: those
not given are taken from it. Hyperparameters stored in the snapshot win unless ``--override`` is
given, in which case the command line wins. Everything else (epochs, device, paths) comes from
the command line.
"""
from __future__ import annotations

import logging

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
