"""The figures of a family (compare_runs.py): statistics across seeds in, matplotlib Figures out.

Each is titled and labelled to stand alone in a paper draft: what is shown, over what, and how
the seeds are summarized.
"""
from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from plotting.common import legend_below, legend_beside, subplots
from plotting.reinit import CMAP as DROP_CMAP
from plotting.reinit import drop_norm, drop_ticks, text_colour
from schema.thresholds import SIGNIFICANCE

MAX_WIDTH_INCHES = 13.0  # 1950 px at the saved 150 dpi


def _colors(levels: list[str]) -> dict[str, str]:
    return {level: f"C{i % 10}" for i, level in enumerate(levels)}


def bias_heatmap(bias, *, levels: list[str], layers: list[str], title: str):
    """Layers x levels: the last-epoch mass P(p <= 0), mean over seeds; stars where the seeds' sign
    tests, combined (Fisher), give p < SIGNIFICANCE."""
    grid = np.full((len(layers), len(levels)), np.nan)
    marks = np.zeros_like(grid, dtype=bool)
    for row in bias.itertuples():
        if row.layer in layers and row.level in levels:
            i, j = layers.index(row.layer), levels.index(row.level)
            grid[i, j], marks[i, j] = row.mass, row.combined_p < SIGNIFICANCE
    fig, ax = subplots(figsize=(2.6 + 1.3 * len(levels), 1.6 + 0.42 * len(layers)))
    image = ax.imshow(grid, cmap="PuOr_r", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}" + (" *" if marks[i, j] else ""), ha="center", va="center", fontsize=9,
                    color="white" if abs(value - 0.5) > 0.3 else "black")
    ax.set_xticks(range(len(levels)), levels, rotation=20, ha="right")
    ax.set_yticks(range(len(layers)), layers)
    ax.set(xlabel="level", ylabel="layer (forward order)")
    fig.colorbar(image, ax=ax, label="mass = P(p <= 0), mean over seeds")
    fig.suptitle(f"{title}\nlast-epoch mass per layer; * combined sign test p < {SIGNIFICANCE}", fontsize=11)
    fig.tight_layout()
    return fig


def bias_dynamics(layer_curves, *, levels: list[str], layers: list[str], title: str):
    """Mass per layer against epoch, a line per level (mean over seeds) with the seeds' range as a band."""
    columns = min(4, max(1, len(layers)))
    rows = -(-len(layers) // columns)
    fig, axes = subplots(rows, columns, figsize=(3.0 * columns, 2.6 * rows + 0.9), squeeze=False, sharey=True)
    colors = _colors(levels)
    for ax, layer in zip(axes.flat, layers):
        for level in levels:
            curve = layer_curves[(layer_curves.level == level) & (layer_curves.layer == layer)].sort_values("epoch")
            if curve.empty:
                continue
            epochs = curve.epoch.to_numpy(dtype=float)
            ax.plot(epochs, curve["mean"], marker="o", markersize=3, color=colors[level], label=level)
            ax.fill_between(epochs, curve["min"], curve["max"], color=colors[level], alpha=0.2, linewidth=0)
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_title(layer, fontsize=10)
        ax.set(ylim=(0, 1), xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(layers):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("mass = P(p <= 0)")
    legend_beside(axes[0, -1], handles=_level_handles(levels, colors), title="level")
    fig.suptitle(f"{title}\nmass per layer during training: mean over seeds, band = range over seeds")
    fig.tight_layout()
    return fig


def _level_handles(levels: list[str], colors: dict[str, str]) -> list:
    return [Line2D([], [], marker="o", markersize=4, color=colors[level], label=level) for level in levels]


def _epoch_axis(ax, epochs) -> None:
    """Integer epoch ticks, and half an epoch of room on each side (one epoch alone is not a range)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(epochs):
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)


def _rho(correlation) -> str:
    if correlation is None:
        return "rho n/a"
    interval = "" if math.isnan(correlation.low) else f" [{correlation.low:.2f}, {correlation.high:.2f}]"
    return f"rho {correlation.rho:.2f}{interval}"


def bias_vs_criticality(points, correlations: dict, *, levels: list[str], title: str):
    """One point per (run, layer): |mass - 0.5| against the drop from epoch 0; Spearman rho with its
    bootstrap CI over runs, overall and per level."""
    fig, ax = subplots(figsize=(8.6, 5.0))
    colors = _colors(levels)
    for level in levels:
        chosen = points[points.level == level]
        if not chosen.empty:
            ax.scatter(chosen.x, 100 * chosen.y, s=30, color=colors[level], alpha=0.8,
                       label=f"{level}: {_rho(correlations.get(level))}")
    ax.set(xlabel="orientation bias |mass - 0.5| (last epoch)",
           ylabel="re-init to epoch 0: relative top-1 drop (%)")
    ax.grid(alpha=0.3)
    legend_beside(ax, title="level: Spearman rho [95% CI]")
    fig.suptitle(f"{title}\nbias vs criticality, one point per run and layer\nall runs: "
                 f"{_rho(correlations.get('all'))} (95% CI, bootstrap over runs)", fontsize=11)
    fig.tight_layout()
    return fig


def _band(ax, curve, color, label) -> None:
    curve = curve.sort_values("epoch")
    epochs = curve.epoch.to_numpy(dtype=float)
    std = curve["std"].fillna(0.0)
    ax.plot(epochs, curve["mean"], marker="o", markersize=3, color=color, label=label)
    ax.fill_between(epochs, curve["mean"] - std, curve["mean"] + std, color=color, alpha=0.2, linewidth=0)


def curves_figure(panels: list[tuple[str, str, object]], *, levels: list[str], title: str):
    """Panels ``(panel title, y label, curves)`` against epoch: a line per level, band = ± std over seeds."""
    fig, axes = subplots(1, len(panels), figsize=(4.3 * len(panels), 4.5), squeeze=False)
    colors = _colors(levels)
    for ax, (name, ylabel, data) in zip(axes[0], panels):
        for level in levels:
            curve = data[data.level == level]
            if not curve.empty:
                _band(ax, curve, colors[level], level)
        ax.set(xlabel="epoch", ylabel=ylabel, title=name)
        _epoch_axis(ax, data.epoch.dropna().to_numpy(dtype=float))
        ax.grid(alpha=0.3)
    legend_below(fig, _level_handles(levels, colors), columns=min(len(levels), 6))
    fig.suptitle(f"{title}\nmean over seeds, band = ± one standard deviation")
    fig.tight_layout(rect=(0, 0.08 * (1 + (len(levels) - 1) // 6), 1, 1))
    return fig


def accuracy_curves(per_epoch, final_test, *, levels: list[str], split: str, title: str):
    """Top-1 against epoch, a line per level (mean over seeds, band ± std): ``per_epoch`` the accuracy
    train.py measured every epoch on ``split`` (validation, or test without a validation split), and
    ``final_test`` the test top-1 measured once at the end (a diamond with the seeds' std), when the
    split is not the test set. Both are ``comparison.stats.curves`` frames."""
    fig, ax = subplots(figsize=(8.4, 4.6))
    colors = _colors(levels)
    for level in levels:
        curve = per_epoch[per_epoch.level == level]
        if not curve.empty:
            _band(ax, curve, colors[level], level)
        final = final_test[final_test.level == level] if split != "test" else final_test.iloc[0:0]
        if not final.empty:
            ax.errorbar(final.epoch.to_numpy(dtype=float), final["mean"], yerr=final["std"].fillna(0.0), fmt="D",
                        color=colors[level], markeredgecolor="black", markersize=6, capsize=3, zorder=4)
    epochs = np.concatenate([frame.epoch.dropna().to_numpy(dtype=float) for frame in (per_epoch, final_test)])
    _epoch_axis(ax, epochs)
    ax.set(xlabel="epoch", ylabel="top-1 accuracy (%)", ylim=(0, 100))
    ax.grid(alpha=0.3)
    handles = _level_handles(levels, colors)
    if split != "test" and not final_test.empty:
        handles.append(Line2D([], [], marker="D", linestyle="", color="grey", markeredgecolor="black",
                              label="test top-1 after training"))
    legend_beside(ax, handles=handles, title="level")
    what = ("test top-1 per epoch" if split == "test" else
            f"{split} top-1 per epoch (lines), test top-1 after training (diamonds)")
    fig.suptitle(f"{title}\n{what}\nmean over seeds; band and bars = ± one standard deviation", fontsize=11)
    fig.tight_layout()
    return fig


def reinit_heatmaps(grids: dict, *, title: str):
    """Per level, Zhang et al.'s heatmap of the last snapshot averaged over seeds: rows the checkpoint
    the layer is reset to (rand: a random init), columns the layers, colour the relative top-1 drop."""
    levels = list(grids)
    widest = max(len(layers) for _, layers, _, _ in grids.values())
    tallest = max(len(rows) for rows, _, _, _ in grids.values())
    room = MAX_WIDTH_INCHES - 2.0  # beside the colour bar
    cell = min(0.6, (room - 1.6) / widest)  # many layers: narrower cells
    columns = max(1, min(len(levels), int(room // (1.6 + cell * widest))))  # panels a row; the rest wrap
    panel_rows = -(-len(levels) // columns)
    fig, axes = subplots(panel_rows, columns, figsize=(2.0 + (1.6 + cell * widest) * columns,
                                                       (1.6 + 0.32 * tallest) * panel_rows + 0.8),
                         squeeze=False, layout="constrained")
    norm = drop_norm(np.concatenate([grid.ravel() for _, _, grid, _ in grids.values()]))
    cmap = matplotlib.colormaps[DROP_CMAP]
    image = None
    for ax, level in zip(axes.flat, levels):
        rows, layers, grid, runs = grids[level]
        image = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value) and cell >= 0.4:  # a number per cell only where it fits
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=text_colour(norm, value))
        every = max(1, math.ceil(0.16 / cell))  # rotated layer names one per 0.16 in, so that they do not collide
        ax.set_xticks(range(0, len(layers), every), layers[::every], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), ["random init" if r == "rand" else f"epoch {r}" for r in rows], fontsize=8)
        ax.set_title(f"{level} ({runs} seed{'s' if runs != 1 else ''})", fontsize=10)
        ax.set_xlabel("layer reset")
    for ax in list(axes.flat)[len(levels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("parameters taken from")
    bar = fig.colorbar(image, ax=list(axes.flat), label="relative drop of top-1, mean over seeds\n< 0: the reset helps")
    bar.set_ticks(drop_ticks(norm))
    fig.suptitle(f"{title}\nre-initialization robustness of the last snapshot")
    return fig
