"""Result JSON: the one module that owns the header every result file carries, and its I/O.

Every file has ``schema_version``, ``kind``, ``arch``, ``dataset``, ``seed``, ``epoch``,
``tool_version`` and ``args``. Non-finite floats are written as ``null`` (JSON has no NaN).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.fileio import atomic_write_json
from utils.paths import run_subdir
from utils.version import TOOL_VERSION

SCHEMA_VERSION = 1


def result_header(kind: str, *, arch: str, dataset: str, seed, epoch: int | None, args: dict) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "arch": arch,
        "dataset": dataset,
        "seed": seed,
        "epoch": epoch,
        "tool_version": TOOL_VERSION,
        "args": {k: v for k, v in args.items() if _is_plain(v)},
    }


def _is_plain(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


def results_dir(root: str | os.PathLike, *, dataset: str, arch: str, seed, subsample_classes: int = 0,
                noise: float = 0.0) -> Path:
    """``<root>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/`` (seed ``none`` if unknown)."""
    seed_part = seed if seed is not None else "none"
    return Path(root) / run_subdir(dataset=dataset, arch=arch, seed=seed_part,
                                   subsample_classes=subsample_classes, noise=noise)


def finite_or_none(value: Any) -> Any:
    """Replace NaN/inf floats (anywhere in nested lists/dicts) by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_result(path: str | os.PathLike, data: dict) -> Path:
    return atomic_write_json(path, finite_or_none(data))


def read_result(path: str | os.PathLike) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read result file {path}: {err}") from err


def layers_by_epoch(per_epoch: list[list[dict]], fields, metrics) -> tuple[list[dict], dict[str, list[list]]]:
    """What the summaries (layers x epochs heatmaps) hold, from each epoch's list of layer records:
    the layers (``fields`` of each, in order of first appearance) and ``{metric: [[value per epoch]
    per layer]}``, ``None`` where an epoch lacks the layer or the value."""
    described: dict[str, dict] = {}
    for layers in per_epoch:
        for layer in layers:
            described.setdefault(layer["name"], {key: layer.get(key) for key in fields})
    by_name = [{layer["name"]: layer for layer in layers} for layers in per_epoch]
    matrices = {metric: [[epoch.get(name, {}).get(metric) for epoch in by_name] for name in described]
                for metric in metrics}
    return list(described.values()), matrices


def matching_results(folder: str | os.PathLike, prefix: str, *, kind: str, **match) -> list[tuple[Path, dict]]:
    """``(path, document)`` of every readable ``<prefix>_*.json`` in ``folder`` of ``kind`` whose keys
    equal ``match``, in epoch order (documents without an epoch last): what a summary is built from.
    Unreadable files (a concurrent writer's temp files never match the pattern) are skipped."""
    rows = []
    for path in sorted(Path(folder).glob(f"{prefix}_*.json")):
        try:
            document = read_result(path)
        except UserError:
            continue
        if document.get("kind") == kind and all(document.get(key) == value for key, value in match.items()):
            rows.append((path, document))
    rows.sort(key=lambda row: (row[1].get("epoch") is None, row[1].get("epoch") or 0, row[0].name))
    return rows
