"""Speed options: channels-last memory format, automatic mixed precision, torch.compile.

They change how fast a step runs, not what it computes (up to floating-point rounding).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from utils.errors import UserError

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class SpeedOptions:
    channels_last: bool = False
    amp: str = "off"
    compile: bool = False

    def validate(self, device: torch.device) -> None:
        if self.amp not in AMP_DTYPES:
            raise UserError(f"unknown --amp {self.amp!r}; choose one of: {', '.join(AMP_DTYPES)}")
        if self.amp != "off" and device.type != "cuda":
            raise UserError(f"--amp {self.amp} needs a CUDA device (got {device}); drop --amp or add --cuda")
        if self.amp == "bf16" and not torch.cuda.is_bf16_supported():
            raise UserError("--amp bf16 is not supported by this GPU; use --amp fp16")

    def autocast(self, device: torch.device):
        """Context manager for forward passes (a no-op without AMP)."""
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[self.amp])

    def grad_scaler(self, device: torch.device):
        """fp16 needs loss scaling; bf16 and fp32 do not."""
        return torch.amp.GradScaler(device.type) if self.amp == "fp16" else None

    def inputs(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last and batch.ndim == 4 else batch


def prepare_model(model: nn.Module, options: SpeedOptions) -> nn.Module:
    """Apply channels-last; compiling happens on the (possibly DDP-wrapped) model via :func:`compiled`."""
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def compiled(model: nn.Module, options: SpeedOptions) -> nn.Module:
    return torch.compile(model) if options.compile else model
