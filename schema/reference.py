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
from utils.paths import dataset_folder

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


def reinit_layer_names(document: dict) -> list[str]:
    """A reinit document's columns: its module names, or ``layer <i>`` (the reference's files have none)."""
    rows = document.get("rows") or []
    return document.get("layer_names") or ([f"layer {i}" for i in range(len(rows[0]["top1"]))] if rows else [])


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


# -- writing files the reference's notebooks read unchanged (``--layout reference``) --------------------
REFERENCE_LAYER_KEYS = ("projections", "mass", "mean", "l2_dist", "l_inf_dist")
REFERENCE_NET_KEYS = ("projections", "mass", "mean")


def reference_label(stem: str, *, pretrained_is_minus_one: bool) -> int | None:
    """The epoch the reference writes for a snapshot's file stem, exactly as it computes it: a
    ``pretrained`` field is -1 (its projections only), an ``init`` field 0, else the last ``_``
    field plus one (so ``<arch>_<e>.tar`` is e + 1, and the final ``<arch>_<E>.pt`` E + 1 although it
    holds E epochs). None when the last field is not a number (where the reference would crash)."""
    fields = stem.split("_")
    if pretrained_is_minus_one and "pretrained" in fields:
        return -1
    if "init" in fields:
        return 0
    return int(fields[-1]) + 1 if fields[-1].isdigit() else None


def _metadata(document: dict, dataset: str, epoch) -> dict:
    metadata = {"arch": document["arch"], "dataset": dataset}
    if document.get("seed") is not None:
        metadata["seed"] = str(document["seed"])
    return metadata | {"epoch": str(epoch)}


def to_reference_projections(document: dict, *, stem: str, subsample_classes: int) -> dict:
    """Our projections document as the reference's compute_projections.py writes it: stage/block
    nesting with its keys, ``net``, then ``arch``, ``dataset`` (with ``_<k>``), ``seed`` and ``epoch``
    as strings, and nothing else."""
    out: dict = {}
    for layer in document["layers"]:
        record = {key: layer[key] for key in REFERENCE_LAYER_KEYS if key in layer}
        out.setdefault(str(layer["stage"]), {})[str(layer["block"])] = record
    out["net"] = {key: document["net"][key] for key in REFERENCE_NET_KEYS}
    label = reference_label(stem, pretrained_is_minus_one=True)
    epoch = label if label is not None else document["epoch"]
    return out | _metadata(document, dataset_folder(document["dataset"], subsample_classes), epoch)


def to_reference_reinit(document: dict, *, stem: str) -> dict:
    """Our reinit document as the reference's reinit_layers.py writes it: ``init_from_epoch`` keyed by
    the reference's label of each checkpoint's file name (in the order given, ``rand`` last), then
    ``arch``, ``dataset`` (plain), ``top1_test``, ``top5_test``, ``seed`` and ``epoch`` as strings."""
    from pathlib import Path

    table: dict = {}
    for row in document["rows"]:
        if row["source"] == RAND_KEY:
            key = RAND_KEY
        else:
            label = reference_label(Path(row["snapshot"]).stem, pretrained_is_minus_one=False)
            key = str(label if label is not None else row["epoch"])
        table[key] = row["top1"]
    label = reference_label(stem, pretrained_is_minus_one=False)
    epoch = label if label is not None else document["epoch"]
    metadata = _metadata(document, document["dataset"], epoch)
    out = {"init_from_epoch": table, "arch": metadata.pop("arch"), "dataset": metadata.pop("dataset"),
           "top1_test": document["top1_test"], "top5_test": document["top5_test"]}
    return out | metadata
