"""Which measure tracks generalization: rank correlations of each measure with each target across models.

For every (measure, target) over the models that have both:

- Kendall's tau-b and Spearman's rho with their p-values (``scipy.stats``): the overall correlation;
- 95% percentile bootstrap intervals that resample *settings* (the models of one ``group``, the seeds
  of one setting, are drawn together), so that seeds do not count as independent evidence. A draw
  is a vector of counts per model; tau-b and rho of the resampled data are computed from those
  counts exactly (ties included), all draws at once;
- the granulated Kendall coefficient over a grid's axes (Jiang et al., ICLR 2020, eq. 4) with *Jiang's*
  tau, the mean of ``sign(dx) sign(dy)`` over the pairs of a group (a tie or a constant measure counts
  0, so a measure that does not move along an axis gets 0 there): for each axis, the mean tau over the
  groups of models that differ only in that axis (every other axis and the seed fixed, at least 2
  values of the axis), then the mean over the axes that have groups;
- Jiang et al.'s conditional mutual information (``cmi``: the minimum over the conditioning sets of at
  most 2 axes, ``cmi_set`` the set that gives it) over the grid's models, and the PGDL competition's
  score (``pgdl_score``) over its settings (:mod:`comparison.cmi`); with several seeds per setting,
  the PGDL score is computed on each setting's mean measure and mean target, the competition's tasks
  having one model per setting; an incomplete grid, or one with fewer than 3 axes (conditioned on two
  axes of a two-axis grid, every cell holds one pair and every measure scores 0), has none, and
  :attr:`Evidence.pgdl_problem` says why;
- Dziugaite et al.'s environments (:mod:`comparison.robust`): pairs of settings that differ in one
  axis, each pair of models weighted by how surely the test set tells their targets apart; the
  number of environments, those that carry weight and those judged (effective sample size at least
  :data:`comparison.robust.MIN_ESS`), the worst judged environment's sign-error (the *robust
  sign-error*), its axis, and the distribution over the judged environments;
- the sign the literature expects (:func:`comparison.measures.expected_sign`) and a verdict: a
  measure *tracks* a target when Kendall's p, Holm-corrected over the measures of that target, is
  below 0.05 and its tau interval (when there is one) excludes 0. It tracks it *robustly* when, in
  addition, tau has the expected sign (or there is none) and its robust sign-error is below 0.5;
- whether the measure is one of the seeds' or one of the field's baselines (its analysis's
  declaration says which: ``Declaration.baseline``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from comparison import robust as environments_of
from comparison.cmi import grid_problem, jiang_cmi, pgdl_score
from comparison.correlations import BOOTSTRAP, correlate, granulated_kendall
from comparison.measures import expected_sign, reads
from comparison.robust import MIN_ESS, ROBUST_ERROR, holm
from comparison.targets import TARGETS
from utils.errors import UserError

MIN_MODELS = 5  # fewer models: the numbers describe these models, they are no claim
LEVEL = 0.05
SEED, BASELINE = "seeds'", "baseline"
FIXED_COLUMNS = ("model", "label", "source", "group", "seed", "epoch", "test_size", "train_size", "measure",
                 "analysis", "value", "size_scaling")
HOEFFDING, UNFILTERED, UNBOUNDED = "hoeffding", "none (--no-noise-filter)", "none (no Hoeffding bound for it)"
MIN_PGDL_AXES = 3  # conditioned on two axes of a two-axis grid, a cell holds one pair: the competition's score is 0
NO_GRID = ("zoo",)  # sources whose models form no grid of hyperparameters: no granulated coefficient, no environments


def factor_columns(table) -> list[str]:
    """The factor columns of a measures table (everything but the fixed columns and the targets)."""
    return [column for column in table.columns if column not in FIXED_COLUMNS and column not in TARGETS]


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
    """Tracks the target (not against its literature) and its worst judged environment's sign-error is below
    :data:`ROBUST_ERROR` (better than a coin flip); False without a judged environment."""
    return row["verdict"] in ("tracks, as expected", "tracks (no expected sign)") and \
        bool(np.isfinite(row["robust_sign_error"]) and row["robust_sign_error"] < ROBUST_ERROR)


def _agrees(tau: float, expected: int) -> str:
    if expected == 0 or not np.isfinite(tau) or tau == 0:
        return ""
    return "yes" if np.sign(tau) == expected else "no"


def orientation(expected: int, tau: float) -> int:
    """The sign the environments predict with: the expected one, else that of the overall tau (a measure
    with no expected sign is given the direction the data favour)."""
    if expected:
        return int(expected)
    return int(np.sign(tau)) if np.isfinite(tau) else 0


def role_of(analysis: str) -> str:
    """:data:`BASELINE` when the analysis's declaration says it is one of the field's measures
    (``baseline``), else :data:`SEED`."""
    from analyses.registry import declarations

    declared = {found.name: found for found in declarations()}.get(analysis)
    return BASELINE if getattr(declared, "baseline", False) else SEED


# -- the environments ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Weighting:
    """How the environments are weighted: the Hoeffding weight (``noise_filter``) or every pair 1, and the
    smallest effective sample size of an environment that is judged."""

    noise_filter: bool = True
    min_ess: float = MIN_ESS

    def of(self, target: str) -> str:
        """:data:`HOEFFDING`, :data:`UNFILTERED`, or :data:`UNBOUNDED` for a target with no Hoeffding bound."""
        if TARGETS[target].scale is None:
            return UNBOUNDED
        return HOEFFDING if self.noise_filter else UNFILTERED


def grid_frame(rows, target: str):
    """The models of a grid in ``rows`` (one measure's, or one per model: runs, not zoo models) with a finite
    target, as the statistics read them: ``x`` the value, ``y`` the target, ``n`` the test-set size (0 where
    it is unknown: no weight)."""
    runs = rows[~rows.source.isin(NO_GRID) & np.isfinite(rows[target].astype(float))]
    n = runs.test_size.astype(float).fillna(0.0) if "test_size" in runs else 0.0
    return runs.rename(columns={"value": "x", target: "y"}).assign(n=n)


def environments_for(grid, axes: list[str], target: str, weighting: Weighting):
    """:func:`comparison.robust.environments` of a :func:`grid_frame`, weighted as ``weighting`` says."""
    return environments_of.environments(grid, axes, weighted=weighting.of(target) == HOEFFDING,
                                        scale=TARGETS[target].scale or 1.0)


def _grid_statistics(grid, axes: list[str], target: str, expected: int, tau: float, weighting: Weighting):
    """The granulated Kendall coefficient and the environments of one measure's runs: the row's columns and
    the environments (oriented) for environments.csv."""
    overall, per_axis = granulated_kendall(grid, axes) if axes else (math.nan, {})
    towards = orientation(expected, tau)
    found = environments_for(grid, axes, target, weighting)
    summary = environments_of.robustness(found, towards, min_ess=weighting.min_ess)
    columns = {"granulated_kendall": overall, **{f"granulated_{axis}": value for axis, value in per_axis.items()},
               **summary.columns(), "weighting": weighting.of(target) if axes else "",
               "sign_from": "" if not axes else "expected" if expected else "fitted"}
    found = found.assign(kept=environments_of.kept(found, weighting.min_ess),
                         sign_error=environments_of.oriented(found.error, towards)).drop(columns="error")
    return columns, found


def settings_frame(grid, axes: list[str]):
    """One row per setting of a :func:`grid_frame`: the mean ``x`` and ``y`` over its seeds (the PGDL score
    wants one model per setting), and the number of models it had (``models``)."""
    return grid.groupby(axes, sort=False, dropna=False).agg(x=("x", "mean"), y=("y", "mean"),
                                                           models=("y", "size")).reset_index()


def pgdl_problem(grid, axes: list[str]) -> str | None:
    """Why the PGDL score of a :func:`grid_frame` is empty (None when it is not)."""
    if len(axes) < MIN_PGDL_AXES:
        return (f"it needs at least {MIN_PGDL_AXES} hyperparameters, and the grid has {len(axes)}"
                + (f" ({', '.join(axes)})" if axes else "") + ": conditioned on both values of two of them, each "
                "cell holds one pair of settings, and every measure scores 0")
    problem = grid_problem(settings_frame(grid, axes), axes)
    return problem and f"{problem} (the competition scores a complete grid with one model per setting)"


def _scores(grid, axes: list[str], expected: int) -> dict:
    """``cmi``, ``cmi_set`` and ``pgdl_score`` of a :func:`grid_frame` (NaN where undefined). The PGDL score
    is not symmetric in the measure's sign (self-pairs and ties count as ``-``): the measure is turned by
    its ``expected`` sign first, so that a larger value predicts a larger target, as the PGDL tasks'
    ``.predict`` files are (:mod:`comparison.pgdl`); a measure with no expected sign is scored as it is.
    Jiang's CMI does not depend on the sign."""
    if not axes or len(grid) < 2:
        return {"cmi": math.nan, "cmi_set": "", "pgdl_score": math.nan}
    found = jiang_cmi(grid, axes)
    named = "" if found.worst_set is None else ", ".join(found.worst_set) or "none"
    turned = grid.assign(x=grid.x * (-1.0 if expected < 0 else 1.0))
    score = math.nan if pgdl_problem(grid, axes) else pgdl_score(settings_frame(turned, axes), axes)
    return {"cmi": found.score, "cmi_set": named, "pgdl_score": score}


def _measure_row(group, measure: str, target: str, axes: list[str], *, resamples: int, seed: int,
                 weighting: Weighting):
    usable = group[np.isfinite(group.value.astype(float)) & np.isfinite(group[target].astype(float))]
    row = {"measure": measure, "target": target, "analysis": str(group.analysis.iloc[0]),
           **correlate(usable.value, usable[target], usable.group, resamples=resamples, seed=seed)}
    row["expected"] = expected_sign(measure, target)
    row["reads"] = reads(measure)
    grid = grid_frame(usable, target)
    columns, found = _grid_statistics(grid, axes, target, row["expected"], row["kendall_tau"], weighting)
    row |= columns | _scores(grid, axes, row["expected"])
    row["agrees"] = _agrees(row["kendall_tau"], row["expected"])
    return row, found.assign(measure=measure, target=target, weighting=row["weighting"])


def _judge(rows: list[dict]) -> None:
    """Holm over one target's measures, then each row's verdict and robustness."""
    adjusted = holm([row["p"] for row in rows])
    for row, p_holm in zip(rows, adjusted):
        row["p_holm"] = float(p_holm)
        row["verdict"] = verdict(row)
        row["robust"] = robust(row)


@dataclass(frozen=True)
class Evidence:
    """What the test set can tell about one target's environments, whatever the measure: the first lines
    of the report when it cannot tell them apart."""

    target: str
    weighting: str
    min_ess: float
    environments: int
    weighted: int
    kept: int
    largest_difference: float  # the largest difference of the target over the pairs of every environment
    largest_ess: float
    sizes: tuple[int, ...]  # the test-set sizes n of the models (those recorded)
    unsized: tuple[str, ...]  # runs whose test-set size is not recorded: their pairs carry no weight
    left_out: tuple[str, ...]  # environments that carry weight below the effective sample size judged
    pgdl_problem: str | None = None  # why the PGDL score is empty (None: it is not, for the measures every model has)
    seeds: int = 1  # the most models a setting has (the PGDL score averages them)


def evidence(table, target: str, axes: list[str], weighting: Weighting) -> Evidence:
    """The :class:`Evidence` of ``target`` over the runs of ``table`` that have it."""
    models = grid_frame(table.drop_duplicates("model"), target).assign(x=0.0)
    found = environments_for(models, axes, target, weighting)
    judged = environments_of.kept(found, weighting.min_ess)
    carrying = found.weight.to_numpy(float) > 0
    recorded = models.test_size.dropna() if "test_size" in models else []
    unsized = models[models.n <= 0].model if weighting.of(target) == HOEFFDING else []
    return Evidence(target, weighting.of(target), weighting.min_ess, len(found), int(carrying.sum()),
                    int(judged.sum()), float(found.largest_difference.max()) if len(found) else math.nan,
                    float(found.ess.max()) if len(found) else math.nan, tuple(sorted({int(n) for n in recorded})),
                    tuple(unsized), tuple(found.environment[carrying & ~judged]),
                    pgdl_problem(models, axes) if len(models) else None,
                    int(settings_frame(models, axes).models.max()) if axes and len(models) else 1)


@dataclass(frozen=True)
class Ranked:
    """The ranking (ranking.csv), every environment of every measure and target (environments.csv), and
    the :class:`Evidence` of each target."""

    ranking: object
    environments: object
    evidence: dict[str, Evidence]


def check_targets(table, targets: list[str]) -> None:
    """A requested target that no model has is a :class:`UserError` naming what records it."""
    for name in targets:
        if name not in table.columns or not np.isfinite(table[name].astype(float)).any():
            raise UserError(f"no model has the target {name} ({TARGETS[name].short}): {TARGETS[name].recorded_by}; "
                            f"leave {name} out of --targets")


def varying_axes(table) -> list[str]:
    """The factors that vary among the runs of ``table``: the axes of its grid."""
    runs = table[~table.source.isin(NO_GRID)]
    return [c for c in factor_columns(table) if runs[c].map(str).nunique() > 1] if len(runs) else []


def ranked(table, *, targets: list[str] | None = None, axes: list[str] | None = None, resamples: int = BOOTSTRAP,
           seed: int = 0, weighting: Weighting | None = None) -> Ranked:
    """The :class:`Ranked` of a measures table: one ranking row per (measure, target), each target's measures
    by |tau|; ``targets`` asked for must be in the table [default = every one it has].

    ``axes``: the factors of the granulated coefficient and of the environments [default = the factors
    that vary among the runs]; only the models of a grid take part in them (a zoo is no grid: :data:`NO_GRID`).
    """
    import pandas as pd

    weighting = weighting or Weighting()
    if targets:
        check_targets(table, targets)
    targets = [name for name in (targets or TARGETS) if name in table.columns]
    axes = varying_axes(table) if axes is None else axes
    roles = {analysis: role_of(analysis) for analysis in set(table.analysis.astype(str))}
    rows, found = [], []
    for target in targets:
        measured = [_measure_row(group, measure, target, axes, resamples=resamples, seed=seed, weighting=weighting)
                    for measure, group in table.groupby("measure", sort=True)]
        _judge([row for row, _ in measured])
        rows += [row for row, _ in measured]
        found += [frame for _, frame in measured if len(frame)]
    columns = ["measure", "target", "weighting", *environments_of.ENVIRONMENT_COLUMNS[:-3], "kept", "sign_error",
               "largest_difference", "n"]
    every = pd.concat(found, ignore_index=True)[columns] if found else pd.DataFrame(columns=columns)
    return Ranked(_ordered(pd.DataFrame(rows), roles, targets), every,
                  {target: evidence(table, target, axes, weighting) for target in targets})


def _ordered(ranking, roles: dict[str, str], targets: list[str]):
    if ranking.empty:
        return ranking
    ranking["role"] = ranking.analysis.map(roles)
    ranking["_order"] = -ranking.kendall_tau.abs().fillna(-1)
    ranking["_target"] = ranking.target.map({name: i for i, name in enumerate(targets)})
    return ranking.sort_values(["_target", "_order", "measure"]).drop(columns=["_order", "_target"]).reset_index(
        drop=True)


def rank(table, *, targets: list[str] | None = None, axes: list[str] | None = None, resamples: int = BOOTSTRAP,
         seed: int = 0, weighting: Weighting | None = None):
    """``ranking``: the ranking of :func:`ranked` alone (ranking.csv), a pandas DataFrame."""
    return ranked(table, targets=targets, axes=axes, resamples=resamples, seed=seed, weighting=weighting).ranking
