"""The one list of analyses, and what each declares about itself.

Each analysis module ends with a :class:`Declaration`: the CLI that runs it, the result kinds it
writes, its rows in the tidy table, its sweep step and done-check, its snapshot analyzer in
train.py, and how a family comparison names it. ``sweeper/``, ``schema/``, ``comparison/`` and
``training/`` read these declarations and keep no list of their own.

This module imports no analysis at import time (``schema`` reads it, and the analyses import
``schema``): the modules of :data:`MODULES` are imported the first time :func:`declarations` is
called. A test or a plug-in adds one with :func:`register`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The analyses, in the order they run in a sweep and appear in tables: one line each.
MODULES = ("analyses.projections", "analyses.reinit", "analyses.dse", "analyses.spectra", "analyses.hsic")


@dataclass(frozen=True)
class SweepContext:
    """What a sweep step's command is built from: the run's snapshot folder, the roots of its results
    and figures (the run's folders below them follow the standard layout), and the device flags."""

    run: str
    results: str
    plots: str
    device: tuple[str, ...] = ()


@dataclass(frozen=True)
class Declaration:
    """What the rest of the suite knows about one analysis."""

    name: str  # the registry name: --analyses choice, file prefix, TensorBoard section
    kinds: tuple[str, ...]  # the kinds of the documents it writes (summaries included)
    cli: str | None = None  # the script that runs it on existing snapshots
    # (run) -> [(epoch, layer, metric, value)]: its rows in the tidy table (schema.table)
    table_rows: Callable | None = None
    metrics: tuple[str, ...] = ()  # the metrics of those rows
    # A sweep runs it after training, with the arguments this returns (after ``python <cli>``) ...
    sweep_arguments: Callable[[SweepContext], list[str]] | None = None
    # ... or during training, with these train.py flags
    sweep_train_flags: tuple[str, ...] = ()
    sweep_default: bool = False  # in a sweep's analyses unless --analyses says otherwise
    # (run's results folder, arch, snapshot epochs) -> whether its results cover the run
    done: Callable[[Path, str, list[int]], bool] | None = None
    # train.py's snapshot analyzer: its flags, and the analyzer the parsed arguments turn on (or None)
    train_arguments: Callable | None = None
    train_analyzer: Callable | None = None
    compared_as: str | None = None  # what a family comparison reads it for ("bias", "criticality", ...)

    @property
    def in_sweeps(self) -> bool:
        return self.sweep_arguments is not None or bool(self.sweep_train_flags)


_registered: dict[str, Declaration] = {}
_loaded = False


def register(declaration: Declaration) -> Declaration:
    """Add ``declaration`` (replacing one of the same name); returns it."""
    _registered[declaration.name] = declaration
    return declaration


def unregister(name: str) -> None:
    _registered.pop(name, None)


def declarations() -> list[Declaration]:
    """Every analysis's declaration, in :data:`MODULES` order (registered extras last)."""
    global _loaded
    if not _loaded:
        found = [importlib.import_module(module).DECLARATION for module in MODULES]
        extras = dict(_registered)
        _registered.clear()
        for declaration in [*found, *extras.values()]:
            register(declaration)
        _loaded = True
    return list(_registered.values())


def declaration(name: str) -> Declaration:
    from utils.errors import UserError

    known = {found.name: found for found in declarations()}
    if name not in known:
        raise UserError(f"unknown analysis {name!r}; choose one of: {', '.join(known)}")
    return known[name]


def result_kinds() -> tuple[str, ...]:
    """Every kind of document the suite writes: train.py's ``run`` and each analysis's kinds."""
    return ("run", *(kind for found in declarations() for kind in found.kinds))


def sweep_analyses() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(choices, defaults)`` of ``sweep.py --analyses``."""
    found = [found for found in declarations() if found.in_sweeps]
    return tuple(f.name for f in found), tuple(f.name for f in found if f.sweep_default)


# -- helpers the declarations share -----------------------------------------------------------------
def summary_epochs(path: Path) -> list | None:
    """The epochs of a summary file, or None when it cannot be read."""
    from schema.documents import read_json
    from utils.errors import UserError

    try:
        document = read_json(path)
    except UserError:
        return None
    return document.get("epochs") if isinstance(document, dict) else None


def summary_covers(name: str) -> Callable[[Path, str, list[int]], bool]:
    """A done-check: ``<name>_summary.json`` holds exactly the run's snapshot epochs."""
    def done(results: Path, arch: str, epochs: list[int]) -> bool:
        return summary_epochs(Path(results) / f"{name}_summary.json") == epochs

    return done
