"""Jiang et al.'s conditional mutual information, and the PGDL competition's score built on it.

Both ask whether the *sign* of a measure's difference between two models tells the sign of their
generalization gaps' difference, once the pair's values of a few hyperparameters are known: a
measure that only follows one hyperparameter (say, width) is told nothing new by its sign once
width is conditioned on, and scores near 0.

- **Jiang's CMI** (Jiang, Neyshabur, Mobahi, Krishnan, Bengio, "Fantastic Generalization Measures
  and Where to Find Them", ICLR 2020, sec. 6.2): over the ordered pairs of distinct models,
  ``V_mu = sign(mu_1 - mu_2)`` and ``V_g = sign(g_1 - g_2)`` (three values: a tie is 0), and ``U_S``
  the pair's values of the hyperparameters in ``S``. For every conditioning set ``S`` of at most two
  hyperparameters (the empty set included), ``I(V_mu; V_g | U_S) / H(V_g | U_S)``, each term an
  expectation over the cells ``U_S = u`` weighted by their share of the pairs; the score is the
  minimum over the sets. A constant measure scores 0, a measure with the gap's order 1.
- **The PGDL score** (the competition's ``scoring_program/mutual_information.py``): every ordered
  pair of models, a model paired with itself included; each sign has two values, ``+`` when the
  first is strictly greater and ``-`` otherwise (a tie counts as ``-``); for every ordered pair
  ``(h1, h2)`` of distinct hyperparameters, the unweighted mean over the cells of
  ``(h1_1, h1_2, h2_1, h2_2)`` of the mutual information, divided by the mean of the gap sign's
  entropy (computed as ``-sum p log2(p + 1e-12)``, as there); the score is the minimum over the pairs
  ``(h1, h2)``. The competition averages the tasks' scores and multiplies by 100. It scores only a
  complete grid with one model per setting (:func:`check_grid`); on a complete grid every cell holds
  pairs and the unweighted mean equals the weighted one. One difference: the competition keys its
  cells by concatenated strings, which can collide for values such as ``1``/``11``; here cells are
  tuples, so they never do.

Entropies are in bits (the ratios are unit-free). Pure functions of a table: a pandas DataFrame with
the measure in column ``x``, the target (the gap) in ``y`` and one column per hyperparameter, whose
values are compared as strings.
"""
from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from utils.errors import UserError

PGDL_EPS = 1e-12  # inside the competition's entropy: log2(p + 1e-12)


@dataclass(frozen=True)
class CMI:
    """Jiang's conditional mutual information score of one measure."""

    score: float  # the minimum over the conditioning sets (NaN when no set is defined)
    worst_set: tuple[str, ...] | None  # the set that gives it (() is the empty set)
    per_set: dict[tuple[str, ...], float] = field(default_factory=dict)  # NaN where H(V_g | U_S) is 0


def _codes(frame, axes: list[str]) -> np.ndarray:
    """``(n, len(axes))`` integer codes of each model's value of each axis (values as strings)."""
    columns = [np.unique(frame[axis].astype(str).to_numpy(), return_inverse=True)[1] for axis in axes]
    return np.stack(columns, axis=1) if columns else np.zeros((len(frame), 0), dtype=int)


def _pair_cells(codes: np.ndarray, first: np.ndarray, second: np.ndarray, chosen: tuple[int, ...]) -> np.ndarray:
    """The cell of each pair ``(first[k], second[k])``: one integer per combination of the pair's values
    of the ``chosen`` axes (both models' values, in axis order)."""
    cells = np.zeros(len(first), dtype=np.int64)
    for axis in chosen:
        size = int(codes[:, axis].max()) + 1
        cells = (cells * size + codes[first, axis]) * size + codes[second, axis]
    return cells


def _joint_counts(cells: np.ndarray, gap_sign: np.ndarray, measure_sign: np.ndarray) -> np.ndarray:
    """``(cells, 3, 3)`` counts of ``(gap sign, measure sign)`` (signs in {-1, 0, 1}) per cell; only
    the cells that hold a pair."""
    _, cell_index = np.unique(cells, return_inverse=True)
    counts = np.zeros((int(cell_index.max()) + 1 if len(cells) else 0, 3, 3))
    np.add.at(counts, (cell_index, gap_sign + 1, measure_sign + 1), 1.0)
    return counts


def _mutual_information(counts: np.ndarray) -> np.ndarray:
    """``I(G; M)`` in bits of each ``(cells, a, b)`` table of counts (0 for an empty cell)."""
    total = counts.sum(axis=(1, 2), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        joint = counts / total
        outer = joint.sum(axis=2, keepdims=True) * joint.sum(axis=1, keepdims=True)
        terms = np.where(joint > 0, joint * np.log2(joint / outer), 0.0)
    return terms.sum(axis=(1, 2))


def _entropy(counts: np.ndarray, *, eps: float = 0.0) -> np.ndarray:
    """``H`` in bits of each row of ``(cells, k)`` counts; ``eps`` inside the log (the competition's)."""
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / total
        terms = np.where(p > 0, p * np.log2(p + eps), 0.0)
    return -terms.sum(axis=1)


def _signs(values: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.sign(values[first] - values[second]).astype(int)


def conditional_ratio(frame, axes: list[str], conditioning: tuple[str, ...], *, x: str = "x", y: str = "y") -> float:
    """``I(V_mu; V_g | U_S) / H(V_g | U_S)`` over the ordered pairs of distinct models of ``frame``, ``S``
    being ``conditioning`` (a subset of ``axes``); NaN when ``H(V_g | U_S)`` is 0 (the gaps' order is
    known within every cell: nothing to predict)."""
    measure, gap = frame[x].to_numpy(float), frame[y].to_numpy(float)
    first, second = (index.ravel() for index in np.meshgrid(np.arange(len(frame)), np.arange(len(frame)),
                                                            indexing="ij"))
    distinct = first != second
    first, second = first[distinct], second[distinct]
    chosen = tuple(axes.index(name) for name in conditioning)
    counts = _joint_counts(_pair_cells(_codes(frame, axes), first, second, chosen), _signs(gap, first, second),
                           _signs(measure, first, second))
    weights = counts.sum(axis=(1, 2)) / counts.sum()
    information = float(weights @ _mutual_information(counts))
    uncertainty = float(weights @ _entropy(counts.sum(axis=2)))
    return information / uncertainty if uncertainty > 1e-12 else math.nan


def jiang_cmi(frame, axes: list[str], *, x: str = "x", y: str = "y", max_set: int = 2) -> CMI:
    """Jiang's score of the measure ``x`` against the target ``y`` over the hyperparameters ``axes``:
    the minimum of :func:`conditional_ratio` over every conditioning set of at most ``max_set`` axes
    (the empty set included). Needs at least two models."""
    if len(frame) < 2:
        return CMI(math.nan, None, {})
    sets = [subset for size in range(min(max_set, len(axes)) + 1) for subset in itertools.combinations(axes, size)]
    per_set = {subset: conditional_ratio(frame, list(axes), subset, x=x, y=y) for subset in sets}
    defined = {subset: value for subset, value in per_set.items() if math.isfinite(value)}
    if not defined:
        return CMI(math.nan, None, per_set)
    worst = min(defined, key=lambda subset: (defined[subset], len(subset), subset))
    return CMI(defined[worst], worst, per_set)


# -- the PGDL competition ---------------------------------------------------------------------------------
def _pgdl_ratio(codes: np.ndarray, gap: np.ndarray, measure: np.ndarray, pair: tuple[int, int]) -> float:
    """The mean mutual information over the cells of the axes ``pair`` divided by the mean entropy of the
    gap sign, over every ordered pair of models (self-pairs included; ties count as ``-``)."""
    n = len(gap)
    first, second = (index.ravel() for index in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    gap_sign = np.where(gap[first] > gap[second], 1, -1)
    measure_sign = np.where(measure[first] > measure[second], 1, -1)
    cells = _pair_cells(codes, first, second, pair)
    expected = 1
    for axis in pair:
        expected *= (int(codes[:, axis].max()) + 1) ** 2
    counts = _joint_counts(cells, gap_sign, measure_sign)
    if len(counts) < expected:  # a cell without any pair: the competition's score is undefined there
        return math.nan
    information = float(np.mean(_mutual_information(counts)))
    uncertainty = float(np.mean(_entropy(counts.sum(axis=2), eps=PGDL_EPS)))
    return information / uncertainty


def pgdl_score(frame, axes: list[str], *, x: str = "x", y: str = "y") -> float:
    """The PGDL competition's score of one task (see the module docstring; not yet times 100): the
    minimum over the ordered pairs of distinct ``axes``. NaN with fewer than two axes, or when a cell
    of a pair of axes holds no pair of models (an incomplete grid, which :func:`check_grid` refuses)."""
    if len(axes) < 2 or len(frame) < 1:
        return math.nan
    codes = _codes(frame, list(axes))
    gap, measure = frame[y].to_numpy(float), frame[x].to_numpy(float)
    ratios = [_pgdl_ratio(codes, gap, measure, pair) for pair in itertools.permutations(range(len(axes)), 2)]
    return math.nan if any(math.isnan(value) for value in ratios) else min(ratios)


def grid_problem(frame, axes: list[str], possible: dict[str, list] | None = None) -> str | None:
    """Why ``frame`` is not a complete grid over ``axes`` with exactly one model per setting (as the
    competition's scoring program requires), or None when it is. ``possible``: each axis's possible
    values (a PGDL task's ``model_configs.json``), else the values the models have."""
    values = {axis: [str(v) for v in (possible or {}).get(axis, sorted(set(frame[axis].astype(str))))]
              for axis in axes}
    found = Counter(tuple(row) for row in frame[axes].astype(str).itertuples(index=False))
    outside = sorted(setting for setting in found if any(v not in values[a] for a, v in zip(axes, setting)))
    expected = set(itertools.product(*(values[axis] for axis in axes)))
    missing = sorted(expected - set(found))
    repeated = sorted(setting for setting, count in found.items() if count > 1)

    def named(settings: list[tuple]) -> str:
        shown = ["(" + ", ".join(f"{a}={v}" for a, v in zip(axes, setting)) + ")" for setting in settings[:3]]
        return ", ".join(shown) + (f" and {len(settings) - 3} more" if len(settings) > 3 else "")

    if outside:
        return f"{len(outside)} setting(s) outside the grid's possible values: {named(outside)}"
    if missing:
        return f"the grid over {', '.join(axes)} is incomplete: {len(missing)} of {len(expected)} settings have no " \
               f"model, e.g. {named(missing)}"
    if repeated:
        return f"{len(repeated)} setting(s) have more than one model: {named(repeated)}"
    return None


def check_grid(frame, axes: list[str], possible: dict[str, list] | None = None, *, what: str = "the models") -> None:
    """A :class:`UserError` when :func:`grid_problem` finds one (``what`` names the task in the message)."""
    problem = grid_problem(frame, axes, possible)
    if problem is not None:
        raise UserError(f"{what}: {problem}; the PGDL score needs a complete grid with one model per setting")
