"""Shared figure habits: a readable style, titles, and figures that need no backend.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot: no backend is selected, no
window can open and nothing global is left behind; the CLIs save them (``utils.fileio.atomic_savefig``).
"""
from __future__ import annotations

import contextlib

import matplotlib
from matplotlib.figure import Figure

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
