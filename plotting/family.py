"""The figures of a family (compare_runs.py): statistics across seeds in, matplotlib Figures out.

Each is titled and labelled to stand alone in a paper draft: what is shown, over what, and how
the seeds are summarized.
"""
from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.colors import Normalize

from plotting.common import subplots
from schema.thresholds import SIGNIFICANCE


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
    ax.set_title(f"{title}\nlast-epoch mass per layer; * combined sign test p < {SIGNIFICANCE}", fontsize=11)
    fig.tight_layout()
    return fig


def bias_dynamics(layer_curves, *, levels: list[str], layers: list[str], title: str):
    """Mass per layer against epoch, a line per level (mean over seeds) with the seeds' range as a band."""
    columns = min(4, max(1, len(layers)))
    rows = -(-len(layers) // columns)
    fig, axes = subplots(rows, columns, figsize=(3.3 * columns, 2.6 * rows + 0.9), squeeze=False, sharey=True)
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
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(layers):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("mass = P(p <= 0)")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{title}\nmass per layer during training: mean over seeds, band = range over seeds")
    fig.tight_layout()
    return fig


def _rho(correlation) -> str:
    if correlation is None:
        return "rho n/a"
    interval = "" if math.isnan(correlation.low) else f" [{correlation.low:.2f}, {correlation.high:.2f}]"
    return f"rho {correlation.rho:.2f}{interval}"


def bias_vs_criticality(points, correlations: dict, *, levels: list[str], title: str):
    """One point per (run, layer): |mass - 0.5| against the drop from epoch 0; Spearman rho with its
    bootstrap CI over runs, overall and per level."""
    fig, ax = subplots(figsize=(7.2, 4.8))
    colors = _colors(levels)
    for level in levels:
        chosen = points[points.level == level]
        if not chosen.empty:
            ax.scatter(chosen.x, 100 * chosen.y, s=30, color=colors[level], alpha=0.8,
                       label=f"{level}: {_rho(correlations.get(level))}")
    ax.set(xlabel="orientation bias |mass - 0.5| (last epoch)",
           ylabel="re-init to epoch 0: relative top-1 drop (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{title}\nbias vs criticality, one point per run and layer; all runs: "
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
    fig, axes = subplots(1, len(panels), figsize=(4.6 * len(panels), 3.9), squeeze=False)
    colors = _colors(levels)
    for ax, (name, ylabel, data) in zip(axes[0], panels):
        for level in levels:
            curve = data[data.level == level]
            if not curve.empty:
                _band(ax, curve, colors[level], level)
        ax.set(xlabel="epoch", ylabel=ylabel, title=name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{title}\nmean over seeds, band = ± one standard deviation")
    fig.tight_layout()
    return fig


def reinit_heatmaps(grids: dict, *, title: str):
    """Per level, Zhang et al.'s heatmap of the last snapshot averaged over seeds: rows the checkpoint
    the layer is reset to (rand: a random init), columns the layers, colour the relative top-1 drop."""
    levels = list(grids)
    widest = max(len(layers) for _, layers, _, _ in grids.values())
    tallest = max(len(rows) for rows, _, _, _ in grids.values())
    fig, axes = subplots(1, len(levels), figsize=(2.0 + (1.6 + 0.6 * widest) * len(levels), 2.2 + 0.32 * tallest),
                         squeeze=False, layout="constrained")
    norm = Normalize(vmin=0.0, vmax=1.0)
    cmap = matplotlib.colormaps["YlOrRd"]
    image = None
    for ax, level in zip(axes[0], levels):
        rows, layers, grid, runs = grids[level]
        image = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm(value) > 0.55 else "black")
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), ["random init" if r == "rand" else f"epoch {r}" for r in rows], fontsize=8)
        ax.set_title(f"{level} ({runs} seed{'s' if runs != 1 else ''})", fontsize=10)
        ax.set_xlabel("layer reset")
    axes[0][0].set_ylabel("parameters taken from")
    fig.colorbar(image, ax=list(axes[0]), label="relative drop of top-1, mean over seeds")
    fig.suptitle(f"{title}\nre-initialization robustness of the last snapshot")
    return fig
