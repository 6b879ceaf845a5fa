"""The re-initialization heatmap of Zhang, Bengio and Singer (2019), from a reinit result document.

Rows are the checkpoints the parameters come from, in epoch order, with the re-randomization
(``rand``) last; columns are the layers in forward order; the colour is the relative drop of
top-1 test accuracy, ``(top1 - acc) / top1``: 0 (pale) means the layer can be reset without harm,
1 means accuracy fell to zero. The scale is fixed to [0, 1] (extended below 0 when a reset helps)
so that heatmaps of different runs compare at a glance; the chance level is marked on the colour bar.
Reads this suite's ``reinit_<stem>.json`` and the reference tool's files, as ``schema.load`` gives them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import Normalize
from mpl_toolkits.axes_grid1 import make_axes_locatable

from plotting.common import run_title, subplots
from plotting.registry import MissingData, documents_of, register_figure
from schema.reference import reinit_layer_names
from schema.runs import Run

CMAP = "YlOrRd"
RAND_KEY = "rand"
MAX_ANNOTATED_COLUMNS = 40


@dataclass(frozen=True)
class HeatmapData:
    row_labels: list[str]
    layer_labels: list[str]
    relative_drop: np.ndarray  # rows x layers; NaN where unknown
    top1: float  # the trained network's top-1 (%)
    chance: float | None  # top-1 of guessing (%)


def reinit_heatmap_data(document: dict) -> HeatmapData:
    """Rows, columns and relative drops of a reinit document (ours or the reference's)."""
    top1 = document.get("top1_test")
    accuracies = document.get("init_from_epoch") or {}
    if top1 is None or not accuracies:
        raise MissingData("reinit results lack top1_test or init_from_epoch")
    keys = _row_order(document, accuracies)
    if not keys:
        raise MissingData("reinit results list no rows; read them with schema.load")
    width = max(len(accuracies[key]) for key in keys)
    grid = np.full((len(keys), width), np.nan)
    for row, key in enumerate(keys):
        values = np.array([np.nan if v is None else v for v in accuracies[key]], dtype=float)
        grid[row, : len(values)] = (top1 - values) / top1 if top1 else np.nan
    names = reinit_layer_names(document)
    names += [f"layer {i}" for i in range(len(names), width)]  # rows of a reference file may differ in width
    return HeatmapData([_row_label(document, key) for key in keys], list(names), grid, float(top1),
                       document.get("chance_top1"))


def _row_order(document: dict, accuracies: dict) -> list[str]:
    """The rows as the document lists them (``schema.load`` gives the reference's files rows too:
    by epoch, rand last)."""
    return [row["key"] for row in document.get("rows") or [] if row["key"] in accuracies]


def _row_label(document: dict, key: str) -> str:
    row = next((r for r in document.get("rows") or [] if r.get("key") == key), {})
    if key == RAND_KEY or row.get("source") == RAND_KEY:
        repeats = len(row.get("repeats") or []) or 1
        return "random init" if repeats == 1 else f"random init (mean of {repeats})"
    epoch = row.get("epoch", key)
    try:
        epoch = int(epoch)
    except (TypeError, ValueError):
        return str(key)
    if epoch == 0:
        return "epoch 0 (init)"
    return f"epoch {epoch} (trained)" if epoch == document.get("epoch") else f"epoch {epoch}"


def reinit_heatmap(document: dict):
    """The figure: annotated heatmap of relative drops with a colour bar and a descriptive title."""
    data = reinit_heatmap_data(document)
    rows, columns = data.relative_drop.shape
    fig, ax = subplots(figsize=(max(5.5, 2.6 + 0.62 * columns), max(2.8, 1.9 + 0.42 * rows)))
    finite = data.relative_drop[np.isfinite(data.relative_drop)]
    norm = Normalize(vmin=min(0.0, float(finite.min())) if finite.size else 0.0, vmax=1.0)
    image = ax.imshow(data.relative_drop, cmap=CMAP, norm=norm, aspect="auto", interpolation="nearest")
    if columns <= MAX_ANNOTATED_COLUMNS:
        _annotate(ax, data.relative_drop, norm, fontsize=9 if columns <= 14 else 7)
    ax.set_xticks(range(columns), data.layer_labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(rows), data.row_labels)
    ax.set_xlabel("layer reset (forward order)")
    ax.set_ylabel("parameters taken from")
    ax.set_xticks(np.arange(-0.5, columns), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    _colorbar(fig, ax, image, data)
    ax.set_title(_title(document, data), fontsize=11)
    fig.tight_layout()
    return fig


def _annotate(ax, grid: np.ndarray, norm: Normalize, *, fontsize: int) -> None:
    for (row, column), value in np.ndenumerate(grid):
        if math.isfinite(value):
            dark = norm(value) > 0.55
            text = f"{value:.2f}".replace("-0.00", "0.00").replace("-", "\N{MINUS SIGN}")
            ax.text(column, row, text, ha="center", va="center", fontsize=fontsize, color="white" if dark else "black")


def _colorbar(fig, ax, image, data: HeatmapData) -> None:
    """A colour bar as tall as the heatmap, with the chance level marked."""
    cax = make_axes_locatable(ax).append_axes("right", size=0.22, pad=0.5)
    bar = fig.colorbar(image, cax=cax)
    bar.set_label("relative drop of top-1: (top1 \N{MINUS SIGN} acc) / top1")
    if data.chance is not None and data.top1 > 0:
        at_chance = (data.top1 - data.chance) / data.top1
        if 0 <= at_chance <= 1:
            cax.axhline(at_chance, color="black", linewidth=1.5, linestyle="--")
            cax.text(-0.3, at_chance, "chance", transform=cax.get_yaxis_transform(), ha="right", va="center",
                     fontsize=8)


def _title(document: dict, data: HeatmapData) -> str:
    head = run_title("re-initialization robustness", arch=document.get("arch", "?"),
                     dataset=document.get("dataset", "?"), seed=document.get("seed"), epoch=document.get("epoch"))
    detail = f"trained top-1 {data.top1:.1f}%"
    if data.chance is not None:
        detail += f" (chance {data.chance:.3g}%)"
    if document.get("with_bn"):
        detail += "; BatchNorm after each layer reset too"
    return f"{head}\n{detail}"


def reinit_figures_of(document: dict) -> list:
    """``[("reinit_<stem>", heatmap)]`` of one reinit document (reinit_layers.py draws it at once)."""
    stem = document.get("stem") or f"epoch{document.get('epoch')}"
    return [(f"reinit_{stem}", reinit_heatmap(document))]


@register_figure("reinit")
def reinit_figures(run: Run, options: dict) -> list:
    """One heatmap per reinit result file of the run."""
    return [figure for document in documents_of(run, "reinit") for figure in reinit_figures_of(document)]
