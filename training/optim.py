"""Optimizers and learning-rate schedules, by name (registries, not if/elif)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from utils.errors import UserError


def _sgd(params, *, lr, momentum, weight_decay):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _adam(params, *, lr, momentum, weight_decay):
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _adamw(params, *, lr, momentum, weight_decay):
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


OPTIMIZERS: dict[str, Callable] = {"sgd": _sgd, "adam": _adam, "adamw": _adamw}


def build_optimizer(
    name: str, params: Iterable[nn.Parameter], *, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``sgd`` (with ``momentum``), ``adam`` or ``adamw``; weight decay applies to all of them."""
    if name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _step_schedule(optimizer, *, epochs, lr_step, lr_decay):
    if lr_step > 0 and lr_decay > 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step, gamma=lr_decay)
    return None


def _cosine_schedule(optimizer, *, epochs, lr_step, lr_decay):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))


def _no_schedule(optimizer, *, epochs, lr_step, lr_decay):
    return None


SCHEDULES: dict[str, Callable] = {"step": _step_schedule, "cosine": _cosine_schedule, "none": _no_schedule}


def build_schedule(name: str, optimizer, *, epochs: int, lr_step: int, lr_decay: float):
    """Per-epoch schedule: ``step`` (x ``lr_decay`` every ``lr_step`` epochs, off unless both are
    set, as in the reference), ``cosine`` (to zero over ``epochs``), or ``none``."""
    if name not in SCHEDULES:
        raise UserError(f"unknown learning-rate schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](optimizer, epochs=epochs, lr_step=lr_step, lr_decay=lr_decay)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def regularization_loss(model: nn.Module, weight_decay: float) -> float:
    """The weight-decay penalty ``wd / 2 * sum ||W||^2`` over every parameter (what SGD decays)."""
    with torch.no_grad():
        total = sum(float(p.double().pow(2).sum()) for p in model.parameters())
    return weight_decay / 2 * total
