"""Atomic file writes: write to a temp file in the target folder, then ``os.replace``.

A reader (or a run killed half-way) never sees a half-written file: the target is either the old
file or the complete new one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO

import torch

from utils.errors import UserError


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path`` and rename it over ``path``."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise UserError(f"cannot write {target}: {err.strerror}; choose a writable folder") from err
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except OSError as err:
        _remove_quietly(tmp_name)
        raise UserError(f"cannot write {target}: {err.strerror}; the previous file, if any, is intact") from err
    except BaseException:
        _remove_quietly(tmp_name)
        raise
    return target


def _remove_quietly(name: str) -> None:
    try:
        os.remove(name)
    except OSError:
        pass


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False).encode() + b"\n"
    return atomic_write(path, lambda handle: handle.write(text))


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` ``obj`` atomically."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))
