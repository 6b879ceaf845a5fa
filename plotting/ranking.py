"""The figures of rank_measures.py: a measures table and its ranking in, matplotlib Figures out.

- :func:`measure_scatter`: for the top measures, the measure against the target, one labelled
  point per model, coloured by the factor that varies (WeightWatcher's VGG figure is this for a zoo);
- :func:`tau_forest`: Kendall's tau of every measure with its bootstrap 95% interval, per target,
  coloured by whether its sign agrees with the measure's literature;
- :func:`environment_cdf`: as in Dziugaite et al.'s figures, the cumulative distribution of the judged
  environments' sign-errors of the top measures, over every axis and per axis; a measure's curve
  reaches 1 at its robust sign-error.
"""
from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.lines import Line2D

from plotting.common import legend_below, place_labels, subplots

AGREEMENT_COLORS = {"yes": "tab:green", "no": "tab:red", "": "tab:gray"}


def _interval(row) -> str:
    if not np.isfinite(row.kendall_tau):
        return "tau n/a"
    ci = "" if not np.isfinite(row.tau_low) else f" [{row.tau_low:.2f}, {row.tau_high:.2f}]"
    return f"tau {row.kendall_tau:.2f}{ci}"


def _colors(values) -> tuple[list, list[tuple[str, object]]]:
    """A colour per value (a sequential map for numbers, the cycle otherwise) and the legend entries."""
    labels = ["n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else value for value in values]
    distinct = list(dict.fromkeys(labels))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct if v != "n/a")
    if numeric and len(distinct) > 2:
        ordered = sorted((v for v in distinct if v != "n/a"), key=float)
        cmap = matplotlib.colormaps["viridis"]
        colour = {v: cmap(i / max(1, len(ordered) - 1)) for i, v in enumerate(ordered)} | {"n/a": "tab:gray"}
        distinct = ordered + (["n/a"] if "n/a" in distinct else [])
    else:
        colour = {v: f"C{i % 10}" for i, v in enumerate(distinct)}
    legend = [(f"{v:g}" if isinstance(v, float) else str(v), colour[v]) for v in distinct]
    return [colour[label] for label in labels], legend


def measure_scatter(table, ranking, *, target: str, target_label: str, measures: list[str], color_by: str | None,
                    title: str, label_column: str = "label"):
    """One panel per measure: the measure (x) against ``target`` (y), a point per model labelled by
    ``label_column`` where the label overlaps no other label or point (a crowded point stays unlabelled;
    its colour still gives its setting); one legend of the colours under the panels."""
    columns = min(len(measures), 2) if len(measures) > 1 else 1
    rows = -(-len(measures) // columns)
    fig, axes = subplots(rows, columns, figsize=(5.2 * columns, 4.0 * rows + 1.0), squeeze=False)
    labelled, legend = [], []
    for ax, measure in zip(axes.flat, measures):
        points = table[(table.measure == measure)].dropna(subset=["value", target])
        values = list(points[color_by]) if color_by else ["all"] * len(points)
        colours, legend = _colors(values)
        ax.scatter(points.value, points[target], c=colours, s=36, edgecolors="black", linewidths=0.4, zorder=3)
        labelled.append((ax, list(points.value), list(points[target]), list(points[label_column])))
        found = ranking[(ranking.measure == measure) & (ranking.target == target)]
        stat = _interval(found.iloc[0]) if len(found) else "tau n/a"
        expected = int(found.iloc[0].expected) if len(found) else 0
        arrow = {1: ", expected +", -1: ", expected -", 0: ""}[expected]
        ax.set_title(f"{measure}: {stat}{arrow}", fontsize=10)
        ax.set(xlabel=measure, ylabel=target_label)
        ax.grid(alpha=0.3)
        ax.margins(0.1)
    for ax in list(axes.flat)[len(measures):]:
        ax.set_visible(False)
    if color_by and len(legend) > 1:  # one legend for every panel, under them: it covers no point
        handles = [Line2D([], [], marker="o", linestyle="", color=c, markeredgecolor="black", markeredgewidth=0.4,
                          label=name) for name, c in legend]
        legend_below(fig, handles, columns=min(len(handles), 8), title=color_by, title_fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07 if color_by and len(legend) > 1 else 0, 1, 1))
    for ax, xs, ys, labels in labelled:  # once the layout is final: labels where they overlap nothing
        place_labels(ax, xs, ys, labels, fontsize=7, marker_size=36)
    return fig


def tau_forest(ranking, *, targets: list[str], target_labels: dict[str, str], title: str):
    """Per target (those with a defined tau), every measure's tau (dot) with its 95% bootstrap interval
    (bar); the granulated coefficient as an open diamond where a grid gives one. Measures in the order
    of the first target's |tau|."""
    targets = [t for t in targets if ranking[ranking.target == t].kendall_tau.notna().any()] or targets[:1]
    defined = set(ranking[ranking.kendall_tau.notna()].measure)
    first = ranking[(ranking.target == targets[0]) & ranking.measure.isin(defined)]
    order = list(first.measure)
    order += [m for m in dict.fromkeys(ranking.measure) if m in defined and m not in order]
    order = order or list(dict.fromkeys(ranking.measure))
    fig, axes = subplots(1, len(targets), figsize=(3.6 * len(targets) + 1.8, 0.34 * len(order) + 2.6),
                         squeeze=False, sharey=True)
    positions = {measure: len(order) - 1 - i for i, measure in enumerate(order)}
    for ax, target in zip(axes[0], targets):
        for row in ranking[(ranking.target == target) & ranking.measure.isin(positions)].itertuples():
            y, colour = positions[row.measure], AGREEMENT_COLORS.get(row.agrees, "tab:gray")
            if np.isfinite(row.tau_low):
                ax.plot([row.tau_low, row.tau_high], [y, y], color=colour, linewidth=2, alpha=0.7)
            if np.isfinite(row.kendall_tau):  # hollow: the interval includes 0, the measure does not track
                face = colour if row.verdict.startswith("tracks") else "white"
                ax.plot(row.kendall_tau, y, "o", color=colour, markerfacecolor=face, markeredgecolor=colour)
            if np.isfinite(getattr(row, "granulated_kendall", math.nan)):
                ax.plot(row.granulated_kendall, y, "D", markerfacecolor="none", markeredgecolor="black", markersize=5)
        ax.axvline(0, color="grey", linestyle=":", linewidth=1)
        ax.set(xlim=(-1.05, 1.05), xlabel="Kendall's tau-b")
        ax.set_title(target_labels.get(target, target), fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[0, 0].set_yticks(range(len(order)), list(reversed(order)))
    handles = [Line2D([], [], marker="o", linestyle="-", color=c, label=name)
               for name, c in (("sign as its literature expects", "tab:green"), ("opposite sign", "tab:red"),
                               ("no expected sign", "tab:gray"))]
    handles.append(Line2D([], [], marker="o", linestyle="", color="tab:gray", markerfacecolor="white",
                          label="hollow: interval includes 0"))
    handles.append(Line2D([], [], marker="D", linestyle="", markerfacecolor="none",
                                           markeredgecolor="black", label="granulated Kendall (Jiang's tau)"))
    legend_below(fig, handles, columns=3)
    named = [target_labels.get(t, t) for t in targets]
    against = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    fig.suptitle(f"Kendall's tau of each measure with {against} across {title}\n"
                 "(dot = tau-b, bar = 95% bootstrap CI over settings)", fontsize=11)
    height = 0.34 * len(order) + 2.6  # inches: the legend's 0.8 below, the two-line title's 0.5 above
    fig.tight_layout(rect=(0, 0.8 / height, 1, 1 - 0.5 / height))
    return fig


LINESTYLES = ("-", "--", "-.", ":")


def _cdf(ax, judged, measure: str, index: int) -> int:
    """The step curve of ``measure``'s sign-errors in ``judged``, a dot at the worst; how many there are."""
    errors = np.sort(judged[judged.measure == measure].sign_error.to_numpy(float))
    if len(errors):
        xs = np.concatenate([[0.0], errors, [1.0]])
        ys = np.concatenate([[0.0], np.arange(1, len(errors) + 1) / len(errors), [1.0]])
        ax.step(xs, ys, where="post", color=f"C{index}", linestyle=LINESTYLES[index % len(LINESTYLES)],
                linewidth=1.6)
        ax.plot(errors[-1], 1.0, "o", color=f"C{index}", markersize=4)
    return len(errors)


def environment_cdf(environments, ranking, *, target: str, target_label: str, measures: list[str], title: str):
    """One panel for every environment and one per axis: for each of ``measures``, the fraction of its judged
    environments (``environments.kept``) whose sign-error is at most x, a step curve from 0 to 1 (a dot
    where it reaches 1: the robust sign-error); a dotted line at 0.5, a coin flip. ``environments``: the
    rows of environments.csv, ``ranking`` ranking.csv's (for the legend's robust sign-errors)."""
    here = environments[environments.target == target]
    judged = here[here.kept & here.sign_error.notna()]
    axes_found = list(dict.fromkeys(here.axis))
    panels = ["every axis", *axes_found] if len(axes_found) > 1 else axes_found or ["every axis"]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = subplots(rows, columns, figsize=(max(3.8 * columns, 8.0), 3.0 * rows + 1.2), squeeze=False,
                         sharex=True, sharey=True)
    for ax, panel in zip(axes.flat, panels):
        counts = [_cdf(ax, judged if panel == "every axis" else judged[judged.axis == panel], measure, i)
                  for i, measure in enumerate(measures)]
        if not any(counts):  # as the reference's red cross: no environment of this axis is judged
            ax.text(0.5, 0.5, "no judged environment", ha="center", va="center", color="tab:red", fontsize=9,
                    transform=ax.transAxes)
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.03, 1.05))
        ax.set_title(f"{panel} ({max(counts, default=0)} judged)", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("sign-error of an environment")
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction of environments")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    worst = ranking[ranking.target == target].set_index("measure").robust_sign_error
    handles = [Line2D([], [], color=f"C{i}", linestyle=LINESTYLES[i % len(LINESTYLES)], marker="o", markersize=4,
                      label=f"{measure} (robust sign-error {worst.get(measure, math.nan):.2f})")
               for i, measure in enumerate(measures)]
    handles.append(Line2D([], [], color="grey", linestyle=":", label="0.5: a coin flip"))
    legend_below(fig, handles, columns=min(len(handles), 3))
    fig.suptitle(f"Sign-errors of the judged environments against {target_label}, {title}\n"
                 "(curve: fraction of environments with a sign-error at most x; dot: the worst)", fontsize=11)
    legend_rows = -(-len(handles) // min(len(handles), 3))
    fig.tight_layout(rect=(0, (0.1 + 0.18 * legend_rows) / (3.0 * rows + 1.2), 1, 1))
    return fig
