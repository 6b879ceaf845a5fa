"""The tidy table of a family: one row per (run, epoch, layer, metric), for notebooks and reports.

    import schema
    table = schema.load_table(["sweeps/noise_study"])     # a pandas DataFrame
    table[table.metric == "mass"].groupby(["level", "layer"]).value.mean()

Columns: ``run`` (its folder), ``level`` (the values of the factors that vary, e.g. ``noise=0.5``;
seeds are replicates), ``dataset``, ``arch``, ``noise`` (-1: pixel shuffle), ``seed``, one column per
varying factor, ``epoch``, ``layer`` (the module name, ``net`` for the whole network, empty for
run-level values), ``metric``, ``value``. Metrics: projections ``mean``, ``std``, ``mass``,
``sign_test_p``, ``ks_p``, ``l2_dist``, ``cosine``; reinit ``reinit_drop`` (relative top-1 drop of the
swept snapshot with the layer reset to epoch 0) and ``reinit_drop_rand``; DSE ``dse``, ``dsmi_y``,
``cse`` (of the default representation); training ``train_loss``, ``test_top1``/``test_loss`` (or
``val_top1``/``val_loss`` with a validation split, and the final ``test_top1``); spectra ``alpha``,
``stable_rank``, ``entropy``, ``rand_distance``; HSIC ``hsic_x``, ``hsic_y``.
"""
from __future__ import annotations

import math

from schema.runs import PIXEL_SHUFFLE, Run, find_runs, relative
from utils.errors import UserError

PROJECTION_METRICS = ("mean", "std", "mass", "sign_test_p", "ks_p", "l2_dist", "cosine")
SPECTRA_METRICS = ("alpha", "stable_rank", "entropy", "rand_distance")
HSIC_METRICS = ("hsic_x", "hsic_y")
DSE_METRICS = ("dse", "dsmi_y", "cse")
IDENTITY = ("dataset", "arch", "noise", "seed")


# -- levels ----------------------------------------------------------------------------------------
def varying(runs: list[Run]) -> list[str]:
    """The factors whose values differ between runs (seeds are replicates, not factors)."""
    factors = [run.factors() for run in runs]
    keys = dict.fromkeys(key for found in factors for key in found)
    return [key for key in keys if len({repr(found.get(key)) for found in factors}) > 1]


def value_label(key: str, value) -> str:
    if key == "noise" and value is not None and float(value) == PIXEL_SHUFFLE:
        return "pixel shuffle"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def level_of(run: Run, by: list[str]) -> str:
    """``noise=0.5`` (``,``-joined over ``by``); ``all`` when nothing varies."""
    factors = run.factors()
    return ",".join(f"{key}={value_label(key, factors.get(key))}" for key in by) or "all"


# -- rows --------------------------------------------------------------------------------------------
def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _layered(documents: list[dict], metrics, summary: dict | None) -> list[tuple]:
    """``(epoch, layer, metric, value)`` of per-snapshot documents with ``layers`` (and ``net``), or of
    their summary when the run has no per-snapshot documents."""
    rows = []
    for document in documents:
        if document.get("epoch") is None:
            continue
        for layer in document.get("layers") or []:
            rows += [(document["epoch"], layer["name"], m, layer[m]) for m in metrics if _finite(layer.get(m))]
        net = document.get("net") or {}
        rows += [(document["epoch"], "net", m, net[m]) for m in metrics if _finite(net.get(m))]
    if rows or not summary:
        return rows
    for index, layer in enumerate(summary.get("layers") or []):
        for metric in metrics:
            values = (summary.get("metrics") or {}).get(metric) or []
            rows += [(epoch, layer["name"], metric, v) for epoch, v in zip(summary["epochs"], values[index]) if _finite(v)]
    for metric in metrics:
        values = (summary.get("net") or {}).get(metric) or []
        rows += [(epoch, "net", metric, v) for epoch, v in zip(summary["epochs"], values) if _finite(v)]
    return rows


def reinit_layer_names(document: dict) -> list[str]:
    """A reinit document's columns: its module names, or ``layer <i>`` (the reference's files have none)."""
    rows = document.get("rows") or []
    return document.get("layer_names") or ([f"layer {i}" for i in range(len(rows[0]["top1"]))] if rows else [])


def _reinit(documents: list[dict]) -> list[tuple]:
    rows = []
    for document in documents:
        names = reinit_layer_names(document)
        for row in document.get("rows") or []:
            metric = "reinit_drop_rand" if row["source"] == "rand" else "reinit_drop" if row.get("epoch") == 0 else None
            if metric:
                rows += [(document.get("epoch"), name, metric, v) for name, v in zip(names, row["relative_drop"])
                         if _finite(v)]
    return rows


def _dse(documents: list[dict], summary: dict | None) -> list[tuple]:
    default = [d for d in documents if d.get("epoch") is not None and (d.get("settings") or {}).get("layer") is None]
    rows = [(d["epoch"], "", m, d[m]) for d in default for m in DSE_METRICS if _finite(d.get(m))]
    if rows or not summary:
        return rows
    return [(epoch, "", m, v) for m in DSE_METRICS for epoch, v in zip(summary["epochs"], summary.get(m) or [])
            if _finite(v)]


def _training(record: dict | None) -> list[tuple]:
    if record is None:
        return []
    rows = []
    for row in record.get("epochs") or []:
        split = "test" if row.get("eval_split", "val") == "test" else "val"
        for name, metric in (("train_loss", "train_loss"), ("val_top1", f"{split}_top1"), ("val_loss", f"{split}_loss"),
                             ("train_top1", "train_top1")):
            if _finite(row.get(name)):
                rows.append((row["epoch"], "", metric, row[name]))
    test = record.get("test") or {}
    last = (record.get("status") or {}).get("last_epoch")
    if _finite(test.get("top1")) and last is not None:
        rows += [(last, "", "test_top1", test["top1"]), (last, "", "test_loss", test.get("loss"))]
    return [row for row in rows if _finite(row[3])]


def _summary(run: Run, kind: str, **match) -> dict | None:
    return next((d for d in run.documents.get(kind) or [] if all(d.get(k) == v for k, v in match.items())), None)


def run_rows(run: Run) -> list[tuple]:
    """``(epoch, layer, metric, value)`` of every result of ``run``."""
    spectra = [d for d in run.of_kind("spectra") if d.get("conv_mode", "slices") == "slices"]
    return (_training(run.record)
            + _layered(run.of_kind("projections"), PROJECTION_METRICS, _summary(run, "projections_summary"))
            + _reinit(run.of_kind("reinit"))
            + _dse(run.of_kind("dse"), next((d for d in run.documents.get("dse_summary") or []
                                             if (d.get("settings") or {}).get("layer") is None), None))
            + _layered(spectra, SPECTRA_METRICS, _summary(run, "spectra_summary", conv_mode="slices"))
            + _layered(run.of_kind("hsic"), HSIC_METRICS, _summary(run, "hsic_summary")))


# -- the table -----------------------------------------------------------------------------------------
def table_of(runs: list[Run], by: list[str] | None = None):
    """The tidy DataFrame of ``runs``, grouped ``by`` these factors [default: the varying ones]."""
    import pandas as pd

    factors = varying(runs)
    by = factors if by is None else by
    extra = [key for key in dict.fromkeys([*by, *factors]) if key not in IDENTITY]
    records = []
    for run in runs:
        design = run.factors()
        head = (relative(run.folder), level_of(run, by), run.dataset, run.arch, design.get("noise", 0.0), run.seed,
                *(design.get(key) for key in extra))
        records += [(*head, *row) for row in run_rows(run)]
    columns = ["run", "level", *IDENTITY, *extra, "epoch", "layer", "metric", "value"]
    table = pd.DataFrame.from_records(records, columns=columns)
    return table.astype({"epoch": "Int64", "value": "float64"})


def load_table(folders, *, by: list[str] | None = None):
    """The tidy table (a pandas DataFrame, see the module docstring) of every run under ``folders``
    (sweep folders, run or results folders, in any mix)."""
    runs, _ = find_runs(folders)
    if not runs:
        raise UserError(f"no runs found in {', '.join(map(str, folders))} (no run.json or result JSON); "
                        "give sweep, run or results folders")
    return table_of(runs, by)
