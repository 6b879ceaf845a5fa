"""The reference tool's result files (magamba/hp_arrangements), normalized to our schema.

Its projection files are ``{"<stage>": {"<block>": {"projections", "mean", "mass"[, "l2_dist",
"l_inf_dist"]}}, "net": {...}, "arch", "dataset"[, "seed"], "epoch"}`` with the seed and epoch as
strings; its reinit files ``{"init_from_epoch": {"<epoch>"|"rand": [top-1 per conv layer]},
"top1_test", "top5_test", "arch", "dataset"[, "seed"], "epoch"}``. Normalized documents keep every
key of the original and add what ours carry: integer ``epoch``/``seed``, a flat ``layers`` list
named ``stage <s>.<b>`` with the statistics our projection records hold (computed from the
projections; the reference's own values win where it has them), ``rows`` for reinit, and
``"format": "reference"``.
"""
from __future__ import annotations

from schema.documents import SCHEMA_VERSION

RAND_KEY = "rand"


def _as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _stage_keys(document: dict) -> list[str]:
    return sorted((key for key in document if key.isdigit() and isinstance(document[key], dict)), key=int)


def is_reference_projections(document: dict) -> bool:
    """Stage/block nesting of layer records, or a ``net`` record with projections."""
    if isinstance(document.get("net"), dict) and "projections" in document["net"]:
        return True
    return any(isinstance(block, dict) and ("projections" in block or "mass" in block)
               for key in _stage_keys(document) for block in document[key].values())


def _completed(record: dict) -> dict:
    """``record`` with the statistics of our layer records, computed from its projections."""
    projections = record.get("projections")
    if not projections:
        return dict(record)
    import torch

    from metrics.projections import projection_summary

    return projection_summary(torch.tensor(projections, dtype=torch.float64)) | record


def _base(document: dict, kind: str) -> dict:
    return dict(document) | {"schema_version": SCHEMA_VERSION, "kind": kind, "format": "reference",
                             "epoch": _as_int(document.get("epoch")), "seed": _as_int(document.get("seed"))}


def normalize_projections(document: dict) -> dict:
    normalized = _base(document, "projections")
    layers = []
    for stage in _stage_keys(document):
        for block in sorted(document[stage], key=int):
            record = _completed(document[stage][block])
            normalized[stage] = dict(normalized[stage]) | {block: record}
            layers.append({"name": f"stage {stage}.{block}", "kind": "conv", "stage": int(stage),
                           "block": int(block), "index": len(layers)} | record)
    normalized["layers"] = layers
    if isinstance(document.get("net"), dict):
        normalized["net"] = _completed(document["net"]) | {"n_layers": len(layers)}
    return normalized


def _row_order(key: str):
    if key == RAND_KEY:
        return (2, 0, key)
    epoch = _as_int(key)
    return (0, epoch, key) if epoch is not None else (1, 0, key)


def normalize_reinit(document: dict) -> dict:
    normalized = _base(document, "reinit")
    top1 = document.get("top1_test")
    rows = []
    for key in sorted(document.get("init_from_epoch") or {}, key=_row_order):
        accuracies = document["init_from_epoch"][key]
        drops = [None if top1 is None or a is None else top1 - a for a in accuracies]
        rows.append({"key": key, "source": RAND_KEY if key == RAND_KEY else "snapshot",
                     "epoch": None if key == RAND_KEY else _as_int(key), "snapshot": None, "seed": None,
                     "top1": accuracies, "drop": drops,
                     "relative_drop": [d / top1 if d is not None and top1 else None for d in drops]})
    normalized["rows"] = rows
    return normalized
