"""Evaluation: loss and top-k accuracy (in percent) over a split, summed across ranks."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
from torch import nn

from training.performance import SpeedOptions


@dataclass(frozen=True)
class EvalResult:
    loss: float
    top1: float
    top5: float | None
    samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(
    model: nn.Module, batches, *, num_classes: int, distributed: bool = False, speed: SpeedOptions = SpeedOptions()
) -> EvalResult:
    """Mean cross-entropy and top-1 (and top-5 when there are at least 5 classes) accuracy in %."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top1, top5, count
    k = 5 if num_classes >= 5 else 1
    with torch.no_grad():
        for inputs, labels in batches:
            with speed.autocast(inputs.device):
                logits = model(speed.inputs(inputs)).float()
            totals[0] += nn.functional.cross_entropy(logits, labels, reduction="sum").double()
            ranked = logits.topk(k, dim=1).indices
            hits = ranked == labels[:, None]
            totals[1] += hits[:, 0].sum()
            totals[2] += hits.any(dim=1).sum()
            totals[3] += len(labels)
    if distributed:
        dist.all_reduce(totals)
    model.train(was_training)
    loss, top1, top5, count = totals.tolist()
    count = max(count, 1.0)
    return EvalResult(loss / count, 100 * top1 / count, 100 * top5 / count if num_classes >= 5 else None, int(count))
