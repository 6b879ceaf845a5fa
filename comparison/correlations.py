"""The rank statistics of the ranking of measures (:mod:`comparison.ranking`): Kendall's tau-b and
Spearman's rho with bootstrap intervals that resample settings (the seeds of one setting are drawn
together; a draw is a vector of counts per model, and tau-b and rho of the resampled data are
computed from those counts exactly, ties included, all draws at once), Jiang et al.'s tau (ties and
constants count 0) and their granulated Kendall coefficient over a grid's axes.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

BOOTSTRAP = 2000
MIN_GROUPS = 3  # fewer settings make no interval


# -- the bootstrap -------------------------------------------------------------------------------------
def bootstrap_counts(groups, *, resamples: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """``(resamples, n)`` counts: how often each model is in a draw of the groups with replacement
    (all of a group's models come with each draw of it)."""
    codes, index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(len(codes), size=(resamples, len(codes)))
    per_group = np.zeros((resamples, len(codes)))
    np.add.at(per_group, (np.arange(resamples)[:, None], drawn), 1.0)
    return per_group[:, index]


def counted_kendall(counts: np.ndarray, x, y) -> np.ndarray:
    """Kendall's tau-b of each resampled data set (rows of ``counts``); copies of a model tie."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    sx, sy = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])
    n = len(x)
    weighted = counts @ np.hstack([sx * sy, np.abs(sx), np.abs(sy)])  # one product for the three sums
    concordance, untied_x, untied_y = ((weighted[:, k * n:(k + 1) * n] * counts).sum(axis=1) for k in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return concordance / np.sqrt(untied_x * untied_y)


def _counted_ranks(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of each model within each resampled data set: the copies below it,
    plus half of those equal to it (itself included), plus one half."""
    below = (values[None, :] < values[:, None]).astype(float)
    equal = (values[None, :] == values[:, None]).astype(float)
    return counts @ (below + equal / 2.0).T + 0.5


def counted_spearman(counts: np.ndarray, x, y) -> np.ndarray:
    """Spearman's rho (Pearson of average ranks) of each resampled data set."""
    rx = _counted_ranks(counts, np.asarray(x, dtype=float))
    ry = _counted_ranks(counts, np.asarray(y, dtype=float))
    total = counts.sum(axis=1, keepdims=True)
    dx = rx - (counts * rx).sum(axis=1, keepdims=True) / total
    dy = ry - (counts * ry).sum(axis=1, keepdims=True) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts * dx * dy).sum(axis=1) / np.sqrt((counts * dx**2).sum(axis=1) * (counts * dy**2).sum(axis=1))


def kendall_tau_b(x, y) -> float:
    """Kendall's tau-b of one small data set (NaN when either side is constant); scipy's statistic."""
    return float(counted_kendall(np.ones((1, len(x))), x, y)[0])


def interval(draws: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of the defined draws (NaN when none is)."""
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return math.nan, math.nan
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


# -- correlations -----------------------------------------------------------------------------------------
def _quiet(function, *args):
    with warnings.catch_warnings():  # constant input: scipy warns and returns NaN, which we report
        warnings.simplefilter("ignore")
        return function(*args)


def correlate(x, y, groups, *, resamples: int = BOOTSTRAP, seed: int = 0) -> dict:
    """Kendall and Spearman of ``x`` against ``y`` with their bootstrap intervals (see the module docstring)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n_groups = len(set(map(str, groups)))
    found = {"kendall_tau": math.nan, "tau_low": math.nan, "tau_high": math.nan, "p": math.nan,
             "spearman": math.nan, "rho_low": math.nan, "rho_high": math.nan, "spearman_p": math.nan,
             "n_models": len(x), "n_groups": n_groups}
    if len(x) < 3 or len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
        return found
    kendall, spearman = _quiet(stats.kendalltau, x, y), _quiet(stats.spearmanr, x, y)
    found |= {"kendall_tau": float(kendall.statistic), "p": float(kendall.pvalue),
              "spearman": float(spearman.statistic), "spearman_p": float(spearman.pvalue)}
    if n_groups >= MIN_GROUPS and resamples > 0:
        counts = bootstrap_counts(groups, resamples=resamples, seed=seed)
        found["tau_low"], found["tau_high"] = interval(counted_kendall(counts, x, y))
        found["rho_low"], found["rho_high"] = interval(counted_spearman(counts, x, y))
    return found


def jiang_tau(x, y) -> float:
    """Jiang et al.'s tau: the mean over the pairs of ``sign(x_i - x_j) sign(y_i - y_j)``, so a tie, and a
    constant ``x`` or ``y``, counts 0 (NaN with fewer than 2 points: no pair)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan
    first, second = np.triu_indices(len(x), k=1)
    return float(np.mean(np.sign(x[first] - x[second]) * np.sign(y[first] - y[second])))


def granulated_kendall(frame, axes: list[str]) -> tuple[float, dict[str, float]]:
    """``(overall, {axis: psi})`` of a frame with columns ``x``, ``y``, ``seed`` and the ``axes``: psi is the
    mean of :func:`jiang_tau` over the groups of models that share every other axis and the seed and hold
    at least 2 values of the axis; the overall coefficient the mean of psi over the axes that have groups
    (NaN for an axis without any)."""
    import pandas as pd

    x, y = frame.x.to_numpy(float), frame.y.to_numpy(float)
    first, second = np.triu_indices(len(frame), k=1)
    concordance = np.sign(x[first] - x[second]) * np.sign(y[first] - y[second])
    per_axis = {}
    for axis in axes:
        others = [column for column in axes if column != axis] + ["seed"]
        groups = frame[others].apply(lambda column: column.map(str)).groupby(others, sort=False).ngroup().to_numpy()
        values = pd.factorize(frame[axis].map(str))[0]  # map, not astype: a missing value is "nan", not NaN
        count = int(groups.max()) + 1 if len(groups) else 0
        distinct = np.bincount(np.unique(np.column_stack([groups, values]), axis=0)[:, 0], minlength=count)
        inside = groups[first] == groups[second]
        pairs = np.bincount(groups[first][inside], minlength=count)
        sums = np.bincount(groups[first][inside], concordance[inside], minlength=count)
        counted = (distinct >= 2) & (pairs > 0)
        per_axis[axis] = float(np.mean(sums[counted] / pairs[counted])) if counted.any() else math.nan
    defined = [value for value in per_axis.values() if np.isfinite(value)]
    return (float(np.mean(defined)) if defined else math.nan), per_axis
