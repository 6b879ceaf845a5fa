"""Which measure tracks generalization: rank correlations of each measure with each target across models.

For every (measure, target) over the models that have both:

- Kendall's tau-b and Spearman's rho with their p-values (``scipy.stats``);
- 95% percentile bootstrap intervals that resample *settings* (the models of one ``group``, the seeds
  of one setting, are drawn together), so that seeds do not count as independent evidence. A draw
  is a vector of counts per model; tau-b and rho of the resampled data are computed from those
  counts exactly (ties included), all draws at once;
- the granulated Kendall coefficient over a grid's axes (Jiang et al., ICLR 2020): for each axis,
  the mean tau over the groups of models that differ only in that axis (every other factor and the
  seed fixed), then the mean over axes;
- Dziugaite et al.'s sign agreement (:mod:`comparison.robust`): over the pairs of runs that differ
  in exactly one axis, how often the sign of the measure's difference, turned by its expected sign,
  predicts the sign of the target's; its mean per axis and its worst axis;
- the sign the literature expects (:func:`comparison.measures.expected_sign`) and a verdict: a
  measure *tracks* a target when Kendall's p, Holm-corrected over the measures of that target, is
  below 0.05 and its tau interval (when there is one) excludes 0. It tracks it *robustly* when, in
  addition, tau has the expected sign (or there is none) and the worst axis's sign agreement is
  above 0.5;
- whether the measure is one of the seeds' or one of the field's baselines (its analysis's
  declaration says which: ``Declaration.baseline``).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from comparison.measures import TARGETS, expected_sign
from comparison.robust import holm, sign_agreement

BOOTSTRAP = 2000
MIN_GROUPS = 3  # fewer settings make no interval
MIN_MODELS = 5  # fewer models: the numbers describe these models, they are no claim
LEVEL = 0.05
ROBUST_WORST = 0.5  # the worst axis's sign agreement a robust measure must exceed (0.5: a coin flip)
SEED, BASELINE = "seeds'", "baseline"
FIXED_COLUMNS = ("model", "label", "source", "group", "seed", "epoch", "measure", "analysis", "value")
GRID_SOURCES = ("run", "pgdl")  # models of a grid (a zoo is none): the granulated and sign statistics read them


def factor_columns(table) -> list[str]:
    """The factor columns of a measures table (everything but the fixed columns and the targets)."""
    return [column for column in table.columns if column not in FIXED_COLUMNS and column not in TARGETS]


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


def granulated_kendall(frame, axes: list[str]) -> tuple[float, dict[str, float]]:
    """``(overall, {axis: psi})`` of a frame with columns ``x``, ``y``, ``seed`` and the ``axes``:
    psi is the mean tau over the groups of models that share every other axis and the seed, the
    overall coefficient the mean of the defined psi."""
    per_axis = {}
    for axis in axes:
        others = [column for column in axes if column != axis] + ["seed"]
        taus = []
        keys = frame[others].map(str).agg("|".join, axis=1) if len(frame) else frame.index  # map: NaN as "nan"
        for _, group in frame.groupby(keys, sort=False):
            if len(group) >= 2 and group[axis].map(str).nunique() >= 2:
                tau = kendall_tau_b(group.x.to_numpy(float), group.y.to_numpy(float))
                if np.isfinite(tau):
                    taus.append(tau)
        per_axis[axis] = float(np.mean(taus)) if taus else math.nan
    defined = [value for value in per_axis.values() if np.isfinite(value)]
    return (float(np.mean(defined)) if defined else math.nan), per_axis


# -- the ranking ---------------------------------------------------------------------------------------------
def tracks(row) -> bool:
    """Holm-corrected p below :data:`LEVEL`, and the tau interval (when there is one) excludes 0."""
    if not np.isfinite(row["kendall_tau"]) or not (np.isfinite(row["p_holm"]) and row["p_holm"] < LEVEL):
        return False
    return not np.isfinite(row["tau_low"]) or row["tau_low"] > 0 or row["tau_high"] < 0


def verdict(row) -> str:
    """``tracks, as expected`` / ``tracks, opposite to its literature`` / ``tracks (no expected sign)`` /
    ``does not track`` / ``undefined``."""
    if not np.isfinite(row["kendall_tau"]):
        return "undefined"
    if not tracks(row):
        return "does not track"
    if row["expected"] == 0:
        return "tracks (no expected sign)"
    return "tracks, as expected" if np.sign(row["kendall_tau"]) == row["expected"] else \
        "tracks, opposite to its literature"


def robust(row) -> bool:
    """Tracks the target (not against its literature) and its worst axis agrees more than a coin flip."""
    return row["verdict"] in ("tracks, as expected", "tracks (no expected sign)") and \
        bool(np.isfinite(row["worst_sign"]) and row["worst_sign"] > ROBUST_WORST)


def _agrees(tau: float, expected: int) -> str:
    if expected == 0 or not np.isfinite(tau) or tau == 0:
        return ""
    return "yes" if np.sign(tau) == expected else "no"


def orientation(expected: int, tau: float) -> int:
    """The sign the sign statistic predicts with: the expected one, else that of the overall tau
    (a measure with no expected sign is given the direction the data favour)."""
    if expected:
        return int(expected)
    return int(np.sign(tau)) if np.isfinite(tau) else 0


def role_of(analysis: str) -> str:
    """:data:`BASELINE` when the analysis's declaration says it is one of the field's measures
    (``baseline``), else :data:`SEED`."""
    from analyses.registry import declarations

    declared = {found.name: found for found in declarations()}.get(analysis)
    return BASELINE if getattr(declared, "baseline", False) else SEED


def _grid_statistics(grid, axes: list[str], expected: int, tau: float) -> dict:
    """The granulated Kendall coefficient and the sign statistic of one measure's runs."""
    overall, per_axis = granulated_kendall(grid, axes) if axes else (math.nan, {})
    agreement = sign_agreement(grid, axes, orientation(expected, tau))
    return {"granulated_kendall": overall, **{f"granulated_{axis}": value for axis, value in per_axis.items()},
            "sign_agreement": agreement.mean, "sign_pairs": agreement.pairs,
            **{f"sign_{axis}": value for axis, value in agreement.per_axis.items()},
            "worst_axis": agreement.worst_axis or "", "worst_sign": agreement.worst,
            "sign_from": "" if not axes else "expected" if expected else "fitted"}


def _measure_row(group, measure: str, target: str, axes: list[str], *, resamples: int, seed: int) -> dict:
    usable = group[np.isfinite(group.value.astype(float)) & np.isfinite(group[target].astype(float))]
    row = {"measure": measure, "target": target, "analysis": str(group.analysis.iloc[0]),
           **correlate(usable.value, usable[target], usable.group, resamples=resamples, seed=seed)}
    row["expected"] = expected_sign(measure, target)
    grid = usable[usable.source.isin(GRID_SOURCES)].rename(columns={"value": "x", target: "y"})
    row |= _grid_statistics(grid, axes, row["expected"], row["kendall_tau"])
    row["agrees"] = _agrees(row["kendall_tau"], row["expected"])
    return row


def _judge(rows: list[dict]) -> None:
    """Holm over one target's measures, then each row's verdict and robustness."""
    adjusted = holm([row["p"] for row in rows])
    for row, p_holm in zip(rows, adjusted):
        row["p_holm"] = float(p_holm)
        row["verdict"] = verdict(row)
        row["robust"] = robust(row)


def rank(table, *, targets: list[str] | None = None, axes: list[str] | None = None,
         resamples: int = BOOTSTRAP, seed: int = 0):
    """``ranking``: one row per (measure, target) of a measures table, each target's measures by |tau|.

    ``axes``: the factors of the granulated coefficient and of the sign statistic [default = the
    factors that vary among the runs]; only runs take part in them (a zoo is no grid).
    """
    import pandas as pd

    targets = [name for name in (targets or TARGETS) if name in table.columns]
    runs = table[table.source.isin(GRID_SOURCES)]
    if axes is None:
        axes = [c for c in factor_columns(table) if runs[c].map(str).nunique() > 1] if len(runs) else []
    roles = {analysis: role_of(analysis) for analysis in set(table.analysis.astype(str))}
    rows = []
    for target in targets:
        found = [_measure_row(group, measure, target, axes, resamples=resamples, seed=seed)
                 for measure, group in table.groupby("measure", sort=True)]
        _judge(found)
        rows += found
    ranking = pd.DataFrame(rows)
    if ranking.empty:
        return ranking
    ranking["role"] = ranking.analysis.map(roles)
    ranking["_order"] = -ranking.kendall_tau.abs().fillna(-1)
    ranking["_target"] = ranking.target.map({name: i for i, name in enumerate(targets)})
    return ranking.sort_values(["_target", "_order", "measure"]).drop(columns=["_order", "_target"]).reset_index(
        drop=True)
