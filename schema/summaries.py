"""The per-run summaries: one builder for every analysis.

A summary gathers one analysis's documents of a run, in epoch order, into parallel lists:
``epochs``, ``files``, ``snapshots``, per-epoch ``values`` (e.g. ``dse``), a layers x epochs matrix
per layer metric (``metrics[<metric>][layer][epoch]``, ``null`` where a snapshot lacks the layer
or the value) and per-epoch whole-network values (``net[<metric>][epoch]``). What each analysis
keeps is its :class:`SummarySpec`.
"""
from __future__ import annotations

from dataclasses import dataclass

from schema.documents import header


@dataclass(frozen=True)
class SummarySpec:
    """What a summary of one analysis keeps (see the module docstring).

    ``constants``: keys copied from the first document; ``(key, subkeys)`` copies part of a dict.
    """

    kind: str
    constants: tuple = ()
    values: tuple[str, ...] = ()
    layer_fields: tuple[str, ...] = ()
    layer_metrics: tuple[str, ...] = ()
    net_metrics: tuple[str, ...] = ()


def layers_by_epoch(per_epoch: list[list[dict]], fields, metrics) -> tuple[list[dict], dict[str, list[list]]]:
    """From each epoch's list of layer records: the layers (``fields`` of each, in order of first
    appearance) and ``{metric: [[value per epoch] per layer]}``, ``None`` where an epoch lacks the
    layer or the value."""
    described: dict[str, dict] = {}
    for layers in per_epoch:
        for layer in layers:
            described.setdefault(layer["name"], {key: layer.get(key) for key in fields})
    by_name = [{layer["name"]: layer for layer in layers} for layers in per_epoch]
    matrices = {metric: [[epoch.get(name, {}).get(metric) for epoch in by_name] for name in described]
                for metric in metrics}
    return list(described.values()), matrices


def _constant(first: dict, entry) -> tuple[str, object]:
    if isinstance(entry, tuple):
        key, subkeys = entry
        return key, {sub: (first.get(key) or {}).get(sub) for sub in subkeys}
    return entry, first.get(entry)


def summarize(spec: SummarySpec, documents: list[dict], files: list[str], *, args: dict) -> dict:
    """The summary of ``documents`` (one run's, in epoch order; ``files`` their file names)."""
    first = documents[0]
    summary = header(spec.kind, arch=first["arch"], dataset=first["dataset"], seed=first["seed"], epoch=None,
                     args=args)
    summary |= dict(_constant(first, entry) for entry in spec.constants)
    summary |= {
        "epochs": [document["epoch"] for document in documents],
        "files": list(files),
        "snapshots": [document.get("snapshot") for document in documents],
    }
    summary |= {key: [document.get(key) for document in documents] for key in spec.values}
    if spec.layer_fields:
        layers, matrices = layers_by_epoch([document["layers"] for document in documents], spec.layer_fields,
                                           spec.layer_metrics)
        summary |= {"layers": layers, "metrics": matrices}
    if spec.net_metrics:
        summary["net"] = {metric: [(document.get("net") or {}).get(metric) for document in documents]
                          for metric in spec.net_metrics}
    return summary
