"""Reading result documents: :func:`load` returns any of them normalized to ours.

Ours say their ``kind``. The reference tool's are recognized by their keys (see
:mod:`schema.reference`) and normalized: an integer ``epoch`` and ``seed``, a flat ``layers``
list, the statistics our files carry (projections) and ``rows`` (reinit), with ``"format":
"reference"``; their own keys stay as they are, so code written for them keeps working.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from schema.documents import SCHEMA_VERSION, read_json
from schema.reference import is_reference_projections, normalize_projections, normalize_reinit
from utils.errors import UserError

logger = logging.getLogger(__name__)



def result_kinds() -> tuple[str, ...]:
    """Every kind of document we write: run.json's ``run`` and each analysis's (``analyses.registry``)."""
    from analyses.registry import result_kinds as declared

    return declared()


def identify(document) -> str | None:
    """The kind of a parsed JSON document, or None when it is not a result of ours or the reference's."""
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("kind"), str):
        return document["kind"]
    if "init_from_epoch" in document:
        return "reinit"
    if is_reference_projections(document):
        return "projections"
    return None


def normalize(document: dict) -> dict:
    """``document`` (parsed JSON) as our schema describes it; ours are returned unchanged.

    A document of a newer schema than this tool reads is a :class:`UserError`.
    """
    kind = identify(document)
    if kind is None:
        raise UserError("not a result document of this suite or of the reference tool (no 'kind')")
    version = document.get("schema_version", SCHEMA_VERSION) if "kind" in document else None
    if version is None:
        return normalize_reinit(document) if kind == "reinit" else normalize_projections(document)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise UserError(f"schema_version {version!r} is newer than this tool reads ({SCHEMA_VERSION}); "
                        "update the suite")
    return document


def load(path: str | os.PathLike) -> dict:
    """The document at ``path``, normalized (see :func:`normalize`); a :class:`UserError` naming the
    file when it cannot be read or is not a result document."""
    try:
        return normalize(read_json(path))
    except UserError as err:
        if str(err).startswith(f"cannot read result file {path}"):
            raise
        raise UserError(f"{path}: {err}") from err


def walk(inputs, *, what: str, unreadable: list[str]) -> Iterator[tuple[Path, Path, str, dict]]:
    """``(input root, path, kind, document)`` of every result document (normalized, with ``_path``)
    and sweep manifest (as written) under ``inputs``: folders, searched recursively, or JSON files.
    Other JSON is passed over; files that cannot be read go to ``unreadable``. A missing input is a
    :class:`UserError` that asks for ``what``."""
    kinds = result_kinds()
    for entry in inputs:
        root = Path(entry)
        if not root.exists():
            raise UserError(f"{root} does not exist; give {what}")
        for path in [root] if root.is_file() else sorted(root.rglob("*.json")):
            try:
                document = read_json(path)
                kind = identify(document)
                if kind in kinds:
                    document = normalize(document)
                elif kind != "sweep":
                    continue
            except UserError as err:
                unreadable.append(f"{path} ({err.__cause__ or err})")
                continue
            yield root, path, kind, document | {"_path": str(path)}


def collect(inputs: list[str | os.PathLike]) -> dict[str, dict[str, list[dict]]]:
    """Every result document under ``inputs`` (folders, searched recursively, or JSON files), grouped
    by run folder (relative to its input folder; ``"."`` for the folder itself or a file given) and
    by kind. Each document gets ``_path``. Unreadable files are skipped with a warning; no document
    at all is a :class:`UserError`."""
    runs: dict[str, dict[str, list[dict]]] = {}
    unreadable: list[str] = []
    for root, path, kind, document in walk(inputs, what="result folders or JSON files", unreadable=unreadable):
        if kind != "sweep":
            key = "." if root.is_file() else str(path.parent.relative_to(root))
            runs.setdefault(key, {}).setdefault(kind, []).append(document)
    if not runs:
        broken = f" ({len(unreadable)} unreadable: {unreadable[0]})" if unreadable else ""
        raise UserError(f"no result JSON found in {', '.join(map(str, inputs))}{broken}; run the analyses first")
    for problem in unreadable:
        logger.warning("skipping %s: not readable JSON", problem)
    return runs


def matching(folder: str | os.PathLike, prefix: str, *, kind: str, **match) -> list[tuple[Path, dict]]:
    """``(path, document)`` of every readable ``<prefix>_*.json`` in ``folder`` of ``kind`` whose keys
    equal ``match``, in epoch order (documents without an epoch last): what a folder's summary is
    built from. Unreadable files (a concurrent writer's temp files never match the pattern) are skipped."""
    rows = []
    for path in sorted(Path(folder).glob(f"{prefix}_*.json")):
        try:
            document = read_json(path)
        except UserError:
            continue
        if isinstance(document, dict) and document.get("kind") == kind and all(
                document.get(key) == value for key, value in match.items()):
            rows.append((path, document))
    rows.sort(key=lambda row: (row[1].get("epoch") is None, row[1].get("epoch") or 0, row[0].name))
    return rows

