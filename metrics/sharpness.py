"""Worst-case sharpness of the training loss around a network's weights (Keskar et al. 2017; Jiang et
al. 2020, appendix C.4-C.5), written anew.

The worst case over a box ``|u_i| <= b_i`` is approximated by projected signed gradient ascent on the
training cross-entropy from ``u = 0``, with a step of the box's whole width: each step sends every
coordinate whose gradient is not zero to the face of the box its gradient's sign points to (the
corner where the loss's linear approximation is largest), so that the ascent does reach the box's
boundary (a coordinate with a zero gradient keeps its value); the worst iterate counts. The boxes
(:data:`BOXES`):

- ``keskar``: ``b_i = alpha (|w_i| + 1)``, Keskar's; ``sharpness`` is ``100 (max L(w + u) - L(w)) / (1 +
  L(w))`` there with ``alpha = 5e-4`` and ``L`` the cross-entropy;
- ``isotropic``: ``b_i = alpha``, Jiang's eq. 52 (``sharpness_flatness``, ``1 / alpha'^2``) and its bounds 50-51;
- ``magnitude``: ``b_i = alpha |w_i| + eps`` (``eps = 1e-3``), the box of Jiang's magnitude-aware family
  (eqs. 58-60), the worst-case analogue of eq. 61's ``sigma^2 w_i^2 + eps^2``.

For the last two, ``alpha'`` is the largest box whose worst case raises the 0-1 training error by 0.1
(within 0.01), found by the search of ``metrics/flatness.py`` (bounds [0, 2], depth 15): the 0-1
error is read at every iterate of the ascent (from the same forward pass), and a box is decided
"above" as soon as one iterate raises it past the window. Pure functions.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from metrics.flatness import ABOVE, MAGNITUDE_EPS, TARGET, TOLERANCE, Trial, channels_last, flat_parameters, outcome

KESKAR_RADIUS = 5e-4  # Keskar et al.'s epsilon of the box

# Loss and accuracy of a flat parameter vector (P,): (mean cross-entropy, differentiable; accuracy)
LossAndAccuracy = Callable[[torch.Tensor], tuple[torch.Tensor, float]]


def keskar_box(weights: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha * (weights.abs() + 1.0)


def isotropic_box(weights: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.full_like(weights, alpha)


def magnitude_box(weights: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha * weights.abs() + MAGNITUDE_EPS


BOXES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "keskar": keskar_box, "isotropic": isotropic_box, "magnitude": magnitude_box}


def loss_and_accuracy(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, batch_size: int = 1000
                      ) -> LossAndAccuracy:
    """The mean cross-entropy (differentiable) and the accuracy of ``model`` (eval mode) on ``inputs``
    ``(N, ...)`` / ``targets`` ``(N,)`` as functions of the flat parameter vector ``(P,)``."""
    layout, _ = flat_parameters(model)
    buffers = dict(model.named_buffers())
    last = not inputs.is_cuda  # the channels-last format, where it pays (the CPU; the same values)
    inputs = channels_last(inputs) if last else inputs

    def evaluate(flat: torch.Tensor) -> tuple[torch.Tensor, float]:
        total, right = flat.new_zeros(()), 0
        parameters = layout.unflatten(flat)
        if last:
            parameters = {name: channels_last(value) for name, value in parameters.items()}
        for start in range(0, len(inputs), batch_size):
            x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
            logits = torch.func.functional_call(model, (parameters, buffers), (x,))
            total = total + F.cross_entropy(logits, y, reduction="sum")
            right += int((logits.detach().argmax(dim=1) == y).sum())
        return total / len(inputs), right / len(inputs)

    return evaluate


@dataclass(frozen=True)
class Ascent:
    """The iterates of one ascent: cross-entropy and accuracy at each (the first at ``u = 0``), and, at the
    last iterate, the fraction of coordinates on the box's boundary and of those never moved (a zero
    gradient at every step: a weight that multiplies only zero activations on these samples)."""

    losses: tuple[float, ...]
    accuracies: tuple[float, ...]
    at_boundary: float
    unmoved: float = 0.0

    @property
    def loss_increase(self) -> float:
        return max(self.losses) - self.losses[0]

    @property
    def error_rise(self) -> float:
        return self.accuracies[0] - min(self.accuracies)


def ascend(evaluate: LossAndAccuracy, weights: torch.Tensor, bound: torch.Tensor, *, steps: int = 3,
           stop: Callable[[float], bool] | None = None) -> Ascent:
    """Projected signed gradient ascent in ``|u_i| <= bound_i`` (see the module docstring), ``steps``
    steps of the box's width, ending early when ``stop(accuracy)`` holds at an iterate."""
    perturbation = torch.zeros_like(weights)
    losses, accuracies = [], []
    for step in range(steps + 1):
        point = (weights + perturbation).requires_grad_(step < steps)
        with torch.enable_grad():
            loss, accuracy = evaluate(point)
            losses.append(float(loss.detach()))
            accuracies.append(accuracy)
            if step == steps or (stop is not None and step > 0 and stop(accuracy)):
                break
            (gradient,) = torch.autograd.grad(loss, point)
        perturbation = torch.clamp(perturbation + 2.0 * bound * gradient.sign(), -bound, bound)
    on_edge = (perturbation.abs() >= bound * (1 - 1e-6)) & (bound > 0)
    unmoved = float((perturbation == 0).double().mean()) if len(losses) > 1 else 1.0
    return Ascent(tuple(losses), tuple(accuracies), float(on_edge.double().mean()), unmoved)


def keskar_sharpness(evaluate: LossAndAccuracy, weights: torch.Tensor, *, radius: float = KESKAR_RADIUS,
                     steps: int = 3) -> tuple[float, Ascent]:
    """``(100 (max L(w + u) - L(w)) / (1 + L(w)), the ascent)`` over Keskar's box of half-width ``radius``."""
    ascent = ascend(evaluate, weights, keskar_box(weights, radius), steps=steps)
    return 100.0 * ascent.loss_increase / (1.0 + ascent.losses[0]), ascent


def worst_case_judge(evaluate: LossAndAccuracy, weights: torch.Tensor, box: Callable, *, steps: int = 3,
                     target: float = TARGET, tolerance: float = TOLERANCE) -> Callable[[float, bool], Trial]:
    """``(alpha, last) -> Trial``: where the worst-case rise of the 0-1 error over ``box(weights, alpha)``
    falls (the ascent stops at the first iterate that puts it above the window, unless ``last``)."""
    with torch.no_grad():
        base = evaluate(weights)[1]

    def beyond(accuracy: float) -> bool:
        return outcome(base - accuracy, target=target, tolerance=tolerance) == ABOVE

    def judge(alpha: float, last: bool) -> Trial:
        ascent = ascend(evaluate, weights, box(weights, alpha), steps=steps, stop=None if last else beyond)
        done = (len(ascent.losses) - 1) / steps
        rise = ascent.error_rise
        details = {"loss_increase": ascent.loss_increase, "at_boundary": ascent.at_boundary,
                   "unmoved": ascent.unmoved}
        if done < 1:  # the worst case is at least this rise, at most the whole accuracy
            return Trial(alpha, ABOVE, None, (rise, base), done, None, details, estimate=rise)
        return Trial(alpha, outcome(rise, target=target, tolerance=tolerance), rise, (rise, rise), 1.0, None, details)

    return judge


def sharpness_bound(squared_norm: float, alpha: float, omega: int, m: int) -> float:
    """``||v||^2 log(2 omega) / (4 alpha^2) + log(m / alpha) + 10``: Jiang's eqs. 50-51 (``v = w - w0``
    or ``w``; their ``log(m / sigma)`` read with the box's ``alpha``)."""
    return squared_norm * math.log(2 * omega) / (4.0 * alpha**2) + math.log(m / alpha) + 10.0
