"""The on-disk layout shared by every CLI: ``<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``."""
from __future__ import annotations

import os
from pathlib import Path

from utils.errors import UserError


def dataset_folder(dataset: str, subsample_classes: int = 0) -> str:
    """``<dataset>`` or, with a class subset, ``<dataset>_<k>`` (the reference's name, ours too)."""
    return f"{dataset}_{subsample_classes}" if subsample_classes > 0 else dataset


def run_subdir(*, dataset: str, arch: str, seed: int, subsample_classes: int = 0, noise: float = 0.0) -> str:
    """Relative folder of one run, as in the reference: ``noise_<r>`` with ``r = int(noise * 100)``, so
    0.29 is ``noise_28`` there and here (float truncation, kept so old folders match)."""
    parts = [dataset_folder(dataset, subsample_classes)]
    if noise < 0:
        parts.append("pixel_shuffle")
    elif noise > 0:
        parts.append(f"noise_{int(noise * 100)}")
    parts += [arch, str(seed)]
    return os.path.join(*parts)


def log_path(log: str, out_dir: str | os.PathLike) -> Path:
    """Where a CLI's ``--log`` goes: a bare file name lands in ``out_dir``, a path is taken as is."""
    path = Path(log) if os.path.dirname(log) else Path(out_dir) / log
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the log folder {path.parent}: {err.strerror}; "
                        "check --log and --results") from err
    return path


def check_output_folder(path: str | os.PathLike, flag: str) -> None:
    """Fail before any work when ``path`` cannot become a folder to write into.

    The nearest existing ancestor must be a writable folder. (Root passes ``os.access`` on
    read-only folders; its writes then fail later, still as one clear line from the writer.)
    """
    target = Path(path)
    existing = next((p for p in (target, *target.absolute().parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise UserError(f"{flag} {target} cannot be a folder: {existing} is a file; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {target} is not writable (no write permission on {existing}); "
                        "choose another folder")


def check_log_folder(log: str | None) -> None:
    """``--log`` naming a folder: that folder must be writable too (a bare name goes to the results)."""
    if log and os.path.dirname(log):
        check_output_folder(os.path.dirname(log), "--log")


def results_dir(root: str | os.PathLike, *, dataset: str, arch: str, seed, subsample_classes: int = 0,
                noise: float = 0.0) -> Path:
    """``<root>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/`` (seed ``none`` if unknown)."""
    seed_part = seed if seed is not None else "none"
    return Path(root) / run_subdir(dataset=dataset, arch=arch, seed=seed_part,
                                   subsample_classes=subsample_classes, noise=noise)


# The names of a snapshot root whose sibling folders hold results and plots: train.py's default
# (``runs``) and the reference tool's (``models``).
SNAPSHOT_ROOTS = ("runs", "models")


def snapshot_root_index(parts: tuple[str, ...]) -> int | None:
    """The index in ``parts`` (a run folder's path parts) of its last snapshot root, or None."""
    found = [at for at, part in enumerate(parts) if part in SNAPSHOT_ROOTS]
    return found[-1] if found else None
