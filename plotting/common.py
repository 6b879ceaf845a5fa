"""Shared figure habits: a readable style and atomic PNG + PDF output."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402

from plotting.registry import MissingData  # noqa: E402
from utils.fileio import atomic_write  # noqa: E402

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
    with plt.rc_context(STYLE):
        yield


def save_figure(fig, stem: str | os.PathLike, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write ``fig`` as ``<stem>.<format>`` for each format, atomically, and close it."""
    paths = []
    try:
        for fmt in formats:
            target = Path(f"{stem}.{fmt}")
            paths.append(atomic_write(target, lambda handle, fmt=fmt: fig.savefig(handle, format=fmt)))
    finally:
        plt.close(fig)
    return paths


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
