"""Robust statistics of the ranking: Dziugaite et al.'s environments, weighted by how surely the test
set tells their targets apart, their worst case, and Holm's correction of many tests.

Dziugaite, Drouin, Neal, Rajkumar, Caballero, Wang, Mitliagkas, Roy, "In Search of Robust Measures
of Generalization", NeurIPS 2020 (code: nitarshan/robust-generalization-measures, ``coupled_network/``):

- an *environment* is a pair of hyperparameter settings that differ in exactly one hyperparameter
  (its *axis*); its pairs of models are every model of one setting with every model of the other
  (seeds are no hyperparameter);
- a pair's *sign-error* is 0 when the sign of the measure's difference, turned by the sign the measure
  is expected to have, is the sign of the target's difference, 1 when it is the opposite, and 1/2
  when either difference is 0: ``(1 - o sign(dx) sign(dy)) / 2``;
- a pair's *weight* is how surely the test set tells the two targets apart. Each target measured on
  a test set of n examples is within t of its true value with probability at least
  ``1 - 2 exp(-2 n t^2)`` (Hoeffding); with ``t`` half of their difference ``d`` (a fraction), both
  are with probability at least ``(1 - 2 exp(-n d^2 / 2))^2``, and the pair's weight is that bound
  less 1/2, clipped at 0 (the reference's ``hoeffding_weight``, then ``(w - 0.5)_+``). Two models
  measured on test sets of different sizes get the product of their two factors;
- an environment's sign-error is the weighted mean over its pairs, its *effective sample size*
  ``(sum w)^2 / sum w^2``; an environment whose effective sample size is below :data:`MIN_ESS` (the
  reference's threshold) is left out, and a measure's *robust sign-error* is the largest sign-error
  of the environments that are left in.

Unweighted (``weighted=False``, ``--no-noise-filter``), every pair weighs 1, as the reference does
without its noise filter.

Holm, "A Simple Sequentially Rejective Multiple Test Procedure", Scand. J. Statist. 1979: the
step-down correction of ``m`` p-values, valid under any dependence between the tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_WEIGHT = 0.5  # a pair counts only above this Hoeffding probability, by what it exceeds it: (w - 0.5)_+
MIN_ESS = 12.0  # the reference's minimum effective sample size of an environment (its paper's figures)
ROBUST_ERROR = 0.5  # a robust measure's worst environment must do better than a coin flip
TIE = 0.5  # a pair whose measures (or targets) are equal predicts nothing: half wrong, as a coin flip
ENVIRONMENT_COLUMNS = ("axis", "environment", "first", "second", "pairs", "weight", "weight_squared", "ess",
                       "error", "largest_difference", "n")


def hoeffding_weight(difference, n_first, n_second) -> np.ndarray:
    """The pair weight ``(P - 1/2)_+`` of targets that differ by ``difference`` (a fraction, e.g. 0.02 for
    2 points) measured on ``n_first`` and ``n_second`` test examples, ``P`` the Hoeffding bound on the
    probability that both are within half the difference of their true values (see the module)."""
    difference = np.abs(np.asarray(difference, dtype=float))

    def within(n):
        return np.clip(1.0 - 2.0 * np.exp(-np.asarray(n, dtype=float) * difference**2 / 2.0), 0.0, None)

    return np.clip(within(n_first) * within(n_second) - MIN_WEIGHT, 0.0, None)


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _codes(values) -> tuple[np.ndarray, list]:
    """Integer codes of ``values`` in their natural order (numbers by value), and the distinct values."""
    distinct = list(dict.fromkeys(values))
    try:
        distinct.sort(key=float)
    except (TypeError, ValueError):
        distinct.sort(key=str)
    index = {repr(value): code for code, value in enumerate(distinct)}
    return np.array([index[repr(value)] for value in values], dtype=int), distinct


def environments(frame, axes: list[str], *, weighted: bool = True, scale: float = 0.01):
    """One row per environment of ``frame`` (columns ``x`` the measure, ``y`` the target, ``n`` the test-set
    size of each model's target, and the ``axes``): its axis, a name (``lr 0.01 → 0.02 at depth=3``), its
    two settings, its pairs of models, the sum of their weights and of their squared weights, the
    effective sample size, the sign-error for an orientation of +1 (a higher measure predicts a higher
    target; NaN when no pair carries weight), the largest difference of the targets over its pairs and the
    smallest test set. ``scale`` turns a target difference into a fraction (0.01: points of accuracy)."""
    import pandas as pd

    if not axes or len(frame) < 2:
        return pd.DataFrame(columns=list(ENVIRONMENT_COLUMNS))
    coded = [_codes(list(frame[axis])) for axis in axes]
    codes = np.stack([found for found, _ in coded], axis=1)
    first, second = np.triu_indices(len(frame), k=1)
    differ = codes[first] != codes[second]
    single = differ.sum(axis=1) == 1
    first, second, axis = first[single], second[single], differ[single].argmax(axis=1)
    at = np.arange(len(first))
    context = codes[first].copy()
    context[at, axis] = -1
    low = np.minimum(codes[first, axis], codes[second, axis])
    high = np.maximum(codes[first, axis], codes[second, axis])
    keys, ids = np.unique(np.column_stack([axis, context, low, high]), axis=0, return_inverse=True)
    ids = ids.reshape(-1)
    x, y, n = frame.x.to_numpy(float), frame.y.to_numpy(float), frame.n.to_numpy(float)
    dy = y[first] - y[second]
    errors = (1.0 - np.sign(x[first] - x[second]) * np.sign(dy)) / 2.0
    weights = hoeffding_weight(dy * scale, n[first], n[second]) if weighted else np.ones(len(first))
    count = len(keys)
    total, squared = np.bincount(ids, weights, count), np.bincount(ids, weights**2, count)
    wrong, pairs = np.bincount(ids, weights * errors, count), np.bincount(ids, minlength=count)
    largest, smallest = np.full(count, -np.inf), np.full(count, np.inf)
    np.maximum.at(largest, ids, np.abs(dy))
    np.minimum.at(smallest, ids, np.minimum(n[first], n[second]))
    rows = []
    for k, key in enumerate(keys):
        name, values = axes[key[0]], coded[key[0]][1]
        where = ", ".join(f"{axes[a]}={_label(coded[a][1][key[1 + a]])}" for a in range(len(axes)) if a != key[0])
        lower, upper = _label(values[key[-2]]), _label(values[key[-1]])
        rows.append({"axis": name, "environment": f"{name} {lower} → {upper}" + (f" at {where}" if where else ""),
                     "first": f"{name}={lower}", "second": f"{name}={upper}", "pairs": int(pairs[k]),
                     "weight": float(total[k]), "weight_squared": float(squared[k]),
                     "ess": float(total[k] ** 2 / squared[k]) if squared[k] > 0 else 0.0,
                     "error": float(wrong[k] / total[k]) if total[k] > 0 else math.nan,
                     "largest_difference": float(largest[k]), "n": float(smallest[k])})
    return pd.DataFrame(rows, columns=list(ENVIRONMENT_COLUMNS))


def kept(found, min_ess: float = MIN_ESS):
    """Whether each environment of :func:`environments` is judged: it carries weight and its effective
    sample size reaches ``min_ess`` (within floating-point closeness, as the reference compares)."""
    ess = found.ess.to_numpy(float)
    return (found.weight.to_numpy(float) > 0) & ((ess > min_ess) | np.isclose(ess, min_ess))


def oriented(errors, orientation: int) -> np.ndarray:
    """The sign-errors of :func:`environments` (orientation +1) for ``orientation`` (-1: a lower measure
    predicts a higher target; 0: nothing is predicted, NaN)."""
    errors = np.asarray(errors, dtype=float)
    return errors if orientation > 0 else 1.0 - errors if orientation < 0 else np.full(errors.shape, math.nan)


@dataclass(frozen=True)
class Robustness:
    """One measure's environments against one target, summarized."""

    environments: int  # pairs of settings that differ in one axis
    weighted: int  # of them, those with a pair that carries weight
    kept: int  # of them, those whose effective sample size reaches the threshold: the judged ones
    ess: float  # the effective sample size of every pair of every environment together
    robust_error: float  # the largest sign-error of the judged environments (NaN without any)
    worst_axis: str
    worst: str  # the worst environment's name
    worst_ess: float
    mean: float  # over the judged environments
    median: float
    p90: float

    def columns(self) -> dict:
        """The columns of ranking.csv."""
        return {"environments": self.environments, "weighted_environments": self.weighted,
                "kept_environments": self.kept, "effective_sample_size": self.ess,
                "robust_sign_error": self.robust_error, "worst_environment_axis": self.worst_axis,
                "worst_environment": self.worst, "worst_environment_ess": self.worst_ess,
                "mean_sign_error": self.mean, "median_sign_error": self.median, "p90_sign_error": self.p90}


def robustness(found, orientation: int, *, min_ess: float = MIN_ESS) -> Robustness:
    """The summary of a measure's :func:`environments` for ``orientation`` (see :class:`Robustness`)."""
    total, squared = float(found.weight.sum()), float(found.weight_squared.sum())
    counts = (len(found), int((found.weight > 0).sum()), int(kept(found, min_ess).sum()),
              total**2 / squared if squared > 0 else 0.0)
    judged = found[kept(found, min_ess)]
    judged = judged.assign(oriented=oriented(judged.error, orientation))
    if judged.empty or orientation == 0:
        return Robustness(*counts, math.nan, "", "", math.nan, math.nan, math.nan, math.nan)
    worst = judged.sort_values(["oriented", "axis", "environment"], ascending=[False, True, True]).iloc[0]
    errors = judged.oriented.to_numpy(float)
    return Robustness(*counts, float(worst.oriented), str(worst.axis), str(worst.environment), float(worst.ess),
                      float(errors.mean()), float(np.percentile(errors, 50)), float(np.percentile(errors, 90)))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values of ``p_values`` (NaN stays NaN and does not count in ``m``):
    the i-th smallest of m becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    defined = np.flatnonzero(np.isfinite(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled) if m else scaled
    return adjusted
