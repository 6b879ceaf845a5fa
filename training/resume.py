"""Resuming a run: reconciling the command line with the snapshot, and restoring its state.

Flags that define the run (architecture and its shape options, data options, seed) must agree
with the snapshot: those not given are taken from it. Hyperparameters stored in the snapshot win
unless ``--override`` is given, in which case the command line wins. The stopping criterion
(``--stop-train-loss``/``--stop-train-acc``) is the command line's when it names one, else the
snapshot's. Everything else (epochs, device, paths) comes from the command line.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from datasets.options import HYPER, IDENTITY, data_flags
from datasets.reference import resolve_conventions as conventions
from models import MODEL_OPTIONS
from training import rng
from training.arguments import evaluation_only, explicit_flags, stop_criterion
from training.trainer import criterion_met, describe_criterion
from utils.checkpoints import is_reference_file, load_checkpoint, reference_epoch
from utils.errors import UserError
from utils.notices import notice

logger = logging.getLogger(__name__)

IDENTITY_KEYS = ("arch", "dataset", *data_flags(IDENTITY), "seed", "pretrained", "conv_init", "conv_init_std",
                 *MODEL_OPTIONS)
HYPER_KEYS = (
    "optimizer", "lr", "lr_step", "lr_decay", "lr_schedule", "weight_decay", "momentum", "batch_size",
    *data_flags(HYPER), "snapshot_every", "snapshot_all_until", "kill_plateaus", "plateau_patience",
)
# The stopping criterion: the command line's when it names one, else the snapshot's (a resumed run
# converges to the criterion it started with; a new one can be given without --override).
STOPPING_KEYS = ("stop_train_loss", "stop_train_acc")


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
    if not explicit & set(STOPPING_KEYS):
        merged |= {key: saved[key] for key in STOPPING_KEYS if key in saved}
    return merged


def load_resume(args: argparse.Namespace, argv: Sequence[str] | None) -> dict | None:
    """Read --resume-from and merge its stored arguments into ``args`` (see :func:`merge_resume_args`);
    resolve ``--normalization`` and ``--class-order`` (a fresh run: ours)."""
    if not args.resume_from:
        resolve_conventions(args, None, {})
        return None
    checkpoint = load_checkpoint(args.resume_from)
    saved = checkpoint.get("args") or {}
    resolve_conventions(args, checkpoint, saved)
    explicit = explicit_flags(argv)
    merged = merge_resume_args(vars(args), explicit, saved, override=args.override)
    vars(args).update(merged)
    if args.arch is None or args.dataset is None:
        raise UserError(f"{args.resume_from} holds plain weights; pass --arch and --dataset with it")
    if is_reference_file(checkpoint):
        checkpoint["reference"] = str(args.resume_from)  # marks a reference file, and names it
        args.start_epoch = reference_start_epoch(checkpoint, args, "start_epoch" in explicit)
    return checkpoint


def already_converged(args: argparse.Namespace, checkpoint: dict | None) -> bool:
    """A resumed snapshot whose epoch already met the stopping criterion: say so in one line (the run
    has nothing more to do)."""
    criterion = stop_criterion(args)
    if checkpoint is None or evaluation_only(args) or not criterion_met(criterion, checkpoint.get("metrics") or {}):
        return False
    logger.info("%s already converged at epoch %s (%s); nothing more to train", args.resume_from,
                checkpoint.get("epoch"), describe_criterion(criterion, checkpoint["metrics"]))
    return True


def resolve_conventions(args: argparse.Namespace, checkpoint: dict | None, saved: dict) -> None:
    """``snapshot`` becomes what the file was trained with (:func:`datasets.reference.resolve_conventions`)."""
    vars(args).update(conventions(args.normalization, args.class_order,
                                  reference_file=checkpoint is not None and is_reference_file(checkpoint),
                                  dataset=args.dataset or "", upscale=args.upscale,
                                  upscale_padding=args.upscale_padding, subsample_classes=args.subsample_classes,
                                  stored=saved, what=args.resume_from or "a new run"))


def reference_start_epoch(checkpoint: dict, args: argparse.Namespace, explicit: bool) -> int:
    """Completed epochs of a reference file: a ``<arch>_<e>.tar`` holds e + 1 (its ``epoch`` field is
    e), a plain ``<arch>_<E>.pt`` E, ``*_init*`` 0; ``--start-epoch`` overrides."""
    if "epoch" in checkpoint:
        found, how = int(checkpoint["epoch"]) + 1, f"its stored epoch {int(checkpoint['epoch'])} + 1"
    else:
        found, how = reference_epoch(args.resume_from), "its file name"
    if explicit and found is not None and args.start_epoch != found:
        logger.info("--start-epoch %d overrides the %d completed epochs of %s (%s)", args.start_epoch, found,
                    args.resume_from, how)
        return args.start_epoch
    if explicit or found is None:
        return args.start_epoch
    if not evaluation_only(args):
        logger.info("%s is a reference-tool file holding %d completed epochs (%s); continuing with epoch %d "
                    "(--start-epoch to choose)", args.resume_from, found, how, found + 1)
    return found


def optimizer_kind(state: dict) -> str | None:
    """``sgd`` or ``adam``/``adamw`` from a saved optimizer state's hyperparameters."""
    groups = state.get("param_groups") or [{}]
    if "betas" in groups[0]:
        return "adamw" if groups[0].get("decoupled_weight_decay") else "adam"
    return "sgd" if "momentum" in groups[0] else None


def restore_reference_state(checkpoint: dict, optimizer, scheduler) -> None:
    """A reference ``.tar``'s optimizer state (SGD's momentum buffers) and StepLR state, as the
    reference restores them; an optimizer of another kind starts afresh, with a notice."""
    state = checkpoint.get("optimizer_state_dict")
    if not state:
        return
    ours = type(optimizer).__name__.lower()
    if optimizer_kind(state) not in (ours, "adam" if ours == "adamw" else ours):
        notice("reference-optimizer", "the optimizer state in %s is %s's; --optimizer %s starts afresh",
               checkpoint["reference"], optimizer_kind(state) or "an unknown optimizer", ours)
        return
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError) as err:
        raise UserError(f"the optimizer state in the resumed file does not fit the model ({err}); "
                        "check --arch, or resume from plain weights") from err
    if scheduler is not None and checkpoint.get("scheduler_state_dict"):
        scheduler.load_state_dict(checkpoint["scheduler_state_dict"])


def restore_training_state(checkpoint, optimizer, scheduler, generator, start_epoch: int = 0) -> int:
    """Restore optimizer/scheduler/RNG from a full snapshot; return the epoch to continue after
    (a reference file: ``start_epoch``, resolved by :func:`load_resume`)."""
    if checkpoint is not None and checkpoint.get("reference"):
        restore_reference_state(checkpoint, optimizer, scheduler)
        return start_epoch
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
