"""``report.md`` of rank_measures.py: first the measures that predict each target robustly (the
seeds' measures and the field's baselines in one table), then which measures track each target and
which do not, the table of statistics, how each measure is aggregated, the models that differ, the
figures and the references. A measures table and its ranking in, Markdown out."""
from __future__ import annotations

import math
import os
from pathlib import Path

from comparison.measures import KNOWN, TARGETS
from comparison.ranking import BASELINE, BOOTSTRAP, LEVEL, MIN_GROUPS, MIN_MODELS, ROBUST_WORST, SEED

REFERENCES = (
    "Gamba, Carlsson, Azizpour, Björkman, \"Hyperplane Arrangements of Trained ConvNets Are Biased\", 2020 "
    "(the hyperplane paper: the projection measures `bias_*`).",
    "Jiang, Neyshabur, Mobahi, Krishnan, Bengio, \"Fantastic Generalization Measures and Where to Find Them\", "
    "ICLR 2020 (the protocol, the granulated Kendall coefficient, the field's measures).",
    "Dziugaite, Drouin, Neal, Rajkumar, Caballero, Wang, Mitliagkas, Roy, \"In Search of Robust Measures of "
    "Generalization\", NeurIPS 2020 (the sign agreement over single-hyperparameter changes, the worst axis).",
    "Holm, \"A Simple Sequentially Rejective Multiple Test Procedure\", Scandinavian Journal of Statistics, 1979.",
)
ROLE_NAMES = {BASELINE: "field's baseline"}


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _ci(low, high) -> str:
    return "" if not math.isfinite(low) else f" [{low:.2f}, {high:.2f}]"


def _sign(value: int) -> str:
    return {1: "+", -1: "−", 0: "none"}[int(value)]


def _models_line(table) -> str:
    models = table.drop_duplicates("model")
    runs, zoo = models[models.source == "run"], models[~models.source.isin(("run", "pgdl"))]
    pgdl = models[models.source == "pgdl"]
    parts = []
    if len(runs):
        parts.append(f"{len(runs)} run(s) in {runs.group.nunique()} setting(s)")
    if len(pgdl):
        parts.append(f"{len(pgdl)} PGDL model(s) of task(s) {', '.join(sorted({m.split('/')[0] for m in pgdl.model}))}")
    if len(zoo):
        parts.append(f"{len(zoo)} zoo model(s) ({', '.join(zoo.model)})")
    epochs = sorted({int(e) for e in runs.epoch.dropna()}) if len(runs) else []
    at = f"; runs measured at epoch {', '.join(map(str, epochs))}" if epochs else ""
    return f"{len(models)} models: {' and '.join(parts)}{at}."


def _role(row) -> str:
    return ROLE_NAMES.get(getattr(row, "role", ""), "seeds' measure")


def _axes(ranking, prefix: str) -> list[str]:
    skip = {"granulated_kendall", "sign_agreement", "sign_pairs", "sign_from"}
    return [c[len(prefix):] for c in ranking.columns if c.startswith(prefix) and c not in skip]


def _robust_rows(rows) -> list[str]:
    found = [row for row in rows.itertuples() if row.robust]
    return [f"| `{row.measure}` | {_role(row)} ({row.analysis}) | "
            f"{_num(row.kendall_tau)}{_ci(row.tau_low, row.tau_high)}"
            f" | {_num(row.p_holm, 3)} | {_num(row.sign_agreement)} | {row.worst_axis} ({_num(row.worst_sign)}) | "
            f"{_num(row.granulated_kendall)} |" for row in found]


def _best(rows, role: str) -> str:
    """The measure of ``role`` whose worst axis agrees most (then mean agreement, then |tau|)."""
    mine = rows[(rows.role == role) & rows.worst_sign.notna()] if "role" in rows else rows.iloc[:0]
    if mine.empty:
        return "none with a worst axis"
    best = mine.assign(_tau=mine.kendall_tau.abs()).sort_values(["worst_sign", "sign_agreement", "_tau"],
                                                                ascending=False).iloc[0]
    return (f"`{best.measure}` (worst axis {best.worst_axis} {_num(best.worst_sign)}, mean {_num(best.sign_agreement)},"
            f" tau {_num(best.kendall_tau)}, {best.verdict})")


def robust_section(ranking) -> list[str]:
    """The first table: per target, the measures that predict it robustly, seeds' and baselines together."""
    lines = ["## Robust predictors", "",
             f"A measure predicts a target *robustly* when it tracks it (Kendall's p, Holm-corrected over that "
             f"target's measures, below {LEVEL}, and the tau interval, when there is one, excludes 0) in the "
             "direction its literature expects (or with no expected sign), and the sign agreement of its *worst* "
             f"axis is above {ROBUST_WORST}: along every hyperparameter, its differences predict the target's "
             "better than a coin flip.", ""]
    for target in dict.fromkeys(ranking.target):
        rows = ranking[ranking.target == target]
        found = _robust_rows(rows)
        lines += [f"**{TARGETS[target].short}**", "",
                  "| measure | kind (analysis) | Kendall tau [95% CI] | p (Holm) | sign agreement | worst axis | "
                  "granulated Kendall |", "|---|---|---|---|---|---|---|"]
        lines += found or ["| none | | | | | | |"]
        roles = sorted(set(rows.role)) if "role" in rows else []
        if len(roles) > 1 or BASELINE in roles:
            lines += ["", f"Best worst axis among the seeds' measures: {_best(rows, SEED)}; among the "
                      f"field's baselines: {_best(rows, BASELINE)}."]
        lines.append("")
    return lines


def single_axis_note(ranking) -> list[str]:
    """Says why granulated Kendall equals psi(axis) and the worst axis is that axis on a one-axis grid."""
    axes = _axes(ranking, "granulated_")
    if len(axes) != 1:
        return []
    return [f"The grid has a single axis ({axes[0]}): the granulated Kendall coefficient is psi({axes[0]}) itself, "
            "and the worst axis is that axis.", ""]


def _mention(row) -> str:
    return (f"`{row.measure}` (tau {_num(row.kendall_tau)}{_ci(row.tau_low, row.tau_high)}, expected sign "
            f"{_sign(row.expected)})")


def target_section(ranking, target: str) -> list[str]:
    rows = ranking[ranking.target == target]
    lines = [f"## {TARGETS[target].label}", ""]
    groups = [("Track it, in the direction their literature expects", "tracks, as expected"),
              ("Track it, opposite to their literature", "tracks, opposite to its literature"),
              ("Track it, with no expected sign", "tracks (no expected sign)")]
    for title, verdict in groups:
        found = [_mention(row) for row in rows.itertuples() if row.verdict == verdict]
        if found:
            lines.append(f"- **{title}**: {', '.join(found)}.")
    untracked = [f"`{row.measure}`" for row in rows.itertuples() if row.verdict == "does not track"]
    undefined = [f"`{row.measure}`" for row in rows.itertuples() if row.verdict == "undefined"]
    lines.append(f"- **Do not track it** (Holm-corrected p >= {LEVEL}, or the interval includes 0): "
                 f"{', '.join(untracked) or 'none'}.")
    if undefined:
        lines.append(f"- **Undefined** (constant over these models, or fewer than 3 of them): {', '.join(undefined)}.")
    axes = _axes(rows, "granulated_")
    lines += ["", "| measure | kind | Kendall tau [95% CI] | p | p (Holm) | Spearman rho [95% CI] | granulated Kendall"
              + "".join(f" | psi({axis})" for axis in axes)
              + " | sign agreement | worst axis | models | expected sign | verdict |",
              "|---|---|---|---|---|---|---" + "|---" * len(axes) + "|---|---|---|---|---|"]
    for row in rows.itertuples():
        per_axis = "".join(f" | {_num(getattr(row, f'granulated_{axis}'))}" for axis in axes)
        worst = f"{row.worst_axis} ({_num(row.worst_sign)})" if row.worst_axis else "n/a"
        lines.append(f"| `{row.measure}` | {_role(row)} | {_num(row.kendall_tau)}{_ci(row.tau_low, row.tau_high)} | "
                     f"{_num(row.p, 3)} | {_num(row.p_holm, 3)} | {_num(row.spearman)}{_ci(row.rho_low, row.rho_high)}"
                     f" | {_num(row.granulated_kendall)}{per_axis} | {_num(row.sign_agreement)} | {worst} | "
                     f"{row.n_models} | {_sign(row.expected)} | {row.verdict} |")
    return lines + [""]


def measures_section(table) -> list[str]:
    lines = ["## The measures", "", "One number per model, from its results at the measured epoch:", ""]
    for measure, analysis in table.drop_duplicates("measure")[["measure", "analysis"]].itertuples(index=False):
        known = KNOWN.get(measure)
        if known is None:
            lines.append(f"- `{measure}` ({analysis}): its value, or its mean over layers; no expected sign known.")
        else:
            lines.append(f"- `{measure}` ({analysis}): {known.aggregation}. Expected sign "
                         f"{_sign(known.direction)} ({known.source}).")
    return lines + [""]


def method_paragraph(resamples: int, n_measures: int) -> str:
    return (f"For each measure and target: Kendall's tau-b and Spearman's rho (scipy.stats) over the models "
            f"that have both, with 95% percentile bootstrap intervals ({resamples} draws) that resample settings, "
            f"the seeds of one setting together (no interval with fewer than {MIN_GROUPS} settings). Kendall's "
            f"p-values are Holm-corrected across the measures of each target that have one (at most {n_measures}; "
            f"column p (Holm)); a measure *tracks* a target when its corrected p is below {LEVEL} and the interval "
            "of tau, when there is one, excludes 0. The granulated Kendall coefficient (Jiang et al., ICLR 2020) "
            "is the mean over a grid's axes of psi(axis), the mean tau over the groups of runs that differ only in "
            "that axis (same seed). The sign agreement (Dziugaite et al., NeurIPS 2020) is, over every pair of runs "
            "that differ in exactly one hyperparameter (seeds are no hyperparameter), the fraction in which the "
            "sign of the measure's difference, turned by its expected sign, is the sign of the target's difference "
            "(pairs with equal targets skipped, equal measures count one half); per axis too, and the *worst* axis "
            "is the axis where it is lowest. A measure with no expected sign is turned by the sign of its tau "
            "(which favours it). The expected sign is the measure's literature's, for that target (a gap is better "
            "when lower).")


def report_markdown(table, ranking, *, description: str, notes: list[str], figures: list[Path],
                    report_dir: Path, resamples: int = BOOTSTRAP, status: list[str] | None = None) -> str:
    n_models = table.model.nunique()
    lines = [f"# Which measures track generalization: {description}", "", _models_line(table), ""]
    lines += [f"- {line}" for line in status or []] + ([""] if status else [])
    if n_models < MIN_MODELS:
        lines += [f"With {n_models} models (fewer than {MIN_MODELS}), the numbers below describe these models; "
                  "they are no claim about the measures.", ""]
    lines += robust_section(ranking)
    tested = int(ranking.groupby("target").p.count().max()) if len(ranking) else 0
    lines += [method_paragraph(resamples, tested), ""] + single_axis_note(ranking)
    for target in dict.fromkeys(ranking.target):
        lines += target_section(ranking, target)
    lines += measures_section(table)
    if notes:
        lines += ["## Models that differ", "", *[f"- {note}" for note in notes], ""]
    for figure in figures:
        lines += [f"## {figure.stem.replace('_', ' ')}", "", f"![{figure.stem}]({os.path.relpath(figure, report_dir)})",
                  ""]
    lines += ["## References", "", *[f"- {reference}" for reference in REFERENCES], ""]
    return "\n".join(lines)
