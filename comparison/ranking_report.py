"""``report.md`` of rank_measures.py: first what the test set cannot tell apart (a target whose
environments carry no weight), then the measures that predict each target robustly (the seeds'
measures and the field's baselines in one table), which measures track each target and which do not,
the table of statistics, how each measure is aggregated, the models that differ, the figures and the
references. A measures table, its ranking and each target's evidence in, Markdown out."""
from __future__ import annotations

import math
import os
from pathlib import Path

from analyses.registry import HELD_OUT
from comparison.correlations import BOOTSTRAP, MIN_GROUPS
from comparison.measures import KNOWN
from comparison.ranking import (
    BASELINE,
    HOEFFDING,
    LEVEL,
    MIN_MODELS,
    SEED,
    UNBOUNDED,
    UNFILTERED,
    Evidence,
)
from comparison.robust import MIN_ESS, MIN_WEIGHT, ROBUST_ERROR
from comparison.targets import TARGETS

REFERENCES = (
    "Gamba, Carlsson, Azizpour, Björkman, \"Hyperplane Arrangements of Trained ConvNets Are Biased\", 2020 "
    "(the hyperplane paper: the projection measures `bias_*`).",
    "Jiang, Neyshabur, Mobahi, Krishnan, Bengio, \"Fantastic Generalization Measures and Where to Find Them\", "
    "ICLR 2020 (the protocol, the granulated Kendall coefficient, the field's measures).",
    "Dziugaite, Drouin, Neal, Rajkumar, Caballero, Wang, Mitliagkas, Roy, \"In Search of Robust Measures of "
    "Generalization\", NeurIPS 2020 (the environments, their Hoeffding weights, the robust sign-error).",
    "Holm, \"A Simple Sequentially Rejective Multiple Test Procedure\", Scandinavian Journal of Statistics, 1979.",
)
ROLE_NAMES = {BASELINE: "field's baseline"}
HELD_OUT_NAME = "held-out data"


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
    role = ROLE_NAMES.get(getattr(row, "role", ""), "seeds' measure")
    return f"{role}, {HELD_OUT_NAME}" if getattr(row, "reads", "") == HELD_OUT else role


def held_out_line(rows) -> list[str]:
    """The robust predictors that read held-out images, named: the field's protocol does not allow them."""
    found = sorted({row.measure for row in rows.itertuples() if row.robust and getattr(row, "reads", "") == HELD_OUT})
    if not found:
        return []
    named = ", ".join(f"`{name}`" for name in found)
    return ["", f"{named} {'reads' if len(found) == 1 else 'read'} {HELD_OUT_NAME}: images the models were not "
            "trained on (the validation split, else the test split). The field's protocol lets a measure read the "
            "training data only (Jiang et al. 2020): a held-out measure that tracks test accuracy partly measures "
            "it, so read it beside the others, not as a prediction from the training data."]


def _axes(ranking, prefix: str) -> list[str]:
    skip = {"granulated_kendall"}
    return [c[len(prefix):] for c in ranking.columns if c.startswith(prefix) and c not in skip]


def _worst(row) -> str:
    """The robust sign-error with its environment's axis, e.g. ``0.25 (lr)``."""
    if not math.isfinite(row.robust_sign_error):
        return "n/a"
    return f"{row.robust_sign_error:.2f} ({row.worst_environment_axis})"


def _scores(row) -> str:
    """`` | CMI (its conditioning set) | PGDL`` cells where the ranking has them."""
    cells = []
    if hasattr(row, "cmi"):
        named = f" ({row.cmi_set})" if math.isfinite(row.cmi) and getattr(row, "cmi_set", "") else ""
        cells.append(f"{_num(row.cmi)}{named}")
    if hasattr(row, "pgdl_score"):
        cells.append(_num(row.pgdl_score))
    return "".join(f" | {cell}" for cell in cells)


def _score_headers(ranking) -> tuple[str, str]:
    named = [name for column, name in (("cmi", "CMI (set)"), ("pgdl_score", "PGDL score")) if column in ranking]
    return "".join(f" | {name}" for name in named), "|---" * len(named)


def _robust_rows(rows) -> list[str]:
    found = [row for row in rows.itertuples() if row.robust]
    return [f"| `{row.measure}` | {_role(row)} ({row.analysis}) | "
            f"{_num(row.kendall_tau)}{_ci(row.tau_low, row.tau_high)} | {_num(row.p_holm, 3)} | {_worst(row)} | "
            f"{_num(row.mean_sign_error)} | {row.kept_environments} | {_num(row.granulated_kendall)}{_scores(row)} |"
            for row in found]


def _best(rows, role: str) -> str:
    """The defined measure of ``role`` whose worst environment errs least (then the mean sign-error, then |tau|)."""
    mine = rows[(rows.role == role) & rows.robust_sign_error.notna() & rows.kendall_tau.notna()] if "role" in rows \
        else rows.iloc[:0]
    if mine.empty:
        return "none with a judged environment"
    ordered = mine.assign(_tau=-mine.kendall_tau.abs()).sort_values(["robust_sign_error", "mean_sign_error", "_tau"])
    best = ordered.iloc[0]
    return (f"`{best.measure}` (robust sign-error {_worst(best)}, mean {_num(best.mean_sign_error)}, tau "
            f"{_num(best.kendall_tau)}, {best.verdict})")


def _listed(names, limit: int = 6) -> str:
    names = list(names)
    return "; ".join(names[:limit]) + (f"; and {len(names) - limit} more" if len(names) > limit else "")


def _sizes(sizes: tuple[int, ...]) -> str:
    return f"n = {sizes[0]}" if len(sizes) == 1 else f"n = {sizes[0]} to {sizes[-1]}"


def evidence_lines(found: Evidence) -> list[str]:
    """The report's first lines about a target whose environments the test set cannot judge (none when it can)."""
    target = TARGETS[found.target]
    if not found.environments:
        return []
    lines = []
    if found.unsized:
        lines.append(f"{target.short}: {len(found.unsized)} run(s) do not record their test-set size (run.json's "
                     f"`data.sizes.test`), so their pairs carry no weight: {_listed(found.unsized, 3)}.")
    if found.weighting == HOEFFDING and not found.weighted:
        cause = (f"**the test set cannot tell these {target.plural} apart: the {target.plural} differ by at most "
                 f"{found.largest_difference:.2f} points and {_sizes(found.sizes)}**" if found.sizes else
                 "**no run records its test-set size**")
        lines.append(f"{target.short}: {cause}. None of its {found.environments} environments carries weight, so no "
                     "measure is marked robust against it (`--no-noise-filter` shows the unweighted view).")
    elif not found.kept:
        lines.append(f"{target.short}: **no environment is judged**: {found.weighted} of {found.environments} carry "
                     f"weight, but none has an effective sample size of {found.min_ess:g} or more (the largest: "
                     f"{found.largest_ess:.1f}; an environment pairs every model of one setting with every model of "
                     f"the other, so {found.seeds} seed(s) per setting give it at most {found.seeds ** 2} pair(s), "
                     "fewer where some pairs' targets differ too little to carry weight). No measure is marked "
                     "robust against it; more seeds per setting give environments more pairs (`--min-ess` lowers the "
                     "threshold).")
    return lines


def _environments_line(found: Evidence | None) -> list[str]:
    if found is None:
        return []
    if not found.environments:
        return ["The models form no grid (no two runs differ in exactly one hyperparameter): there are no "
                "environments, and no measure is marked robust.", ""]
    weighting = {HOEFFDING: "Hoeffding-weighted", UNFILTERED: "**unweighted** (`--no-noise-filter`): every pair "
                 "weighs 1, noise included", UNBOUNDED: "**unweighted**: the Hoeffding weight bounds a test "
                 "accuracy's noise, not this target's (a loss, a training accuracy), so every pair weighs 1, noise "
                 "included"}[found.weighting]
    lines = [f"Environments: {found.environments}, {found.weighted} carry weight, {found.kept} judged (effective "
             f"sample size at least {found.min_ess:g}); {weighting}."]
    if found.left_out:
        lines.append(f"Left out, their effective sample size below {found.min_ess:g}: {_listed(found.left_out)} "
                     "(environments.csv lists every environment).")
    return [" ".join(lines), ""]


def scores_line(found: Evidence | None, rows) -> list[str]:
    """One line on the PGDL score where it is empty, or computed on the seeds' means."""
    if found is None or not found.environments:
        return []
    if found.pgdl_problem:
        return [f"The PGDL score is empty: {found.pgdl_problem}.", ""]
    lines = []
    if found.seeds > 1:
        lines.append(f"The PGDL score is computed on each setting's mean measure and mean target over its seeds (up "
                     f"to {found.seeds}): the competition's tasks have one model per setting.")
    lacking = [f"`{row.measure}`" for row in rows.itertuples() if not math.isfinite(row.pgdl_score)] \
        if "pgdl_score" in rows else []
    if lacking:
        lines.append(f"The PGDL score is empty for {', '.join(lacking)}: some models lack them, so their grid is "
                     "incomplete.")
    return [" ".join(lines), ""] if lines else []


def robust_section(ranking, evidence: dict[str, Evidence] | None = None) -> list[str]:
    """The first table: per target, the measures that predict it robustly, seeds' and baselines together."""
    evidence = evidence or {}
    headers, rules = _score_headers(ranking)
    lines = ["## Robust predictors", "",
             f"A measure predicts a target *robustly* when it tracks it (Kendall's tau-b p, Holm-corrected over that "
             f"target's measures, below {LEVEL}, and the tau interval, when there is one, excludes 0) in the "
             "direction its literature expects (or with no expected sign), and its *robust sign-error*, the "
             "sign-error of its worst judged environment (Dziugaite et al.), is below "
             f"{ROBUST_ERROR}: along every hyperparameter and at every setting of the others, its differences "
             "predict the target's better than a coin flip.", ""]
    for target in dict.fromkeys(ranking.target):
        rows = ranking[ranking.target == target]
        found = _robust_rows(rows)
        lines += [f"**{TARGETS[target].short}**", "", *_environments_line(evidence.get(target)),
                  *scores_line(evidence.get(target), rows),
                  "| measure | kind (analysis) | Kendall tau-b [95% CI] | p (Holm) | robust sign-error (axis) | "
                  "mean sign-error | judged environments | granulated Kendall (Jiang's tau)" + headers + " |",
                  "|---|---|---|---|---|---|---|---" + rules + "|"]
        lines += found or ["| none |" + " |" * (7 + len(rules) // 4)]
        lines += held_out_line(rows)
        roles = sorted(set(rows.role)) if "role" in rows else []
        if len(roles) > 1 or BASELINE in roles:
            lines += ["", f"Least robust sign-error among the seeds' measures: {_best(rows, SEED)}; among the "
                      f"field's baselines: {_best(rows, BASELINE)}."]
        lines.append("")
    return lines


def single_axis_note(ranking) -> list[str]:
    """Says why granulated Kendall equals psi(axis) and every environment is along that axis on a one-axis grid."""
    axes = _axes(ranking, "granulated_")
    if len(axes) != 1:
        return []
    return [f"The grid has a single axis ({axes[0]}): the granulated Kendall coefficient is psi({axes[0]}) itself, "
            "and every environment is along that axis.", ""]


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
    headers, rules = _score_headers(rows)
    lines += ["", "| measure | kind | Kendall tau-b [95% CI] | p | p (Holm) | Spearman rho [95% CI] | granulated "
              "Kendall" + "".join(f" | psi({axis})" for axis in axes) + headers
              + " | robust sign-error (axis) | mean sign-error | environments (weighted, judged) | models | "
              "expected sign | verdict |",
              "|---|---|---|---|---|---|---" + "|---" * len(axes) + rules + "|---|---|---|---|---|---|"]
    for row in rows.itertuples():
        per_axis = "".join(f" | {_num(getattr(row, f'granulated_{axis}'))}" for axis in axes)
        lines.append(f"| `{row.measure}` | {_role(row)} | {_num(row.kendall_tau)}{_ci(row.tau_low, row.tau_high)} | "
                     f"{_num(row.p, 3)} | {_num(row.p_holm, 3)} | {_num(row.spearman)}{_ci(row.rho_low, row.rho_high)}"
                     f" | {_num(row.granulated_kendall)}{per_axis}{_scores(row)} | {_worst(row)} | "
                     f"{_num(row.mean_sign_error)} | {row.environments} ({row.weighted_environments}, "
                     f"{row.kept_environments}) | {row.n_models} | {_sign(row.expected)} | {row.verdict} |")
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


def method_paragraph(resamples: int, n_measures: int, *, min_ess: float) -> str:
    return (f"For each measure and target: Kendall's tau-b and Spearman's rho (scipy.stats) over the models "
            f"that have both, with 95% percentile bootstrap intervals ({resamples} draws) that resample settings, "
            f"the seeds of one setting together (no interval with fewer than {MIN_GROUPS} settings). Kendall's "
            f"p-values are Holm-corrected across the measures of each target that have one (at most {n_measures}; "
            f"column p (Holm)); a measure *tracks* a target when its corrected p is below {LEVEL} and the interval "
            "of tau-b, when there is one, excludes 0. The granulated Kendall coefficient (Jiang et al., ICLR 2020) "
            "uses *Jiang's* tau, not tau-b: the mean of sign(dx) sign(dy) over pairs, where a tie or a constant "
            "measure counts 0; psi(axis) is its mean over the groups of runs that differ only in that axis (the "
            "other axes and the seed fixed), and the coefficient the mean of psi over the axes. Jiang's conditional "
            "mutual information (CMI) is, over the ordered pairs of distinct models of the grid, the mutual "
            "information between the signs of the measure's and the target's differences given the pair's values "
            "of a set of at most 2 hyperparameters, over the conditional entropy of the target's sign, minimized "
            "over the sets (the set that gives it in brackets; none: the empty set). The PGDL score is the "
            "competition's (not times 100): every ordered pair of settings, a setting with itself included, ties "
            "as '-'; for each ordered pair of distinct hyperparameters the mean mutual information over the cells "
            "over the mean entropy of the target's sign; the minimum over the pairs. An *environment* "
            "(Dziugaite et al., NeurIPS 2020) is a pair of settings that differ in exactly one hyperparameter; its "
            "pairs of models are every model of one with every model of the other (seeds are no hyperparameter). "
            "A pair's sign-error is 0 when the sign of the measure's difference, turned by its expected sign, is "
            "that of the target's difference, 1 when opposite, 1/2 when either is 0; its weight is the Hoeffding "
            "probability that the test set tells the two targets apart, (1 - 2 exp(-n d^2 / 2))^2 for a "
            f"difference d (a fraction) measured on n test examples, less {MIN_WEIGHT}, clipped at 0. An "
            "environment's sign-error is the weighted mean over its pairs; an environment with an effective "
            f"sample size (sum w)^2 / sum w^2 below {min_ess:g} is left out (the reference's threshold), and "
            "the *robust sign-error* is the largest over the judged environments. A measure with no expected "
            "sign is turned by the sign of its tau (which favours it). The expected sign is the measure's "
            "literature's, for that target (a gap is better when lower).")


def report_markdown(table, ranking, *, description: str, notes: list[str], figures: list[Path],
                    report_dir: Path, resamples: int = BOOTSTRAP, status: list[str] | None = None,
                    evidence: dict[str, Evidence] | None = None) -> str:
    """The report; ``evidence`` (:attr:`comparison.ranking.Ranked.evidence`) puts what the test set cannot
    tell apart in its first lines."""
    n_models = table.model.nunique()
    evidence = evidence or {}
    lines = [f"# Which measures track generalization: {description}", "", _models_line(table), ""]
    warned = [line for found in evidence.values() for line in evidence_lines(found)]
    lines += [f"- {line}" for line in warned + (status or [])] + ([""] if warned or status else [])
    if n_models < MIN_MODELS:
        lines += [f"With {n_models} models (fewer than {MIN_MODELS}), the numbers below describe these models; "
                  "they are no claim about the measures.", ""]
    lines += robust_section(ranking, evidence)
    tested = int(ranking.groupby("target").p.count().max()) if len(ranking) else 0
    min_ess = next(iter(evidence.values())).min_ess if evidence else MIN_ESS
    lines += [method_paragraph(resamples, tested, min_ess=min_ess), ""] + single_axis_note(ranking)
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
