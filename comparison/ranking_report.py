"""``report.md`` of rank_measures.py: which measures track each target and which do not, the table
of statistics, how each measure is aggregated, the models that differ, and the figures.
A measures table and its ranking in, Markdown out."""
from __future__ import annotations

import math
import os
from pathlib import Path

from comparison.measures import KNOWN, TARGETS
from comparison.ranking import BOOTSTRAP, LEVEL, MIN_GROUPS, MIN_MODELS


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _ci(low, high) -> str:
    return "" if not math.isfinite(low) else f" [{low:.2f}, {high:.2f}]"


def _sign(value: int) -> str:
    return {1: "+", -1: "−", 0: "none"}[int(value)]


def _models_line(table) -> str:
    models = table.drop_duplicates("model")
    runs, zoo = models[models.source == "run"], models[models.source != "run"]
    parts = []
    if len(runs):
        parts.append(f"{len(runs)} run(s) in {runs.group.nunique()} setting(s)")
    if len(zoo):
        parts.append(f"{len(zoo)} zoo model(s) ({', '.join(zoo.model)})")
    epochs = sorted({int(e) for e in runs.epoch.dropna()}) if len(runs) else []
    at = f"; runs measured at epoch {', '.join(map(str, epochs))}" if epochs else ""
    return f"{len(models)} models: {' and '.join(parts)}{at}."


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
    lines.append(f"- **Do not track it** (interval includes 0): {', '.join(untracked) or 'none'}.")
    if undefined:
        lines.append(f"- **Undefined** (constant over these models, or fewer than 3 of them): {', '.join(undefined)}.")
    axes = [c[len("granulated_"):] for c in rows.columns if c.startswith("granulated_") and c != "granulated_kendall"]
    lines += ["", "| measure | Kendall tau [95% CI] | p | Spearman rho [95% CI] | granulated Kendall"
              + "".join(f" | psi({axis})" for axis in axes) + " | models | expected sign | verdict |",
              "|---|---|---|---|---" + "|---" * len(axes) + "|---|---|---|"]
    for row in rows.itertuples():
        per_axis = "".join(f" | {_num(getattr(row, f'granulated_{axis}'))}" for axis in axes)
        lines.append(f"| `{row.measure}` | {_num(row.kendall_tau)}{_ci(row.tau_low, row.tau_high)} | "
                     f"{_num(row.p, 3)} | {_num(row.spearman)}{_ci(row.rho_low, row.rho_high)} | "
                     f"{_num(row.granulated_kendall)}{per_axis} | {row.n_models} | {_sign(row.expected)} | "
                     f"{row.verdict} |")
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


def report_markdown(table, ranking, *, description: str, notes: list[str], figures: list[Path],
                    report_dir: Path, resamples: int = BOOTSTRAP) -> str:
    n_models = table.model.nunique()
    lines = [f"# Which measures track generalization: {description}", "", _models_line(table), "",
             f"For each measure and target: Kendall's tau-b and Spearman's rho (scipy.stats) over the models that "
             f"have both, with 95% percentile bootstrap intervals ({resamples} draws) that resample settings, the "
             f"seeds of one setting together (no interval with fewer than {MIN_GROUPS} settings). A measure "
             f"*tracks* a target when the interval of tau excludes 0 (without one: p < {LEVEL}). The granulated "
             "Kendall coefficient (Jiang et al., ICLR 2020) is the mean over a grid's axes of psi(axis), the mean "
             "tau over the groups of runs that differ only in that axis (same seed). The expected sign is the "
             "measure's literature's, for that target (a gap is better when lower).", ""]
    if n_models < MIN_MODELS:
        lines += [f"With {n_models} models (fewer than {MIN_MODELS}), the numbers below describe these models; "
                  "they are no claim about the measures.", ""]
    for target in dict.fromkeys(ranking.target):
        lines += target_section(ranking, target)
    lines += measures_section(table)
    if notes:
        lines += ["## Models that differ", "", *[f"- {note}" for note in notes], ""]
    for figure in figures:
        lines += [f"## {figure.stem.replace('_', ' ')}", "", f"![{figure.stem}]({os.path.relpath(figure, report_dir)})",
                  ""]
    return "\n".join(lines)
