"""PAC-Bayes flatness (Jiang et al. 2020, appendix C.3 and C.5) as nitarshan/robust-generalization-
measures' ``_pacbayes_sigma`` computes it, written anew, and the search the worst-case sharpness
measures share (``metrics/sharpness.py``).

- **The criterion**: the largest ``sigma`` whose perturbation raises the expected 0-1 training error
  by ``TARGET`` (0.1) within ``TOLERANCE`` (0.01): the displacement ``|mean perturbed accuracy -
  accuracy|``, the accuracy being the model's own on the same training samples.
- **The search**: the reference's bracket ``[LOWER, UPPER] = [0, 2]``, at most ``DEPTH`` (15) tries,
  stopping at the first whose displacement is within the tolerance (else at the last). The reference
  bisects (:func:`bisect`); ours (:func:`search`) tries the reference's midpoints while the bracket's
  lower end is 0, then the point where a power law through the bracket's two ends meets the target,
  which lands in the window in one or two tries where bisection takes three to five.
- **The perturbation**: ``u ~ N(0, sigma^2 I)`` on every parameter (eq. 53, ``1 / sigma^2``), or the
  magnitude-aware ``u_i ~ N(0, sigma^2 w_i^2 + eps^2)``, ``eps = 1e-3`` (eq. 61), as Jiang define them
  (the reference's code passes ``sigma^2`` and ``sigma^2 w^2 + eps^2`` to ``torch.normal`` as standard
  deviations); ``DRAWS`` (10) Monte Carlo draws per sigma.

What makes it cheaper than the reference's loop: the draws are fixed once and scaled by each sigma
(common random numbers: the estimate is a smooth function of sigma, where the reference draws anew
at every sigma), and evaluated without copying the model (``torch.func.functional_call`` over a
stack of parameter vectors; in the channels-last memory format on the CPU, where convolutions run
about 1.5x faster in it). A try is decided as soon as the samples seen settle it: after each batch,
the displacement's bounds (the unseen samples all right, or all wrong) either fall on one side of
the window or not; only a try whose displacement lands near the window is evaluated whole, which
changes nothing that a full evaluation would decide. And the search interpolates once it has a
measured point below the window (:func:`search`), so that it tries fewer points near the window, the
ones that cost a whole evaluation. Pure functions.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

TARGET = 0.1  # the rise of the 0-1 training error (the reference's accuracy_displacement)
TOLERANCE = 0.01  # how close the rise must come to the target (the reference's displacement_tolerance)
LOWER, UPPER, DEPTH = 0.0, 2.0, 15  # the reference's search bounds and depth
DRAWS = 10  # the reference's montecarlo_samples
CONFIDENCE = 1e-4  # the chance that a try decided before the end is decided otherwise than by all the samples
MAGNITUDE_EPS = 1e-3  # Jiang's eps of the magnitude-aware perturbation
BELOW, WITHIN, ABOVE = -1, 0, 1  # a trial's outcome: the rise is short of, within, or beyond the window
OUTCOMES = {BELOW: "below", WITHIN: "within", ABOVE: "above"}


def outcome(rise: float, *, target: float = TARGET, tolerance: float = TOLERANCE) -> int:
    """Where ``rise`` falls: ``WITHIN`` when ``|rise - target| < tolerance``, else ``ABOVE`` or ``BELOW``."""
    if abs(rise - target) < tolerance:
        return WITHIN
    return ABOVE if rise > target else BELOW


@dataclass(frozen=True)
class Trial:
    """One value tried: its outcome, the rise measured (``None`` when decided before the end), the
    bounds on the rise from the work done, the fraction of the work done, the Monte Carlo standard
    error of the rise (over the draws; ``None`` when decided early or with one draw), details, and an
    estimate of the rise from the work done (the rise itself when measured; it only guides the search)."""

    value: float
    outcome: int
    rise: float | None
    bounds: tuple[float, float]
    done: float = 1.0
    standard_error: float | None = None
    details: dict = field(default_factory=dict)
    estimate: float | None = None

    @property
    def guess(self) -> float | None:
        """The rise, else its estimate from the work done."""
        return self.rise if self.rise is not None else self.estimate

    def record(self) -> dict:
        return {"value": self.value, "outcome": OUTCOMES[self.outcome], "rise": self.rise,
                "bounds": list(self.bounds), "done": round(self.done, 4), "standard_error": self.standard_error,
                **({"estimate": self.estimate} if self.rise is None and self.estimate is not None else {}),
                **self.details}


@dataclass(frozen=True)
class Search:
    """A bisection's outcome: the value returned (the last midpoint), every trial in order, and the
    bracket it ended with (the search's resolution)."""

    value: float
    trials: tuple[Trial, ...]
    bracket: tuple[float, float]

    @property
    def reached(self) -> bool:
        """Whether the last try's rise fell within the window (else the depth ran out)."""
        return bool(self.trials) and self.trials[-1].outcome == WITHIN

    @property
    def never_below(self) -> bool:
        """Whether every try rose past the window, down to the smallest: no value of the bracket but 0
        keeps the rise within it (the measure is undefined)."""
        return bool(self.trials) and all(trial.outcome == ABOVE for trial in self.trials)

    @property
    def flatness(self) -> float:
        """``1 / value^2``: Jiang's form (larger: sharper)."""
        return 1.0 / self.value**2 if self.value > 0 else math.inf

    def record(self) -> dict:
        final = self.trials[-1]
        return {"value": self.value, "reached": self.reached, "rise": final.rise,
                "standard_error": final.standard_error, "bracket": list(self.bracket),
                "evaluations": round(sum(trial.done for trial in self.trials), 3),
                "trials": [trial.record() for trial in self.trials]}


def bisect(judge: Callable[[float, bool], Trial], *, lower: float = LOWER, upper: float = UPPER,
           depth: int = DEPTH) -> Search:
    """The reference's bisection: ``judge(midpoint, last)`` says where each midpoint's rise falls
    (``last``: the depth's final try, which must be measured whole); stops at the first ``WITHIN``."""
    trials: list[Trial] = []
    value = (lower + upper) / 2.0
    for step in range(depth):
        value = (lower + upper) / 2.0
        trials.append(judge(value, step == depth - 1))
        if trials[-1].outcome == WITHIN:
            break
        lower, upper = (lower, value) if trials[-1].outcome == ABOVE else (value, upper)
    return Search(value, tuple(trials), (lower, upper))


def search(judge: Callable[[float, bool], Trial], *, lower: float = LOWER, upper: float = UPPER,
           depth: int = DEPTH, target: float = TARGET, lower_first: bool = False, descent: float = 2.0) -> Search:
    """The reference's bracket, depth and stopping rule (:func:`bisect`), with interpolation: while the
    bracket's lower end is ``lower`` (nothing measured below the window yet) the try is the midpoint, as
    the reference's (the tries from above are cheap: decided after a few samples); then the point where
    the power law through the two ends' rises (measured, or estimated from the work done) meets
    ``target``, kept within the middle 80% of the bracket, or the midpoint after the same end moved
    twice in a row (regula falsi stalls when one end stays). The rise grows about as a power of the
    perturbation's size, so this lands in the window in one or two tries near it, where bisection takes
    three to five, and a try near the window costs a whole evaluation. ``descent``: while nothing is
    below the window, each try divides the upper end by it (2: the reference's midpoints; a search whose
    tries are all cheap, and whose value is orders of magnitude below ``upper``, takes 4 so that its
    tries from above do not use up the depth). ``lower_first``: try ``lower``
    itself first, where the perturbation's smallest size is not 0 (a magnitude-aware box's ``eps``): when
    even it rises past the window, no value can be found, and the search ends there (``never_below``)."""
    trials: list[Trial] = []
    low, high = (lower, 0.0), (upper, None)
    value, moved = (lower + upper) / 2.0, []
    if lower_first:  # within the window at ``lower`` is no answer: a larger value may be within it too
        trials.append(judge(lower, False))
        if trials[-1].outcome == ABOVE:
            return Search(lower, tuple(trials), (lower, upper))
        low = (lower, trials[-1].guess)
    for step in range(len(trials), depth):
        value = _next_try(low, high, target, stalled=moved[-2:] in (["low", "low"], ["high", "high"]),
                          descent=descent if low[0] == lower and trials else 2.0)
        trials.append(judge(value, step == depth - 1))
        found = trials[-1]
        if found.outcome == WITHIN:
            break
        if found.outcome == ABOVE:
            high, moved = (value, found.guess), moved + ["high"]
        else:
            low, moved = (value, found.guess), moved + ["low"]
    return Search(value, tuple(trials), (low[0], high[0]))


def _next_try(low: tuple[float, float | None], high: tuple[float, float | None], target: float, *,
              stalled: bool, descent: float = 2.0) -> float:
    """The next value between the ends ``(value, rise)`` of the bracket (see :func:`search`)."""
    (x0, r0), (x1, r1) = low, high
    middle = x0 + (x1 - x0) / descent
    if stalled or x0 <= 0 or r0 is None or r1 is None or not 0 < r0 < target < r1:
        return middle
    slope = math.log(r1 / r0) / math.log(x1 / x0)
    x = x0 * math.exp(math.log(target / r0) / slope)
    margin = 0.1 * (x1 - x0)
    return min(max(x, x0 + margin), x1 - margin)


def rise_bounds(low: float, high: float, base: float) -> tuple[float, float]:
    """The least and greatest ``|a - base|`` over ``a`` in ``[low, high]``."""
    largest = max(abs(low - base), abs(high - base))
    return (0.0 if low <= base <= high else min(abs(low - base), abs(high - base))), largest


# -- evaluating many perturbed copies at once ------------------------------------------------------------
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


CorrectCounts = Callable[[torch.Tensor], Iterator[tuple[torch.Tensor, int]]]


def batch_bounds(samples: int, *, first: int = 32, largest: int = 128) -> list[tuple[int, int]]:
    """``(start, stop)`` of the batches the samples are evaluated in: small first (a try far from the
    window is decided after a few), then doubling up to ``largest`` (128: on 2 CPU cores a LeNet's and a
    ConvNet's forward pass costs least per sample in batches of about 128)."""
    found, start, size = [], 0, first
    while start < samples:
        found.append((start, min(samples, start + size)))
        start, size = start + size, min(2 * size, largest)
    return found


def channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """A 4-d tensor (a batch of images, a convolution's weight) in the channels-last memory format, the
    one the CPU's convolutions run fastest in (the values are the same); others as they are."""
    return tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor


def stacked_correct(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *,
                    vectorize: bool | None = None, order_seed: int | None = None) -> CorrectCounts:
    """``stack (S, P) -> iterator of (correct (S,), batch size)``: for each batch of ``inputs`` ``(N, ...)``
    in turn (:func:`batch_bounds`), how many of its samples each parameter vector of the stack
    classifies as ``targets`` ``(N,)`` (the model in eval mode). ``vectorize``: the vectors of the stack
    evaluated together under ``vmap`` (default: on a GPU; on 2 CPU cores a loop over them was faster
    for a LeNet, benchmarks/bench_sharpness.py), else one ``functional_call`` each. ``order_seed``: the
    samples in a seeded random order (the judge's statistical early decision needs one)."""
    layout, _ = flat_parameters(model)
    buffers = dict(model.named_buffers())
    vectorize = inputs.is_cuda if vectorize is None else vectorize
    if order_seed is not None:  # any first samples are then a uniformly random draw of them
        order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(order_seed)).to(inputs.device)
        inputs, targets = inputs[order], targets[order]
    last = not vectorize and not inputs.is_cuda  # the channels-last format, where it pays (the CPU)
    inputs = channels_last(inputs) if last else inputs

    def correct(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        parameters = layout.unflatten(flat)
        if last:
            parameters = {name: channels_last(value) for name, value in parameters.items()}
        logits = torch.func.functional_call(model, (parameters, buffers), (x,))
        return (logits.argmax(dim=1) == y).sum()

    over_stack = torch.func.vmap(correct, in_dims=(0, None, None))

    @torch.inference_mode()
    def batches(stack: torch.Tensor) -> Iterator[tuple[torch.Tensor, int]]:
        for start, stop in batch_bounds(len(inputs)):
            x, y = inputs[start:stop], targets[start:stop]
            found = over_stack(stack, x, y) if vectorize else torch.stack([correct(row, x, y) for row in stack])
            yield found, stop - start

    return batches


def serfling_radius(seen: int, samples: int, delta: float) -> float:
    """The ``t`` such that the mean of ``seen`` of ``samples`` values in ``[0, 1]``, drawn uniformly
    without replacement, is within ``t`` of the mean of all of them with probability at least
    ``1 - delta``: ``sqrt(log(2 / delta) (1 - (seen - 1) / samples) / (2 seen))`` (Serfling 1974,
    "Probability inequalities for the sum in sampling without replacement", Hoeffding's bound with
    the finite-population factor); 0 once every value is seen."""
    if seen >= samples:
        return 0.0
    return math.sqrt(math.log(2.0 / delta) * (1.0 - (seen - 1) / samples) / (2.0 * seen))


def pacbayes_judge(correct: CorrectCounts, weights: torch.Tensor, *, base_accuracy: float, samples: int,
                   draws: int = DRAWS, seed: int = 0, magnitude_eps: float | None = None,
                   target: float = TARGET, tolerance: float = TOLERANCE,
                   confidence: float | None = None) -> Callable[[float, bool], Trial]:
    """``(sigma, last) -> Trial``: where the expected accuracy displacement of the perturbed weights
    falls. ``weights``: ``(P,)``; ``correct``: :func:`stacked_correct` over ``samples`` samples on which
    the unperturbed model's accuracy is ``base_accuracy``; the ``draws`` standard normal draws are
    fixed by ``seed``; ``magnitude_eps``: the magnitude-aware perturbation (None: isotropic).

    A try is decided before the end when the samples seen settle it: for sure, when the unseen ones, all
    right or all wrong, cannot move the displacement across the window; and, with ``confidence``
    ``delta`` (the samples being in a uniformly random order: ``stacked_correct``'s ``order_seed``),
    when the accuracy over the samples seen, within :func:`serfling_radius`, puts the whole sample's
    displacement on one side of the window with probability at least ``1 - delta``. Either way only
    the tries near the window are evaluated whole; the second decides the tries far from it after a
    few dozen samples."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((draws, weights.numel()), generator=generator, dtype=weights.dtype).to(weights.device)
    total = draws * samples

    def judge(sigma: float, last: bool) -> Trial:
        scale = sigma if magnitude_eps is None else torch.sqrt(sigma**2 * weights**2 + magnitude_eps**2)
        counts, seen = torch.zeros(draws, dtype=torch.float64), 0
        for batch, size in correct(weights + noise * scale):
            counts += batch.double().cpu()
            seen += size
            right = float(counts.sum())
            low, high = right / total, (right + draws * (samples - seen)) / total
            if confidence is not None:
                radius = serfling_radius(seen, samples, confidence)
                low, high = max(low, right / (draws * seen) - radius), min(high, right / (draws * seen) + radius)
            bounds = rise_bounds(low, high, base_accuracy)
            decided = outcome(bounds[0], target=target, tolerance=tolerance)
            if not last and seen < samples and decided != WITHIN and \
                    decided == outcome(bounds[1], target=target, tolerance=tolerance):
                return Trial(sigma, decided, None, bounds, seen / samples,
                             estimate=abs(right / (draws * seen) - base_accuracy))
        accuracies = counts / samples
        rise = abs(float(accuracies.mean()) - base_accuracy)
        error = float(accuracies.std()) / math.sqrt(draws) if draws > 1 else None
        return Trial(sigma, outcome(rise, target=target, tolerance=tolerance), rise, (rise, rise), 1.0, error)

    return judge


# -- Jiang's bounds built on the sigma found --------------------------------------------------------------
def pacbayes_bound(squared_norm: float, sigma: float, m: int) -> float:
    """``||v||^2 / (4 sigma^2) + log(m / sigma) + 10`` (eqs. 48-49 with ``v = w - w0`` or ``w``; 50-51
    take ``log(2 omega) ||v||^2`` for ``||v||^2``)."""
    return squared_norm / (4.0 * sigma**2) + math.log(m / sigma) + 10.0


def magnitude_bound(squared_norm: float, differences: torch.Tensor, sigma: float, m: int, *,
                    eps: float = MAGNITUDE_EPS, spread: float = 1.0) -> float:
    """``1/4 sum_i log((eps^2 + (sigma^2 + spread) ||v||^2 / omega) / (eps^2 + sigma^2 (w_i - w0_i)^2))
    + log(m / sigma) + 10`` over the ``omega`` weights (``differences``: ``w - w0``, ``(omega,)``): eqs.
    56-57 with ``spread`` 1, 58-59 with ``4 log(2 omega)``."""
    omega = differences.numel()
    numerator = eps**2 + (sigma**2 + spread) * squared_norm / omega
    denominator = eps**2 + sigma**2 * differences.double() ** 2
    return 0.25 * float(torch.log(numerator / denominator).sum()) + math.log(m / sigma) + 10.0
