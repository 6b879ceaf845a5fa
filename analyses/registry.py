"""The one list of analyses, and what each declares about itself.

Each analysis module ends with a :class:`Declaration`: the CLI that runs it, the result kinds it
writes, its rows in the tidy table, its sweep step and done-check, its snapshot analyzer in
train.py, and how a family comparison names it. ``sweeper/``, ``schema/``, ``comparison/`` and
``training/`` read these declarations and keep no list of their own.

This module imports no analysis at import time (``schema`` reads it, and the analyses import
``schema``): the modules of :data:`MODULES` are imported the first time :func:`declarations` is
called. A test or a plug-in adds one with :func:`register` (``replace=True`` to swap a declaration of
the same name); a declaration whose name, or one of whose metric or measure names, another already
takes is refused.

For the ranking of measures (``comparison/measures.py``) each declaration says, in ``measures``,
what each of its measures means: :class:`Measure` ``(direction, aggregation, source)``.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The analyses, in the order they run in a sweep and appear in tables: one line each.
MODULES = ("analyses.projections", "analyses.reinit", "analyses.dse", "analyses.spectra", "analyses.hsic",
           "analyses.norms", "analyses.margin", "analyses.sharpness", "analyses.optimization")


WEIGHTS, TRAINING, HELD_OUT = "weights", "training", "held-out"  # what a Measure reads (Measure.reads)


@dataclass(frozen=True)
class Measure:
    """One measure of a model, for the ranking: what it is and which way the literature expects it to go."""

    direction: int  # +1: higher means better generalization in the literature, -1: worse, 0: no agreed sign
    aggregation: str  # how one number per model is made (over layers, over training samples, ...)
    source: str  # where the definition and the expected sign come from
    # "function": the field defines it on the function the network computes, so it is computed on the
    # folded network (batch norms folded into the layer that ran before them) and a function-preserving
    # rescaling leaves it unchanged; "parametrization": it reads the weights as they are stored.
    defined_on: str = "parametrization"
    # Jiang et al.'s dataset-size scaling, applied when models trained on different training-set sizes m
    # are compared: "sqrt" (sqrt(x / m)), "log" ((x - log m) / 2, for measures given as logarithms), or
    # None (not a complexity bound: compared as it is).
    size_scaling: str | None = None
    # What it reads beside the weights: "weights" (nothing), "training" (the training split, or the run's
    # training losses), "held-out" (images the model was not trained on: the validation split, else the test
    # split). The field's protocol lets a generalization measure read the training data only (Jiang et al.
    # 2020, sec. 2); a held-out measure that tracks test accuracy partly measures it, and the ranking says so.
    reads: str = "weights"  # WEIGHTS, TRAINING or HELD_OUT


@dataclass(frozen=True)
class ZooUse:
    """How the zoo (``analyses/zoo.py``) runs an analysis on a pretrained model."""

    build: Callable  # (zoo probe settings or None) -> the Analysis
    default: bool = False  # in the zoo's analyses unless --analyses says otherwise
    probe: bool = False  # reads the zoo's probe dataset (--probe-dataset), recorded in its arguments
    optional: bool = False  # a model it cannot measure (a UserError) gets a note, not a failure


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
    # (context, names) -> the arguments of one command of its CLI that runs the analyses ``names`` (this
    # one among them): a sweep runs the analyses of one CLI that declare it in one command, which loads
    # the snapshot, the model and the data once
    sweep_together: Callable[[SweepContext, tuple[str, ...]], list[str]] | None = None
    sweep_default: bool = False  # in a sweep's analyses unless --analyses says otherwise
    # (run's results folder, arch, snapshot epochs) -> whether its results cover the run
    done: Callable[[Path, str, list[int]], bool] | None = None
    # train.py's snapshot analyzer: its flags, and the analyzer the parsed arguments turn on (or None)
    train_arguments: Callable | None = None
    train_analyzer: Callable | None = None
    compared_as: str | None = None  # what a family comparison reads it for ("bias", "criticality", ...)
    # For the ranking of measures: metric (a table metric, or a measure comparison derives) -> Measure
    measures: Mapping[str, Measure] = field(default_factory=dict)
    zoo: ZooUse | None = None  # how the zoo runs it (None: not on zoo models)
    # One of the field's trusted measures (rank_measures marks its measures as baselines), not one of the seeds'
    baseline: bool = False
    # A CLI shared by several analyses (compute_measures.py) builds it: (settings, missing) -> Analysis,
    # ``missing`` naming the data the model lacks (None: it has them)
    make: Callable | None = None

    @property
    def in_sweeps(self) -> bool:
        return self.sweep_arguments is not None or bool(self.sweep_train_flags)


_registered: dict[str, Declaration] = {}
_loaded = False


def names_of(declaration: Declaration) -> set[str]:
    """The metric and measure names ``declaration`` takes."""
    return {*declaration.metrics, *declaration.measures}


def register(declaration: Declaration, *, replace: bool = False) -> Declaration:
    """Add ``declaration``; returns it. A name another declaration has, or a metric or measure name
    another takes, is refused (a ``ValueError``: a programming error, not a user's), unless
    ``replace`` swaps the declaration of the same name."""
    if declaration.name in _registered and not replace:
        raise ValueError(f"analysis {declaration.name!r} is already registered; unregister it first, or pass "
                         "replace=True")
    for other in _registered.values():
        if other.name == declaration.name:
            continue
        taken = sorted(names_of(declaration) & names_of(other))
        if taken:
            raise ValueError(f"analysis {declaration.name!r} declares {', '.join(taken)}, which analysis "
                             f"{other.name!r} already declares; rename the metric(s)")
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
        try:
            for declaration in [*found, *extras.values()]:
                register(declaration)
        except ValueError:
            _registered.clear()
            _registered.update(extras)
            raise
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


def measures() -> dict[str, tuple[str, Measure]]:
    """``{measure: (analysis, Measure)}`` of every declaration: the ranking's expected signs and aggregations."""
    return {name: (found.name, measure) for found in declarations() for name, measure in found.measures.items()}


def zoo_analyses() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(choices, defaults)`` of the zoo's analyses (``rank_measures.py --analyses``)."""
    found = [found for found in declarations() if found.zoo is not None]
    return tuple(f.name for f in found), tuple(f.name for f in found if f.zoo.default)


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
