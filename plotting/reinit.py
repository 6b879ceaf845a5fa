"""The re-initialization heatmap of Zhang, Bengio and Singer (2019), from a reinit result document.

Rows are the checkpoints the parameters come from, in epoch order, with the re-randomization
(``rand``) last; columns are the layers in forward order; the colour is the relative drop of
top-1 test accuracy, ``(top1 - acc) / top1``: 0 (pale) means the layer can be reset without harm,
1 means accuracy fell to zero, and a negative drop (blue) means the reset *helped*. The scale is
diverging and centred at 0: from the lowest drop (at most -0.1, so that a reset that helps always
shows) to 1, so that heatmaps of different runs compare at a glance; the chance level is marked on
the colour bar. A model whose own top-1 is not above chance is named in the title: its drops describe
an untrained model.
Reads this suite's ``reinit_<stem>.json`` and the reference tool's files, as ``schema.load`` gives them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import Normalize, TwoSlopeNorm
from mpl_toolkits.axes_grid1 import make_axes_locatable

from plotting.common import run_title, subplots
from plotting.registry import MissingData, documents_of, register_figure
from schema.chance import chance_of
from schema.reference import reinit_layer_names
from schema.runs import Run

CMAP = "RdBu_r"  # diverging: red = the reset costs accuracy, blue = it helps, white = no change
LOWEST_SHOWN = -0.1  # the scale reaches at least this far below 0
RAND_KEY = "rand"
MAX_ANNOTATED_COLUMNS = 40
MAX_WIDTH_INCHES = 13.0  # 1950 px at the saved 150 dpi


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
    cell = min(0.62, (MAX_WIDTH_INCHES - 2.6) / columns)  # many layers: narrower cells, at most ~2000 px
    fig, ax = subplots(figsize=(max(5.5, 2.6 + cell * columns), max(2.8, 1.9 + 0.42 * rows)))
    norm = drop_norm(data.relative_drop)
    image = ax.imshow(data.relative_drop, cmap=CMAP, norm=norm, aspect="auto", interpolation="nearest")
    if columns <= MAX_ANNOTATED_COLUMNS and cell >= 0.4:  # a number per cell only where it fits
        _annotate(ax, data.relative_drop, norm, fontsize=9 if columns <= 14 else 7)
    every = max(1, math.ceil(0.16 / cell))  # one layer name per 0.16 in: rotated names do not collide
    ax.set_xticks(range(0, columns, every), data.layer_labels[::every], rotation=45, ha="right",
                  rotation_mode="anchor", fontsize=9 if every == 1 else 7)
    ax.set_yticks(range(rows), data.row_labels)
    ax.set_xlabel("layer reset (forward order)")
    ax.set_ylabel("parameters taken from")
    ax.set_xticks(np.arange(-0.5, columns), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    _colorbar(fig, ax, image, data)
    fig.suptitle(_title(document, data), fontsize=11)
    fig.tight_layout()
    return fig


def drop_norm(drops: np.ndarray) -> TwoSlopeNorm:
    """The diverging colour scale of relative drops: centred at 0, from the lowest drop (at most
    ``LOWEST_SHOWN``) to 1 (or the highest drop, if a drop exceeds 1)."""
    finite = drops[np.isfinite(drops)]
    low = min(LOWEST_SHOWN, float(finite.min())) if finite.size else LOWEST_SHOWN
    high = max(1.0, float(finite.max())) if finite.size else 1.0
    return TwoSlopeNorm(vcenter=0.0, vmin=low, vmax=high)


def drop_ticks(norm: TwoSlopeNorm) -> list[float]:
    """Colour-bar ticks of a drop scale: its lowest value, 0, and quarters up to its highest."""
    return [norm.vmin, *np.arange(0.0, norm.vmax + 1e-9, 0.25 if norm.vmax <= 1.5 else 0.5)]


def text_colour(norm: Normalize, value: float) -> str:
    """White on the dark ends of a diverging scale, black in its pale middle."""
    return "white" if abs(norm(value) - 0.5) > 0.3 else "black"


def _annotate(ax, grid: np.ndarray, norm: Normalize, *, fontsize: int) -> None:
    for (row, column), value in np.ndenumerate(grid):
        if math.isfinite(value):
            text = f"{value:.2f}".replace("-0.00", "0.00").replace("-", "\N{MINUS SIGN}")
            ax.text(column, row, text, ha="center", va="center", fontsize=fontsize, color=text_colour(norm, value))


def _colorbar(fig, ax, image, data: HeatmapData) -> None:
    """A colour bar as tall as the heatmap, with the chance level marked."""
    cax = make_axes_locatable(ax).append_axes("right", size=0.22, pad=0.5)
    bar = fig.colorbar(image, cax=cax)
    bar.set_ticks(drop_ticks(image.norm))
    bar.set_label("relative drop of top-1: (top1 \N{MINUS SIGN} acc) / top1\n< 0: the reset helps")
    if data.chance is not None and data.top1 > 0:
        at_chance = (data.top1 - data.chance) / data.top1
        if image.norm.vmin <= at_chance <= image.norm.vmax:
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
    verdict = chance_of(document)
    if verdict is not None and not verdict.above_chance:
        detail = (f"MODEL AT CHANCE: trained top-1 {data.top1:.1f}% vs {verdict.chance:.3g}% by guessing "
                  f"(p = {verdict.p_value:.2g});\nthese drops describe an untrained model, not critical layers")
    return f"{head}\n{detail}"


def reinit_figures_of(document: dict) -> list:
    """``[("reinit_<stem>", heatmap)]`` of one reinit document (reinit_layers.py draws it at once)."""
    stem = document.get("stem") or f"epoch{document.get('epoch')}"
    return [(f"reinit_{stem}", reinit_heatmap(document))]


@register_figure("reinit")
def reinit_figures(run: Run, options: dict) -> list:
    """One heatmap per reinit result file of the run."""
    return [figure for document in documents_of(run, "reinit") for figure in reinit_figures_of(document)]
