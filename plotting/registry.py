"""Figure builders by name. Each takes the collected results of one run and returns figures.

A builder raises :class:`MissingData` when the results lack what it needs; ``plot_results.py``
then prints a one-line notice and goes on with the next figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

FigureBuilder = Callable[["RunResults", dict], list]  # -> [(file stem, matplotlib Figure)]
_FIGURES: dict[str, FigureBuilder] = {}


class MissingData(Exception):
    """The results do not hold what a figure needs."""


@dataclass
class RunResults:
    """Every result document of one run (same arch, dataset, seed, data options), by kind."""

    key: tuple
    documents: dict[str, list[dict]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[dict]:
        """Documents of ``kind`` sorted by epoch; :class:`MissingData` when there are none."""
        docs = self.documents.get(kind, [])
        if not docs:
            raise MissingData(f"no '{kind}' results")
        return sorted(docs, key=lambda d: (_epoch(d), str(d.get("_path", ""))))

    def first(self, kind: str) -> dict:
        return self.of_kind(kind)[0]


def _epoch(document: dict) -> float:
    try:
        return float(document.get("epoch"))
    except (TypeError, ValueError):
        return float("inf")


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
