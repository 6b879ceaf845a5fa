"""The targets of the ranking of measures (what a measure should predict) and how a run's come from its
run.json: test top-1, the generalization gap and the loss gap at an epoch, the training set measured
in eval mode where run.json has it, and the test and training set sizes (Dziugaite's weights, Jiang's
dataset-size scaling). ``model`` arguments are :class:`comparison.measures.Model` objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import schema


@dataclass(frozen=True)
class Target:
    orientation: int  # +1: higher is better generalization, -1: lower is, 0: neither (no expected sign)
    label: str
    short: str  # for figure titles
    plural: str  # what its values are called in a sentence ("the gaps")
    recorded_by: str  # what records it, for a model that lacks it
    # The fraction one unit of it is of the test set (0.01: points of accuracy), for the Hoeffding weight of
    # Dziugaite's environments; None: no Hoeffding bound of that form (the loss is unbounded)
    scale: float | None = 0.01


_GAP_RECORD = ("train.py records the training accuracy it needs with --train-acc or a training criterion "
               "(--stop-train-loss, --stop-train-acc); zoo models have none")
TARGETS = {
    "test_top1": Target(+1, "test top-1 (%)", "test top-1 (%)", "test accuracies",
                        "run.json records it at the last epoch; a zoo model has it from torchvision or --accuracy"),
    "test_top5": Target(+1, "test top-5 (%)", "test top-5 (%)", "test top-5 accuracies",
                        "zoo models have it from torchvision's metadata, other models from an --accuracy file with "
                        "a top5 column"),
    "gen_gap": Target(-1, "generalization gap: train top-1 on the training labels - test top-1 (points)",
                      "generalization gap (points)", "gaps", _GAP_RECORD),
    "loss_gap": Target(-1, "loss gap: test loss - training loss (the whole training set in eval mode where "
                           "run.json has it, else the epoch's mean)", "loss gap", "loss gaps",
                       "run.json records the training and test losses of runs; zoo models have none", scale=None),
    "train_top1": Target(0, "train top-1 (%) (no expected sign)", "train top-1 (%)", "training accuracies",
                         "a PGDL task's model_configs.json records it", scale=None),  # no test-set noise to weigh
}
GAP_TARGETS = ("gen_gap", "loss_gap")


def run_level(rows: list[tuple], epoch) -> dict[str, float]:
    """The run-level values (layer ``""``) at ``epoch``, by metric (the last row wins)."""
    return {metric: value for at, layer, metric, value in rows if at == epoch and layer == "" and schema.finite(value)}


def epoch_row(record: dict | None, epoch) -> dict:
    """run.json's row of ``epoch`` (empty when there is none)."""
    rows = [row for row in (record or {}).get("epochs") or [] if isinstance(row, dict) and row.get("epoch") == epoch]
    return rows[-1] if rows else {}


def run_values(model, rows: list[tuple], epoch, notes: list[str]) -> dict[str, float]:
    """Test top-1 and loss (validation where run.json has no test set at ``epoch``, with a note), and
    training top-1 and loss at ``epoch`` (those the run has): the training set measured in eval mode
    (``train_eval_top1``, ``train_eval_loss``: runs with a stopping criterion or ``--train-acc``) where
    run.json has it, else the epoch's running values."""
    at = run_level(rows, epoch)
    top1, loss = at.get("test_top1"), at.get("test_loss")
    if top1 is None and at.get("val_top1") is not None:
        top1, loss = at.get("val_top1"), at.get("val_loss")
        notes.append(f"run {model.name}: no test top-1 at epoch {epoch} (run.json has the test set at its last "
                     "epoch only); using its validation top-1")
    train_top1, train_loss = at.get("train_top1"), at.get("train_loss")
    measured = epoch_row(model.run.record, epoch)  # the whole training set in eval mode, when recorded
    if schema.finite(measured.get("train_eval_top1")):
        train_top1 = measured["train_eval_top1"]
    if schema.finite(measured.get("train_eval_loss")):
        train_loss = measured["train_eval_loss"]
    found = {"test_top1": top1, "test_loss": loss, "train_top1": train_top1, "train_loss": train_loss}
    return {key: value for key, value in found.items() if value is not None}


def with_gaps(values: dict[str, float]) -> dict[str, float]:
    """``values`` (:func:`run_values`) with the generalization gap (training top-1 - test top-1) and
    the loss gap (test loss - training loss) where both sides are there."""
    gaps = {"gen_gap": ("train_top1", "test_top1"), "loss_gap": ("test_loss", "train_loss")}
    return values | {name: values[a] - values[b] for name, (a, b) in gaps.items() if a in values and b in values}


def run_targets(model, rows: list[tuple], epoch, notes: list[str]) -> dict[str, float]:
    """Test top-1, the generalization gap and the loss gap at ``epoch`` (see :func:`run_values`)."""
    values = with_gaps(run_values(model, rows, epoch, notes))
    return {key: values[key] for key in ("test_top1", "gen_gap", "loss_gap") if key in values}


def run_sizes(model, rows: list[tuple], epoch) -> tuple[int | None, int | None]:
    """``(test examples, training examples)`` of a run from run.json's ``data.sizes``: the test examples
    of the split its test targets come from (the validation split where :func:`run_targets` falls back
    to it)."""
    sizes = ((model.run.record or {}).get("data") or {}).get("sizes") or {}
    at = run_level(rows, epoch)
    split = "val" if at.get("test_top1") is None and at.get("val_top1") is not None else "test"
    test, train = sizes.get(split), sizes.get("train")
    return (int(test) if schema.finite(test) else None), (int(train) if schema.finite(train) else None)
