"""Choosing the device from ``--cuda`` / ``--device``."""
from __future__ import annotations

import logging

import torch

from utils.errors import UserError

logger = logging.getLogger(__name__)


def resolve_device(*, cuda: bool = False, device: str | None = None) -> torch.device:
    """``--device`` wins; ``--cuda`` means ``cuda``; the default is the CPU.

    Asking for CUDA where there is none is an error (a silent CPU fallback would make a
    multi-day job crawl unnoticed).
    """
    name = device or ("cuda" if cuda else "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"unknown device {name!r}; use cpu, cuda or cuda:<index>") from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available here; drop --cuda/--device")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise UserError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return chosen
