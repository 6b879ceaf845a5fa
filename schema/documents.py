"""The header every result file carries, and writing and reading the files.

Every file has ``schema_version``, ``kind``, ``arch``, ``dataset``, ``seed``, ``epoch``,
``tool_version`` and ``args``. Non-finite floats are written as ``null`` (JSON has no NaN). Files
are written atomically (temp file + ``os.replace``), so a reader never sees half a file.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from utils.errors import UserError
from utils.fileio import atomic_write_json
from utils.version import TOOL_VERSION

SCHEMA_VERSION = 1  # of every file we write: result documents, summaries and run.json


def header(kind: str, *, arch: str | None, dataset: str | None, seed, epoch: int | None, args: dict) -> dict:
    """The fields every result document starts with; ``args`` keeps its plain values only."""
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


def finite_or_none(value: Any) -> Any:
    """Replace NaN/inf floats (anywhere in nested lists/dicts) by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write(path: str | os.PathLike, document: dict) -> Path:
    """Write ``document`` as JSON, atomically, non-finite floats as ``null``."""
    return atomic_write_json(path, finite_or_none(document))


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON of ``path``, as it is on disk; a :class:`UserError` naming the file otherwise."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read result file {path}: {err}") from err
