"""The figures of rank_measures.py: a measures table and its ranking in, matplotlib Figures out.

- :func:`measure_scatter`: for the top measures, the measure against the target, one labelled
  point per model, coloured by the factor that varies (WeightWatcher's VGG figure is this for a zoo);
- :func:`tau_forest`: Kendall's tau of every measure with its bootstrap 95% interval, per target,
  coloured by whether its sign agrees with the measure's literature.
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
        ax.set(xlim=(-1.05, 1.05), xlabel="Kendall's tau")
        ax.set_title(target_labels.get(target, target), fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[0, 0].set_yticks(range(len(order)), list(reversed(order)))
    handles = [Line2D([], [], marker="o", linestyle="-", color=c, label=name)
               for name, c in (("sign as its literature expects", "tab:green"), ("opposite sign", "tab:red"),
                               ("no expected sign", "tab:gray"))]
    handles.append(Line2D([], [], marker="o", linestyle="", color="tab:gray", markerfacecolor="white",
                          label="hollow: interval includes 0"))
    handles.append(Line2D([], [], marker="D", linestyle="", markerfacecolor="none",
                                           markeredgecolor="black", label="granulated Kendall"))
    legend_below(fig, handles, columns=3)
    named = [target_labels.get(t, t) for t in targets]
    against = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    fig.suptitle(f"Kendall's tau of each measure with {against} across {title}\n"
                 "(dot = tau, bar = 95% bootstrap CI over settings)", fontsize=11)
    fig.tight_layout(rect=(0, 0.8 / (0.34 * len(order) + 2.6), 1, 1))
    return fig
