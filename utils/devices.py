"""Choosing the device: the ``--cuda`` / ``--device`` flags every CLI shares."""
from __future__ import annotations

import argparse
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


def add_device_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cuda", action="store_true", help="Enable GPU support [default = off].")
    parser.add_argument("--device", default=None,
                        help="Device to use, e.g. cpu, cuda, cuda:1 (overrides --cuda) [default = cpu].")


def device_from_args(args: argparse.Namespace) -> torch.device:
    return resolve_device(cuda=args.cuda, device=args.device)
