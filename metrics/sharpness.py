"""Flatness and sharpness of the training loss around a network's weights.

Definitions follow Jiang et al. 2020 ("Fantastic Generalization Measures", appendix C.3-C.4) as the
PyTorch reimplementation nitarshan/robust-generalization-measures (``measures.py``,
``_pacbayes_sigma``) computes them, written anew, with the training cross-entropy as the loss:

- **PAC-Bayes sigma**: the largest ``sigma`` such that the expected training-loss increase under an
  isotropic Gaussian perturbation ``u ~ N(0, sigma^2 I)`` of every parameter stays within a
  tolerance (Jiang's 0.1), found by bisection; the expectation is a Monte Carlo mean over
  ``samples`` draws. The measure is ``1 / sigma^2`` (Jiang's eq. 53, "PAC-Bayes flatness").
- **Magnitude-aware sigma**: the same with ``u_i ~ N(0, sigma^2 w_i^2 + eps^2)`` (eq. 61, eps 1e-3).
- **Worst-case sharpness** (Keskar et al. 2017, as Jiang's "sharpness" family): the largest loss
  increase over the box ``|u_i| <= alpha (|w_i| + 1)``, approximated by a few steps of projected
  signed gradient ascent; the measure at a fixed ``alpha`` is Keskar's
  ``100 (max L(w + u) - L(w)) / (1 + L(w))``, and ``1 / alpha^2`` of the largest ``alpha`` whose
  increase stays within the tolerance is Jiang's "sharpness flatness" (eq. 52).

Speed: the search interpolates (safeguarded regula falsi in ``sigma^2``) instead of
bisecting, so it needs a handful of evaluations instead of about fifteen, and the Monte Carlo draws
are evaluated together, ``torch.func.functional_call`` under
``torch.func.vmap`` over a stack of perturbed parameter vectors, instead of copying, perturbing and
evaluating the model once per draw. The draws are fixed once (common random numbers: each
``sigma`` scales the same standard normal draws), so the estimated increase is a smooth function
of ``sigma`` and the search does not chase Monte Carlo noise.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

TOLERANCE = 0.1  # Jiang's: the expected training-loss increase the perturbation may cause
MAGNITUDE_EPS = 1e-3  # Jiang's eps of the magnitude-aware perturbation
SHARPNESS_RADIUS = 5e-4  # Keskar et al.'s epsilon of the box
PRECISION = 0.01  # the search stops when the increase is this close to the tolerance (nitarshan's)

LossOfStack = Callable[[torch.Tensor], torch.Tensor]  # (S, P) parameter vectors -> (S,) mean losses


@dataclass(frozen=True)
class ParameterLayout:
    """How a flat parameter vector ``(P,)`` maps onto a module's named parameters."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @property
    def sizes(self) -> list[int]:
        return [math.prod(shape) for shape in self.shapes]

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: tensor}`` views of ``flat`` ``(P,)`` (works under ``vmap``)."""
        return {name: piece.reshape(shape) for name, piece, shape in
                zip(self.names, torch.split(flat, self.sizes), self.shapes)}


def flat_parameters(model: nn.Module) -> tuple[ParameterLayout, torch.Tensor]:
    """The layout of ``model``'s parameters and their values as one detached vector ``(P,)``."""
    named = list(model.named_parameters())
    layout = ParameterLayout(tuple(name for name, _ in named), tuple(p.shape for _, p in named))
    return layout, torch.cat([p.detach().reshape(-1) for _, p in named])


def stacked_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, batch_size: int = 1000,
                 sample_chunk: int = 16) -> LossOfStack:
    """The mean cross-entropy of ``model`` (eval mode) on ``inputs`` ``(N, ...)`` / ``targets`` ``(N,)``
    for each parameter vector of a stack ``(S, P)``: ``functional_call`` vmapped over the stack,
    ``sample_chunk`` vectors and ``batch_size`` examples at a time."""
    layout, _ = flat_parameters(model)
    buffers = dict(model.named_buffers())

    def summed(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = torch.func.functional_call(model, (layout.unflatten(flat), buffers), (x,))
        return F.cross_entropy(logits, y, reduction="sum")

    over_stack = torch.func.vmap(summed, in_dims=(0, None, None))

    @torch.no_grad()
    def loss(stack: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(stack.shape[0], dtype=torch.float64, device=stack.device)
        for first in range(0, stack.shape[0], sample_chunk):
            chunk = stack[first:first + sample_chunk]
            for start in range(0, len(inputs), batch_size):
                x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
                total[first:first + len(chunk)] += over_stack(chunk, x, y).double()
        return total / len(inputs)

    return loss


def mean_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, batch_size: int = 1000
              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The mean cross-entropy as a differentiable function of the flat parameter vector ``(P,)``."""
    layout, _ = flat_parameters(model)
    buffers = dict(model.named_buffers())

    def loss(flat: torch.Tensor) -> torch.Tensor:
        total = flat.new_zeros(())
        for start in range(0, len(inputs), batch_size):
            x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
            logits = torch.func.functional_call(model, (layout.unflatten(flat), buffers), (x,))
            total = total + F.cross_entropy(logits, y, reduction="sum")
        return total / len(inputs)

    return loss


# -- the search ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """The outcome of a search: the value found, the loss increase measured there, and every
    ``(value, increase)`` tried, in order."""

    value: float
    increase: float
    trace: list[tuple[float, float]] = field(default_factory=list)

    @property
    def flatness(self) -> float:
        """``1 / value^2``: Jiang's form (larger: sharper)."""
        return 1.0 / self.value**2 if self.value > 0 else math.inf


def largest_within(increase: Callable[[float], float], *, tolerance: float = TOLERANCE, high: float = 1.0,
                   depth: int = 15, precision: float = PRECISION, power: float = 2.0,
                   known: tuple[float, float] | None = None) -> Search:
    """The largest ``x > 0`` whose ``increase(x)`` (0 at 0, growing with ``x``) stays within
    ``tolerance``: a safeguarded regula falsi on a bracket ``[low, high]``, interpolating the increase
    as a power law between the bracket's ends (linearly in ``x^power`` from 0: a loss is quadratic
    around a minimum, so ``power=2`` is nearly exact for small perturbations), falling back to
    bisection when the interpolation stalls. ``high`` grows
    (up to 20 times: doubling, or extrapolating the power law through the last two tries) while its
    increase is still within the tolerance. It stops when an ``x`` is within
    ``precision`` of the tolerance, else after ``depth`` evaluations, and returns the ``x`` tried
    whose increase came nearest to the tolerance. ``known``: an ``(x, increase(x))`` already measured,
    within the tolerance and below ``high``, which starts the bracket (it is not counted as tried)."""
    trace: list[tuple[float, float]] = []

    def probe(x: float) -> float:
        trace.append((x, increase(x)))
        return trace[-1][1]

    low, at_low = known if known is not None and known[1] <= tolerance and known[0] < high else (0.0, 0.0)
    at_high = probe(high)
    for _ in range(20):
        if at_high > tolerance:
            break
        low, at_low, high = high, at_high, _beyond(low, at_low, high, at_high, tolerance)
        at_high = probe(high)
    kept = 0  # how many steps in a row moved the same end (regula falsi stalls when one end stays)
    for _ in range(depth):
        if abs(trace[-1][1] - tolerance) <= precision or at_high <= tolerance:
            break
        x = _interpolate(low, at_low, high, at_high, tolerance, power) if abs(kept) < 2 else (low + high) / 2.0
        found = probe(x)
        if found > tolerance:
            high, at_high, kept = x, found, min(kept, 0) - 1
        else:
            low, at_low, kept = x, found, max(kept, 0) + 1
    value, found = min(trace, key=lambda pair: abs(pair[1] - tolerance))
    return Search(value, found, trace)


def _beyond(low: float, at_low: float, high: float, at_high: float, tolerance: float) -> float:
    """The next try above ``high`` whose increase is still within the tolerance: 5% past where the power
    law through the two points reaches it (between 1.2 and 4 times ``high``), else twice ``high``."""
    if low > 0 and 0 < at_low < at_high:
        slope = (math.log(at_high) - math.log(at_low)) / (math.log(high) - math.log(low))
        return min(max(1.05 * high * (tolerance / at_high) ** (1.0 / slope), 1.2 * high), 4.0 * high)
    return 2.0 * high


def _interpolate(low: float, at_low: float, high: float, at_high: float, tolerance: float, power: float) -> float:
    """Where the increase meets the tolerance between the bracket's ends, kept 5% of the bracket away
    from them: on the power law through both ends (a straight line in log-log) when both increases are
    positive, else on the line through ``(low^p, at_low)`` and ``(high^p, at_high)``."""
    if low > 0 and 0 < at_low < at_high:
        slope = (math.log(at_high) - math.log(at_low)) / (math.log(high) - math.log(low))
        x = low * math.exp((math.log(tolerance) - math.log(at_low)) / slope)
    else:
        t_low, t_high = low**power, high**power
        x = (t_low + (tolerance - at_low) * (t_high - t_low) / (at_high - at_low)) ** (1.0 / power)
    margin = 0.05 * (high - low)
    return min(max(x, low + margin), high - margin)


def expected_increase(loss: LossOfStack, weights: torch.Tensor, *, samples: int = 10, seed: int = 0,
                      magnitude_eps: float | None = None) -> Callable[[float], float]:
    """``sigma -> E_u[L(w + u)] - L(w)``, the mean over ``samples`` fixed draws of ``u = sigma z``
    (``z ~ N(0, I)`` drawn once with ``seed``), or ``u = z sqrt(sigma^2 w^2 + eps^2)`` with
    ``magnitude_eps``. ``weights``: ``(P,)``; ``loss``: of a stack (:func:`stacked_loss`)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((samples, weights.numel()), generator=generator, dtype=weights.dtype).to(weights.device)
    base = float(loss(weights[None])[0])

    def increase(sigma: float) -> float:
        if magnitude_eps is None:
            scale = sigma
        else:
            scale = torch.sqrt(sigma**2 * weights**2 + magnitude_eps**2)
        return float(loss(weights + noise * scale).mean()) - base

    return increase


def pacbayes_sigma(loss: LossOfStack, weights: torch.Tensor, *, tolerance: float = TOLERANCE, samples: int = 10,
                   seed: int = 0, magnitude_eps: float | None = None, depth: int = 15) -> Search:
    """The PAC-Bayes sigma (``magnitude_eps`` None) or its magnitude-aware variant; see the module
    docstring. ``weights``: the parameter vector ``(P,)`` at which ``loss`` is measured."""
    increase = expected_increase(loss, weights, samples=samples, seed=seed, magnitude_eps=magnitude_eps)
    # first tries: typical sigmas of trained networks (the bracket doubles from there when too small)
    return largest_within(increase, tolerance=tolerance, high=0.05 if magnitude_eps is None else 0.5, depth=depth)


# -- worst case ---------------------------------------------------------------------------------------
def worst_case_loss(loss: Callable[[torch.Tensor], torch.Tensor], weights: torch.Tensor, radius: float, *,
                    steps: int = 3) -> float:
    """``max L(w + u)`` over ``|u_i| <= radius (|w_i| + 1)``, approximated by ``steps`` steps of
    projected signed gradient ascent from ``u = 0`` (each step ``2 / steps`` of the box's half-width,
    so the ascent can reach its corners). ``loss``: differentiable, of ``(P,)`` (:func:`mean_loss`)."""
    bound = radius * (weights.abs() + 1.0)
    perturbation = torch.zeros_like(weights)
    best = -math.inf
    for step in range(steps + 1):
        point = (weights + perturbation).requires_grad_(step < steps)
        with torch.enable_grad():
            value = loss(point)
            best = max(best, float(value.detach()))
            if step == steps:
                break
            (gradient,) = torch.autograd.grad(value, point)
        perturbation = torch.clamp(perturbation + (2.0 / steps) * bound * gradient.sign(), -bound, bound)
    return best


def keskar_sharpness(loss: Callable[[torch.Tensor], torch.Tensor], weights: torch.Tensor, *,
                     radius: float = SHARPNESS_RADIUS, steps: int = 3) -> tuple[float, float]:
    """``(sharpness, L(w))``: Keskar et al.'s ``100 (max L(w + u) - L(w)) / (1 + L(w))`` over the box of
    :func:`worst_case_loss`."""
    with torch.no_grad():
        base = float(loss(weights))
    return 100.0 * (worst_case_loss(loss, weights, radius, steps=steps) - base) / (1.0 + base), base


def sharpness_radius(loss: Callable[[torch.Tensor], torch.Tensor], weights: torch.Tensor, *,
                     tolerance: float = TOLERANCE, steps: int = 3, depth: int = 12,
                     known: tuple[float, float] | None = None) -> Search:
    """The largest box radius ``alpha`` whose worst-case loss increase stays within ``tolerance``.
    ``known``: ``(alpha, worst-case increase)`` already measured (Keskar's sharpness): the search
    starts from it, first trying the radius where a power law of exponent 1.5 through it reaches the
    tolerance (the increase grows between linearly, along the gradient, and quadratically)."""
    with torch.no_grad():
        base = float(loss(weights))
    high = 1e-3
    if known is not None and known[0] > 0 and 0 < known[1] < tolerance:
        high = known[0] * (tolerance / known[1]) ** (1 / 1.5)
    return largest_within(lambda alpha: worst_case_loss(loss, weights, alpha, steps=steps) - base,
                          tolerance=tolerance, high=high, depth=depth, power=1.0, known=known)
