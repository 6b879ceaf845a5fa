"""Figure builders by name. Each takes one run (a :class:`schema.Run`, as compare_runs.py reads
them: run.json and the run's documents by kind) and returns figures.

A builder raises :class:`MissingData` when the results lack what it needs; ``plot_results.py``
then prints a one-line notice and goes on with the next figure.
"""
from __future__ import annotations

from collections.abc import Callable

from schema.runs import Run

FigureBuilder = Callable[[Run, dict], list]  # -> [(file stem, matplotlib Figure)]
_FIGURES: dict[str, FigureBuilder] = {}


class MissingData(Exception):
    """The results do not hold what a figure needs."""


def documents_of(run: Run, kind: str) -> list[dict]:
    """The run's documents of ``kind`` in epoch order; :class:`MissingData` when there are none."""
    found = run.record if kind == "run" else None
    if found is not None:
        return [found]
    found = run.of_kind(kind)
    if not found:
        raise MissingData(f"no '{kind}' results")
    return found


def register_figure(name: str) -> Callable[[FigureBuilder], FigureBuilder]:
    def decorator(builder: FigureBuilder) -> FigureBuilder:
        if name in _FIGURES:
            raise ValueError(f"figure {name!r} is already registered")
        _FIGURES[name] = builder
        return builder

    return decorator


def list_figures() -> list[str]:
    return list(_FIGURES)


def get_figure(name: str) -> FigureBuilder:
    return _FIGURES[name]
