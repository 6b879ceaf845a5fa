"""One training epoch, and the exceptions that stop a run early."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

from training.performance import SpeedOptions
from utils.errors import UserError
from utils.progress import progress


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the run stops before the bad step is applied."""


class StopRequested(Exception):
    """SIGINT/SIGTERM arrived; the run stops at the next step."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def train_one_epoch(
    model: nn.Module,
    batches,
    optimizer: torch.optim.Optimizer,
    *,
    epoch: int,
    world_size: int = 1,
    stop_signal: Callable[[], int | None] = lambda: None,
    show_progress: bool = True,
    speed: SpeedOptions = SpeedOptions(),
    scaler=None,
) -> float:
    """Train for one pass over ``batches``; return the mean training loss over the epoch's samples.

    In a distributed run each rank's loss is weighted by its share of the global batch, so the
    averaged gradient equals that of a single process on the same global batch.
    """
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64)
    samples = 0
    bar = progress(batches, enabled=show_progress, desc=f"epoch {epoch}", unit="batch")
    for step, (inputs, labels) in enumerate(bar):
        signum = stop_signal()
        if signum:
            raise StopRequested(signum)
        optimizer.zero_grad(set_to_none=True)
        with speed.autocast(inputs.device):
            loss = nn.functional.cross_entropy(model(speed.inputs(inputs)), labels)
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"training loss became {value} at epoch {epoch}, step {step + 1}; the last snapshot on disk "
                "is intact: lower --lr, or check the data"
            )
        weight = len(labels) * world_size / batches.global_batch_size(step) if world_size > 1 else 1.0
        if scaler is None:
            (loss * weight).backward()
            optimizer.step()
        else:  # fp16: scale the loss so small gradients survive
            scaler.scale(loss * weight).backward()
            scaler.step(optimizer)
            scaler.update()
        loss_sum += value * len(labels)
        samples += len(labels)
    if world_size > 1:
        totals = torch.tensor([loss_sum.item(), float(samples)], dtype=torch.float64)
        dist.all_reduce(totals)
        loss_sum, samples = totals[0], int(totals[1].item())
    return float(loss_sum) / max(samples, 1)
