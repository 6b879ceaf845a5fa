"""``report.md`` of a family: per level, which layers are biased (in how many seeds), which are
critical, bias against criticality, DSE and DSMI, accuracy, WeightWatcher's flags; then the contrasts between levels with
their tests, the runs that differ, and the figures. Statistics in, Markdown out."""
from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

from comparison.family import Family
from comparison.stats import MIN_SEEDS, Contrast, Correlation, critical_layers, last_epoch
from schema.thresholds import CRITICAL_DROP, SIGNIFICANCE


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _mean_std(values) -> str:
    values = list(values)
    if not values:
        return "n/a"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"


def correlation_sentence(correlation: Correlation | None) -> str:
    if correlation is None:
        return "too few (run, layer) points with a reinit sweep for a correlation"
    interval = (f"95% CI [{_num(correlation.low)}, {_num(correlation.high)}] from a bootstrap over runs"
                if not math.isnan(correlation.low) else "no CI: a bootstrap over runs needs at least 3 runs")
    return (f"Spearman rho = {correlation.rho:.2f} (p = {_p(correlation.p)}; {correlation.points} layer points of "
            f"{correlation.runs} run(s); {interval})")


def biased_in_every_seed(bias, level: str) -> tuple[int, int]:
    """``(layers biased in every seed, layers)`` of a level."""
    rows = bias[bias.level == level]
    return int((rows.biased_seeds == rows.seeds).sum()), len(rows)


def biased_sentence(bias, level: str) -> tuple[str, str]:
    rows = bias[bias.level == level]
    if rows.empty:
        return "none (no projection results)", "no layer analysed"
    named = ", ".join(f"`{r.layer}` in {r.biased_seeds} of {r.seeds} seeds (mass {r.mass:.2f}, combined p = {_p(r.combined_p)})"
                      for r in rows[rows.biased_seeds > 0].itertuples()) or "none"
    every, total = biased_in_every_seed(bias, level)
    return named, f"{every} of {total} layers biased in every seed"


def _dse(family: Family, level: str, metric: str) -> str:
    rows = family.table[(family.table.level == level) & (family.table.metric == metric) & (family.table.layer == "")]
    if rows.empty:
        return "n/a"
    first = rows[rows.epoch == rows.groupby("run").epoch.transform("min")]
    last = rows[rows.epoch == rows.groupby("run").epoch.transform("max")]
    return (f"{_mean_std(first.value)} → {_mean_std(last.value)} bits (epoch {int(first.epoch.min())} → "
            f"{int(last.epoch.max())})")


def dse_sigma(family: Family) -> str:
    """Which kernel bandwidth the family's DSE used (``auto``: each probe's median distance, with their range)."""
    documents = [d for run in family.runs for d in run.documents.get("dse") or []]
    sigmas = sorted({str((d.get("settings") or {}).get("sigma")) for d in documents})
    used = [d["sigma_used"] for d in documents if (d.get("settings") or {}).get("sigma") == "auto"
            and d.get("sigma_used") is not None]
    if used:
        sigmas = [s if s != "auto" else f"auto (the median pairwise distance of each probe's representation: "
                  f"{min(used):.3g} to {max(used):.3g})" for s in sigmas]
    return ", ".join(sigmas) or "n/a"


def _flagged(rows, flag) -> str:
    """``layer`` in k of n seeds (mean value), for the layers where ``flag(value)`` holds in a seed."""
    found = []
    for layer, group in rows.groupby("layer", sort=False):
        count = int(sum(flag(value) for value in group.value))
        if count:
            found.append(f"`{layer}` in {count} of {group.run.nunique()} seeds (mean {group.value.mean():.2f})")
    return ", ".join(found) or "none"


def weightwatcher_sentence(family: Family, level: str) -> str | None:
    """Which layers WeightWatcher would flag at the level's last snapshots (alpha < 2, alpha > 6, traps)."""
    table = family.table[family.table.level == level]
    alpha, traps = last_epoch(table, "alpha"), last_epoch(table, "num_traps")
    if alpha.empty:
        return None
    sentence = (f"- **WeightWatcher's flags** at the last snapshot: over-trained (alpha < 2): "
                f"{_flagged(alpha, lambda value: value < 2)}; under-trained (alpha > 6): "
                f"{_flagged(alpha, lambda value: value > 6)}")
    if not traps.empty:
        sentence += f"; correlation traps: {_flagged(traps, lambda value: value > 0)}"
    return sentence + "."


def chance_mark(family: Family, level: str) -> str:
    """A remark for a level whose runs are at chance: its critical layers and bias-criticality
    correlation describe models that do not beat guessing on the test set ("" otherwise)."""
    found = [item for item in family.at_chance if item.group == level]
    if not found:
        return ""
    runs = f"{len(found)} of {family.seeds(level)} runs"
    if all(item.random_labels for item in found):
        return (f" ({runs} at chance on the test set, as models fitting random labels are: test top-1 has nothing "
                "to lose, so these describe the fit of noise, not critical structure)")
    return f" ({runs} at chance on the test set: these describe untrained models, not findings)"


def level_section(family: Family, level: str, bias, criticality, correlation: Correlation | None) -> list[str]:
    seeds = family.seeds(level)
    named, every = biased_sentence(bias, level)
    last = last_epoch(family.table[family.table.level == level], "mass")
    epoch = f" (epoch {int(last.epoch.max())})" if not last.empty else ""
    critical = critical_layers(criticality, level)
    accuracy = last_epoch(family.table[family.table.level == level], "test_top1", layers=False)
    lines = [f"### {level} ({seeds} seed{'s' if seeds != 1 else ''})", "",
             f"- **Biased layers** at the last snapshot{epoch}: {named}; {every}.",
             f"- **Critical layers** (reset to epoch 0 costs more than {100 * CRITICAL_DROP:.0f}% of test top-1, "
             "mean over seeds): " + (", ".join(f"`{name}` ({100 * drop:.0f}%)" for name, drop in critical) or "none")
             + (f"{chance_mark(family, level)}." if not criticality[criticality.level == level].empty
                else " (no reinit sweep)."),
             f"- **Bias vs criticality**: {correlation_sentence(correlation)}{chance_mark(family, level)}.",
             f"- **DSE(Z)**: {_dse(family, level, 'dse')}; **DSMI(Z; Y)**: {_dse(family, level, 'dsmi_y')}; "
             f"**DSMI(Z; X)**: {_dse(family, level, 'dsmi_x')}.",
             f"- **Test top-1**: {_mean_std(accuracy.value)}% at the last epoch."]
    flags = weightwatcher_sentence(family, level)
    return lines + ([flags] if flags else []) + [""]


def contrast_sentence(contrast: Contrast) -> str:
    tail = "" if contrast.enough else f"; {contrast.n} is too few for a claim"
    return (f"{contrast.what}: {_num(contrast.value)} at {contrast.level} vs {_num(contrast.baseline_value)} at "
            f"{contrast.baseline} ({'median over' if 'layers' in contrast.n else 'mean over'} {contrast.n}; "
            f"{contrast.test}, p = {_p(contrast.p)}{tail}).")


def report_markdown(family: Family, *, bias, criticality, correlations: dict[str, Correlation | None],
                    contrasts: list[Contrast], figures: list[Path], report_dir: Path) -> str:
    levels = ", ".join(f"{level} ({family.seeds(level)})" for level in family.levels)
    small = [level for level in family.levels if family.seeds(level) < MIN_SEEDS]
    lines = [f"# Family report: {family.description}, {len(family.runs)} runs by {', '.join(family.by) or 'nothing'}",
             "", f"Levels (seeds): {levels}. Seeds are replicates. A layer is *biased* when the sign test of "
             f"mass = 0.5 has p < {SIGNIFICANCE} (across seeds: Fisher's combination of their p-values), *critical* "
             f"when resetting it to epoch 0 costs more than {100 * CRITICAL_DROP:.0f}% of test top-1. DSE kernel "
             f"sigma: {dse_sigma(family)}.", ""]
    lines += [f"- {line}" for line in family.status] + ([""] if family.status else [])
    if small:
        lines += [f"With fewer than {MIN_SEEDS} seeds in {', '.join(small)}, the statements below describe these "
                  "runs; they are not claims about the method.", ""]
    lines += ["## Levels", ""]
    for level in family.levels:
        lines += level_section(family, level, bias, criticality, correlations.get(level))
    lines += ["## Bias vs criticality, all runs", "", f"{correlation_sentence(correlations.get('all'))}.", ""]
    if contrasts:
        lines += [f"## Contrasts (each level against {family.levels[0]})", ""]
        for level in family.levels[1:]:
            lines += [f"### {level} against {family.levels[0]}", ""]
            (a, of_a), (b, of_b) = biased_in_every_seed(bias, family.levels[0]), biased_in_every_seed(bias, level)
            if of_a and of_b:
                lines.append(f"- At {family.levels[0]}, {a} of {of_a} layers biased in every seed; at {level}, "
                             f"{b} of {of_b}.")
            lines += [f"- {contrast_sentence(c)}" for c in contrasts if c.level == level] + [""]
    if family.notes:
        lines += ["## Runs that differ", "", *[f"- {note}" for note in family.notes], ""]
    for figure in figures:
        lines += [f"## {figure.stem.replace('_', ' ')}", "", f"![{figure.stem}]({os.path.relpath(figure, report_dir)})",
                  ""]
    return "\n".join(lines)

