"""The output margin (Jiang et al. 2020, appendix C, eq. 22; Bartlett et al. 2017).

The margin of a sample is the logit of its label minus the largest other logit; the network's
margin is a low percentile of the samples' margins over the training set (Jiang: the 10th, as the
``m // 10``-th smallest, which is robust to a few misfitted samples). Pure functions.
"""
from __future__ import annotations

import torch

PERCENTILE = 10


def output_margins(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(N,)`` margins of ``logits`` ``(N, classes)`` for the labels ``targets`` ``(N,)``: the label's
    logit minus the largest other one (negative where the sample is misclassified)."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    correct = logits[rows, targets]
    others = logits.clone()
    others[rows, targets] = float("-inf")
    return correct - others.max(dim=1).values


def margin_percentile(margins: torch.Tensor, percentile: float = PERCENTILE) -> float:
    """The ``k``-th smallest margin with ``k = max(1, floor(N * percentile / 100))`` (Jiang's
    ``kthvalue(m // 10)`` for the 10th percentile)."""
    k = max(1, int(margins.numel() * percentile // 100))
    return float(margins.flatten().kthvalue(k).values)
