"""The one home of layer order: module names compared as people read them (``features.2`` before
``features.10``), and the forward order of a family's layers merged over runs.

    from schema.order import natural_key
    sorted(["features.10", "features.2", "classifier.1"], key=natural_key)
    # ['classifier.1', 'features.2', 'features.10']
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_DIGITS = re.compile(r"(\d+)")
RUN_LEVEL = ""  # the table's layer of run-level values (train.py's losses and accuracies)
WHOLE_NETWORK = "net"  # the table's layer of whole-network values


def natural_key(name: str) -> tuple:
    """A sort key that compares the digit runs of ``name`` as numbers: ``features.2`` < ``features.10``.

    ``re.split`` with a group alternates text and digits, always starting with text, so two keys
    compare text with text and numbers with numbers."""
    parts = _DIGITS.split(str(name))
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


def natural_sorted(names: Iterable[str]) -> list[str]:
    """``names`` in natural order (see :func:`natural_key`)."""
    return sorted(names, key=natural_key)


def forward_order(orders: Sequence[Sequence[str]]) -> list[str]:
    """One order of the layers of several runs, each run's layers given in forward order.

    A layer's place is its mean relative position (index / count) over the runs that have it, ties
    broken by :func:`natural_key`: runs of one architecture keep their forward order exactly, and a
    family that mixes depths interleaves their layers by depth (``features.2`` before ``features.10``
    wherever forward order does not say otherwise). The run-level layer ``""`` comes first and the
    whole network ``net`` last."""
    positions: dict[str, list[float]] = {}
    for order in orders:
        layers = [name for name in dict.fromkeys(order) if name not in (RUN_LEVEL, WHOLE_NETWORK)]
        for index, name in enumerate(layers):
            positions.setdefault(name, []).append(index / max(1, len(layers) - 1))
    ranked = sorted(positions, key=lambda name: (sum(positions[name]) / len(positions[name]), natural_key(name)))
    present = {name for order in orders for name in order}
    return [RUN_LEVEL] * (RUN_LEVEL in present) + ranked + [WHOLE_NETWORK] * (WHOLE_NETWORK in present)
