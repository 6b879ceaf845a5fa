"""Atomic file writes: write to a temp file in the target folder, then ``os.replace``.

A reader (or a run killed half-way) never sees a half-written file: the target is either the old
file or the complete new one. Temp files are named ``.<target name>.<random>.tmp``: hidden, and
with a suffix no reader looks for; a run killed mid-write leaves one behind, which
:func:`remove_stale_temp_files` clears (train.py does so in its run directory on start).
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from utils.errors import UserError

TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # mkstemp adds 8 random characters


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None], *,
                 temp_prefix: str | None = None) -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path`` and rename it over ``path``. The temp
    file is ``.<temp_prefix or the target's name>.<random>.tmp`` (a reader that matches names, as
    TensorBoard does ``tfevents``, may need another prefix)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{temp_prefix or target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
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


def is_temp_file(path: str | os.PathLike) -> bool:
    """True for the temp files :func:`atomic_write` writes before renaming them."""
    return bool(_TEMP_NAME.match(Path(path).name))


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files a killed writer left in ``folder``; only safe where no other process
    writes at the same time (a run directory has one writer: its train.py)."""
    removed = []
    for path in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if path.is_file() and is_temp_file(path):
            _remove_quietly(str(path))
            removed.append(path)
    return removed


def _remove_quietly(name: str) -> None:
    try:
        os.remove(name)
    except OSError:
        pass


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False).encode() + b"\n"
    return atomic_write(path, lambda handle: handle.write(text))


def atomic_savefig(figure, stem: str | os.PathLike, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write a matplotlib ``figure`` as ``<stem>.<format>`` for each format, atomically."""
    return [atomic_write(f"{stem}.{fmt}", lambda handle, fmt=fmt: figure.savefig(handle, format=fmt))
            for fmt in formats]


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` ``obj`` atomically."""
    import torch  # the result schema writes JSON through this module and needs no torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))
