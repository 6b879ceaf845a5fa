"""Initialization schemes a run may ask for instead of each architecture's own (``train.py --conv-init``).

The DSE paper's utility study draws every convolution's weights from N(0, sigma): sigma = 0.1 starts
with a high Diffusion Spectral Entropy (near log n), sigma = 0.01 with a low one (near 0), and the
low-DSE start trains faster. Biases and every other layer keep their architecture's initialization.
The draws come from torch's global generator, so a seeded run gives the same weights.
"""
from __future__ import annotations

import torch
from torch import nn

from utils.errors import UserError

DEFAULT, NORMAL = "default", "normal"
CONV_INITS = (DEFAULT, NORMAL)
DEFAULT_CONV_STD = 0.1


def apply_conv_init(model: nn.Module, scheme: str = DEFAULT, std: float = DEFAULT_CONV_STD) -> nn.Module:
    """``model`` with its convolutions' weights redrawn by ``scheme`` (``default``: left as built)."""
    if scheme not in CONV_INITS:
        raise UserError(f"unknown --conv-init {scheme!r}; choose one of: {', '.join(CONV_INITS)}")
    if scheme == DEFAULT:
        return model
    if not std > 0:
        raise UserError(f"--conv-init-std {std} must be positive")
    convolutions = [module for module in model.modules() if isinstance(module, nn.modules.conv._ConvNd)]
    if not convolutions:
        raise UserError("--conv-init normal: the model has no convolution; drop the flag")
    with torch.no_grad():
        for module in convolutions:
            module.weight.normal_(0.0, std)
    return model


def conv_init_of(args: dict) -> tuple[str, float]:
    """The scheme a run's recorded arguments ask for (older runs: the architecture's own)."""
    return args.get("conv_init") or DEFAULT, float(args.get("conv_init_std") or DEFAULT_CONV_STD)
