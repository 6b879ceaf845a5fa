"""Shared figure habits: a readable style, titles, and figures that need no backend.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot: no backend is selected, no
window can open and nothing global is left behind; the CLIs save them (``utils.fileio.atomic_savefig``).
"""
from __future__ import annotations

import contextlib

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

from plotting.registry import MissingData

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
}


@contextlib.contextmanager
def style():
    """The suite's figure style; enter it around building *and* saving figures (dpi, tight bbox)."""
    with matplotlib.rc_context(STYLE):
        yield


def subplots(rows: int = 1, columns: int = 1, **kwargs):
    """``(Figure, axes)`` like ``pyplot.subplots``, without pyplot."""
    figure = Figure(figsize=kwargs.pop("figsize", None), layout=kwargs.pop("layout", None))
    return figure, figure.subplots(rows, columns, **kwargs)


def run_title(kind: str, *, arch, dataset, seed, epoch=None) -> str:
    """``<kind>: <arch> on <dataset>, seed <s>[, epoch <e>]``."""
    title = f"{kind}: {arch} on {dataset}, seed {seed}"
    return title if epoch is None else f"{title}, epoch {epoch}"


def chosen_epochs(epochs: list[int], wanted, what: str) -> list[int]:
    """The ``--epochs`` a per-epoch figure draws that have ``what`` results; without ``--epochs``, the
    first, a middle and the last of ``epochs`` (sorted)."""
    if wanted:
        chosen = [e for e in wanted if e in epochs]
        if not chosen:
            raise MissingData(f"none of the epochs {wanted} has {what} results (have {epochs})")
        return chosen
    return sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]})


# -- labels that do not overlap ------------------------------------------------------------------------
def renderer_of(figure):
    """An Agg renderer for ``figure`` (attaching an Agg canvas: extents need one; nothing global changes)."""
    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    return figure.canvas.get_renderer()


# offsets (points) tried in turn for a point's label: beside, above, below, then farther out
_OFFSETS = [(dx * scale, dy * scale) for scale in (1, 2.2, 3.6)
            for dx, dy in ((5, 3), (5, -9), (-5, 3), (-5, -9), (0, 7), (0, -13), (7, -3), (-7, -3))]


def _letters(text, renderer):
    """The extent of a text's letters (an annotation's without its leader line)."""
    if isinstance(text, Annotation):
        text.update_positions(renderer)
    return Text.get_window_extent(text, renderer)


def _overlaps(box, boxes) -> bool:
    return any(box.overlaps(other) for other in boxes)


def place_labels(ax, xs, ys, labels, *, fontsize: float = 8, marker_size: float = 40) -> list[str]:
    """Label the points ``(xs[i], ys[i])`` with ``labels[i]`` where no label overlaps another label, a
    point or the axes' edge; call after the axes' limits and layout are final (``tight_layout``).

    Returns the labels that found no free place (left out; the caller's legend or colours name them)."""
    figure = ax.figure
    renderer = renderer_of(figure)
    radius = (marker_size ** 0.5) / 2 * figure.dpi / 72 + 1
    centres = ax.transData.transform(list(zip(xs, ys))) if len(labels) else []
    taken = [Bbox.from_extents(cx - radius, cy - radius, cx + radius, cy + radius) for cx, cy in centres]
    taken += [_letters(text, renderer) for text in ax.texts if text.get_visible() and text.get_text()]
    frame = ax.get_window_extent(renderer)
    unplaced = []
    for x, y, label in zip(xs, ys, labels):
        for dx, dy in _OFFSETS:
            text = ax.annotate(str(label), (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                               ha="left" if dx > 0 else "right" if dx < 0 else "center", alpha=0.9,
                               arrowprops=dict(arrowstyle="-", color="grey", linewidth=0.5, shrinkA=0, shrinkB=3)
                               if abs(dx) > 8 or abs(dy) > 14 else None)
            text.set_in_layout(False)
            box = _letters(text, renderer)  # the letters only, not the leader line
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if inside and not _overlaps(box, taken):
                taken.append(box)
                break
            text.remove()
        else:
            unplaced.append(str(label))
    return unplaced


def legend_beside(ax, **kwargs):
    """A legend to the right of ``ax``, outside it, so that it covers no data."""
    kwargs.setdefault("fontsize", 8)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def legend_below(figure, handles, *, columns: int = 3, **kwargs):
    """A figure legend under the axes (``tight_layout`` afterwards leaves room for it), covering no data."""
    kwargs.setdefault("fontsize", 8)
    return figure.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=columns,
                         frameon=False, **kwargs)
