"""The tidy table of a family: one row per (run, epoch, layer, metric), for notebooks and reports.

    import schema
    table = schema.load_table(["sweeps/noise_study"])     # a pandas DataFrame
    table[table.metric == "mass"].groupby(["level", "layer"]).value.mean()

Columns: ``run`` (its folder), ``level`` (the values of the factors that vary, e.g. ``noise=0.5``;
seeds are replicates), ``dataset``, ``arch``, ``noise`` (-1: pixel shuffle), ``seed``, one column per
varying factor, ``epoch``, ``layer`` (the module name, ``net`` for the whole network, empty for
run-level values; an ordered categorical in forward order, so that ``groupby``, ``pivot_table`` and
``sort_values`` put ``features.2`` before ``features.10``: ``schema.order``), ``metric``, ``value``. Metrics: train.py's ``train_loss``, ``test_top1``/``test_loss``
(or ``val_top1``/``val_loss`` with a validation split, and the final ``test_top1``), then each
analysis's rows, as its declaration (``analyses.registry``) says: ``python -c "import schema;
print(schema.table_metrics())"`` lists them.
"""
from __future__ import annotations

import math

from schema.order import forward_order
from schema.runs import PIXEL_SHUFFLE, Run, find_runs, relative
from utils.errors import UserError

IDENTITY = ("dataset", "arch", "noise", "seed")
TRAINING_METRICS = ("train_loss", "train_top1", "val_top1", "val_loss", "test_top1", "test_loss")


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
def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def layered_rows(documents: list[dict], metrics, summary: dict | None) -> list[tuple]:
    """``(epoch, layer, metric, value)`` of per-snapshot documents with ``layers`` (and ``net``), or of
    their summary when the run has no per-snapshot documents."""
    rows = []
    for document in documents:
        if document.get("epoch") is None:
            continue
        for layer in document.get("layers") or []:
            rows += [(document["epoch"], layer["name"], m, layer[m]) for m in metrics if finite(layer.get(m))]
        net = document.get("net") or {}
        rows += [(document["epoch"], "net", m, net[m]) for m in metrics if finite(net.get(m))]
    if rows or not summary:
        return rows
    for index, layer in enumerate(summary.get("layers") or []):
        for metric in metrics:
            values = (summary.get("metrics") or {}).get(metric) or []
            rows += [(epoch, layer["name"], metric, v) for epoch, v in zip(summary["epochs"], values[index]) if finite(v)]
    for metric in metrics:
        values = (summary.get("net") or {}).get(metric) or []
        rows += [(epoch, "net", metric, v) for epoch, v in zip(summary["epochs"], values) if finite(v)]
    return rows


def _training(record: dict | None) -> list[tuple]:
    if record is None:
        return []
    rows = []
    for row in record.get("epochs") or []:
        split = "test" if row.get("eval_split", "val") == "test" else "val"
        for name, metric in (("train_loss", "train_loss"), ("val_top1", f"{split}_top1"), ("val_loss", f"{split}_loss"),
                             ("train_top1", "train_top1")):
            if finite(row.get(name)):
                rows.append((row["epoch"], "", metric, row[name]))
    test = record.get("test") or {}
    last = (record.get("status") or {}).get("last_epoch")
    if finite(test.get("top1")) and last is not None:
        rows += [(last, "", "test_top1", test["top1"]), (last, "", "test_loss", test.get("loss"))]
    return [row for row in rows if finite(row[3])]


def table_metrics() -> dict[str, tuple[str, ...]]:
    """The metrics of the table, by analysis (``train`` for train.py's)."""
    from analyses.registry import declarations

    return {"train": TRAINING_METRICS} | {found.name: found.metrics for found in declarations() if found.table_rows}


def run_rows(run: Run) -> list[tuple]:
    """``(epoch, layer, metric, value)`` of every result of ``run``: train.py's, then each analysis's
    (its declaration's ``table_rows``)."""
    from analyses.registry import declarations

    rows = _training(run.record)
    for declared in declarations():
        if declared.table_rows is not None:
            rows += declared.table_rows(run)
    return rows


# -- the table -----------------------------------------------------------------------------------------
def table_of(runs: list[Run], by: list[str] | None = None):
    """The tidy DataFrame of ``runs``, grouped ``by`` these factors [default: the varying ones]."""
    import pandas as pd

    factors = varying(runs)
    by = factors if by is None else by
    extra = [key for key in dict.fromkeys([*by, *factors]) if key not in IDENTITY]
    records, orders = [], []
    for run in runs:
        design = run.factors()
        head = (relative(run.folder), level_of(run, by), run.dataset, run.arch, design.get("noise", 0.0), run.seed,
                *(design.get(key) for key in extra))
        rows = run_rows(run)
        records += [(*head, *row) for row in rows]
        orders.append([row[1] for row in rows])
    columns = ["run", "level", *IDENTITY, *extra, "epoch", "layer", "metric", "value"]
    table = pd.DataFrame.from_records(records, columns=columns)
    layer = pd.Categorical(table.layer, categories=forward_order(orders), ordered=True)
    return table.astype({"epoch": "Int64", "value": "float64"}).assign(layer=layer)


def load_table(folders, *, by: list[str] | None = None):
    """The tidy table (a pandas DataFrame, see the module docstring) of every run under ``folders``
    (sweep folders, run or results folders, in any mix)."""
    runs, _ = find_runs(folders)
    if not runs:
        raise UserError(f"no runs found in {', '.join(map(str, folders))} (no run.json or result JSON); "
                        "give sweep, run or results folders")
    return table_of(runs, by)
