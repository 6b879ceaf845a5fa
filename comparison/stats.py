"""The family's statistics across seeds: last-epoch bias with the seeds' sign tests combined,
criticality, bias against criticality (Spearman with a bootstrap over runs), curves with seed bands,
the averaged reinit heatmaps, and the contrasts between levels, each with a test from scipy.stats."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from comparison.correlation import rank_correlation
from comparison.family import Family
from schema.reference import reinit_layer_names
from schema.table import level_of
from schema.thresholds import CRITICAL_DROP, SIGNIFICANCE

MIN_SEEDS = 3  # fewer seeds per level: a description, not a claim
MIN_LAYERS = 5  # fewer paired layers: the signed-rank test cannot reach p < 0.05
BOOTSTRAP = 2000


def last_epoch(table, metric: str, *, layers: bool = True):
    """The rows of ``metric`` at each run's last epoch for it (without the ``net`` row when ``layers``)."""
    rows = table[table.metric == metric]
    if layers:
        rows = rows[(rows.layer != "net") & (rows.layer != "")]
    return rows[rows.epoch == rows.groupby("run").epoch.transform("max")]


def combined_p(values) -> float:
    """Fisher's combination of the seeds' p-values (``scipy.stats.combine_pvalues``)."""
    values = [min(max(float(p), 1e-300), 1.0) for p in values]
    return float(values[0]) if len(values) == 1 else float(stats.combine_pvalues(values, method="fisher").pvalue)


def bias_table(family: Family):
    """Per level and layer: the mean last-epoch mass, the combined sign-test p, and in how many seeds
    the layer is biased (p < SIGNIFICANCE)."""
    import pandas as pd

    mass = last_epoch(family.table, "mass")[["level", "run", "layer", "value"]].rename(columns={"value": "mass"})
    p = last_epoch(family.table, "sign_test_p")[["run", "layer", "value"]].rename(columns={"value": "p"})
    merged = mass.merge(p, on=["run", "layer"])
    rows = []
    for (level, layer), group in merged.groupby(["level", "layer"], sort=False):
        rows.append({"level": level, "layer": layer, "mass": group.mass.mean(), "mass_std": group.mass.std(ddof=0),
                     "combined_p": combined_p(group.p), "seeds": len(group),
                     "biased_seeds": int((group.p < SIGNIFICANCE).sum()),
                     "bias": float((group.mass - 0.5).abs().mean())})
    return pd.DataFrame(rows, columns=["level", "layer", "mass", "mass_std", "combined_p", "seeds", "biased_seeds",
                                       "bias"])


def criticality_table(family: Family):
    """Per level and layer: the mean relative top-1 drop when the layer is reset to epoch 0 (and to a random init)."""
    rows = last_epoch(family.table, "reinit_drop")
    rand = last_epoch(family.table, "reinit_drop_rand")[["run", "layer", "value"]].rename(columns={"value": "rand"})
    merged = rows[["level", "run", "layer", "value"]].rename(columns={"value": "drop"}).merge(rand, how="left",
                                                                                             on=["run", "layer"])
    return merged.groupby(["level", "layer"], sort=False).agg(reinit_drop=("drop", "mean"), drop_std=("drop", "std"),
                                                                rand=("rand", "mean"), seeds=("drop", "size")).reset_index()


def bias_criticality_points(family: Family):
    """One point per (run, layer): ``x = |mass - 0.5|`` and ``y`` the drop from epoch 0, at the last epoch."""
    mass = last_epoch(family.table, "mass")[["level", "run", "layer", "value"]]
    drop = last_epoch(family.table, "reinit_drop")[["run", "layer", "value"]]
    points = mass.merge(drop, on=["run", "layer"], suffixes=("_mass", "_drop"))
    points["x"] = (points.value_mass - 0.5).abs()
    points["y"] = points.value_drop
    return points[["level", "run", "layer", "x", "y"]]


@dataclass(frozen=True)
class Correlation:
    rho: float
    low: float  # 95% bootstrap interval, resampling runs
    high: float
    p: float
    points: int
    runs: int


def spearman(points, *, resamples: int = BOOTSTRAP, seed: int = 0) -> Correlation | None:
    """Spearman's rho of ``points`` (x, y) with a percentile bootstrap CI that resamples whole runs."""
    estimate = rank_correlation(points.x, points.y)
    if estimate is None:
        return None
    groups = [group[["x", "y"]].to_numpy() for _, group in points.groupby("run", sort=False)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples if len(groups) >= MIN_SEEDS else 0):  # two runs make no interval
        sample = np.concatenate([groups[i] for i in rng.integers(len(groups), size=len(groups))])
        if len(np.unique(sample[:, 0])) > 1 and len(np.unique(sample[:, 1])) > 1:
            draws.append(stats.spearmanr(sample[:, 0], sample[:, 1]).statistic)
    low, high = (np.percentile(draws, [2.5, 97.5]) if draws else (math.nan, math.nan))
    rho, p, n = estimate
    return Correlation(rho, float(low), float(high), p, n, len(groups))


def curves(table, metric: str, *, layer: str = ""):
    """Per level and epoch: mean, std and range over seeds of a metric (``layer``: which row)."""
    rows = table[(table.metric == metric) & (table.layer == layer)]
    return rows.groupby(["level", "epoch"], sort=False).value.agg(["mean", "std", "min", "max", "size"]).reset_index()


def layer_curves(table, metric: str):
    """Per level, layer and epoch: mean and range over seeds of a per-layer metric."""
    rows = table[(table.metric == metric) & (table.layer != "net") & (table.layer != "")]
    return rows.groupby(["level", "layer", "epoch"], sort=False).value.agg(["mean", "min", "max"]).reset_index()


def reinit_grids(family: Family) -> dict[str, tuple[list[str], list[str], np.ndarray, int]]:
    """Per level: ``(row labels, layers, mean relative drop (rows x layers), runs)`` of the reinit sweeps
    of the last snapshot, averaged over seeds (rows matched by epoch key, ``rand`` last)."""
    grids = {}
    for level in family.levels:
        sums: dict[tuple[str, str], list[float]] = {}
        rows, layers, runs = [], [], 0
        for run in family.runs:
            if level_of(run, family.by) != level or not run.documents.get("reinit"):
                continue
            document, runs = run.of_kind("reinit")[-1], runs + 1
            names = reinit_layer_names(document)
            layers += [name for name in names if name not in layers]
            for row in document.get("rows") or []:
                rows += [row["key"]] if row["key"] not in rows else []
                for name, value in zip(names, row["relative_drop"]):
                    if value is not None:
                        sums.setdefault((row["key"], name), []).append(value)
        if runs:
            rows.sort(key=lambda key: (key == "rand", not key.isdigit(), int(key) if key.isdigit() else 0, key))
            grid = np.array([[np.mean(sums.get((r, c), [np.nan])) for c in layers] for r in rows], dtype=float)
            grids[level] = (rows, layers, grid, runs)
    return grids


# -- contrasts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contrast:
    what: str
    level: str
    baseline: str  # the level every other level is compared with (the first)
    value: float
    baseline_value: float
    test: str
    p: float | None
    n: str  # what the test is over, e.g. "6 layers" or "2 vs 2 seeds"
    enough: bool  # whether n supports a claim


def _paired_layers(per_layer, column: str, level: str, baseline: str, what: str, test: str) -> Contrast | None:
    a = per_layer[per_layer.level == level].set_index("layer")[column]
    b = per_layer[per_layer.level == baseline].set_index("layer")[column]
    shared = a.index.intersection(b.index)
    if len(shared) == 0:
        return None
    a, b = a[shared].astype(float), b[shared].astype(float)
    p = None
    if len(shared) >= 2 and bool((a - b).abs().gt(0).any()):
        p = float(stats.wilcoxon(a, b).pvalue)
    return Contrast(what, level, baseline, float(a.median()), float(b.median()), test, p, f"{len(shared)} layers",
                    len(shared) >= MIN_LAYERS)


def _seeds(table, metric: str, level: str, baseline: str, what: str) -> Contrast | None:
    last = last_epoch(table, metric, layers=False)
    last = last[last.layer == ""]
    a, b = last[last.level == level].value, last[last.level == baseline].value
    if a.empty or b.empty:
        return None
    p = None
    if len(a) >= 2 and len(b) >= 2 and (a.std() > 0 or b.std() > 0):
        with warnings.catch_warnings():  # nearly equal seeds: scipy warns of precision, the p-value stands
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return Contrast(what, level, baseline, float(a.mean()), float(b.mean()), "Welch's t-test", p,
                    f"{len(a)} vs {len(b)} seeds", min(len(a), len(b)) >= MIN_SEEDS)


def contrasts(family: Family, bias, criticality) -> list[Contrast]:
    """Each level against the first: bias and criticality paired by layer (Wilcoxon signed-rank over
    the seed means), and DSE, DSMI(Z; Y), DSMI(Z; X) and test accuracy at the last epoch across seeds (Welch)."""
    found = []
    baseline = family.levels[0]
    for level in family.levels[1:]:
        found += [_paired_layers(bias, "bias", level, baseline, "orientation bias |mass - 0.5|",
                                 "Wilcoxon signed-rank"),
                  _paired_layers(criticality, "reinit_drop", level, baseline, "re-initialization drop from epoch 0",
                                 "Wilcoxon signed-rank"),
                  _seeds(family.table, "dsmi_y", level, baseline, "DSMI(Z; Y) (bits)"),
                  _seeds(family.table, "dsmi_x", level, baseline, "DSMI(Z; X) (bits)"),
                  _seeds(family.table, "dse", level, baseline, "DSE(Z) (bits)"),
                  _seeds(family.table, "test_top1", level, baseline, "test top-1 (%)")]
    return [contrast for contrast in found if contrast is not None]


def critical_layers(criticality, level: str) -> list[tuple[str, float]]:
    rows = criticality[(criticality.level == level) & (criticality["reinit_drop"] > CRITICAL_DROP)]
    return list(zip(rows.layer, rows["reinit_drop"]))
