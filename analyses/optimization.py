"""How fast a run fitted its training set (Jiang et al. 2020, appendix C, "optimization-based
measures"), read from the run's ``run.json`` beside its snapshots.

- ``epochs_to_fit``: the first epoch whose training cross-entropy is at most ``--fit-loss`` (Jiang's
  0.1); ``steps_to_fit``: that many epochs in optimizer steps (epochs x ceil(training samples /
  batch size));
- ``steps_fit_to_converged``: optimizer steps from that epoch to the first at most 0.01 (Jiang's "0.1 to
  0.01", counted in steps as Jiang count it); ``epochs_fit_to_converged``: the same in epochs (not
  Jiang's: it ranks differently from the steps when the batch size or the training-set size varies).

Steps are counted at the resolution of an epoch (run.json records each epoch's loss, not each step's):
epochs x the steps per epoch, ceil(training samples / batch size) from run.json's data sizes and
arguments.

The training cross-entropy is each epoch's ``train_eval_loss`` (the whole training set in eval mode,
recorded when the run was trained with a stopping criterion or ``--train-acc``); without it the epoch
rows' ``train_loss`` (the mean over the epoch's batches, while training) stands in, and the
document says so. A model without run.json (a zoo model, a plain weight file) gets one line.
"""
from __future__ import annotations

import math
from pathlib import Path

from analyses.field import (
    CLI,
    FieldMeasure,
    FieldSettings,
    latest_covered,
    run_level_rows,
    sweep_arguments,
    sweep_together,
)
from analyses.norms import JIANG
from analyses.registry import TRAINING, Declaration, Measure, ZooUse
from analyses.subject import Subject

# What a function-preserving rescaling of the final weights leaves alone: the training losses' history
FROM_TRAINING = {"defined_on": "function", "size_scaling": None, "reads": TRAINING}
MEASURES = {
    "epochs_to_fit": Measure(-1, "first epoch whose training cross-entropy <= 0.1 (run.json)",
                             f"ours: {JIANG}, sec. C.7 count steps (steps_to_fit)", **FROM_TRAINING),
    "steps_to_fit": Measure(-1, "epochs_to_fit x optimizer steps per epoch", f"{JIANG}, sec. C.7 (steps to "
                            "cross-entropy 0.1)", **FROM_TRAINING),
    "steps_fit_to_converged": Measure(-1, "optimizer steps from training cross-entropy 0.1 to 0.01 (epochs x steps "
                                      "per epoch)", f"{JIANG}, sec. C.7 (steps from 0.1 to 0.01)", **FROM_TRAINING),
    "epochs_fit_to_converged": Measure(-1, "epochs from training cross-entropy 0.1 to 0.01",
                                       f"ours: {JIANG}, sec. C.7 count steps (steps_fit_to_converged)", **FROM_TRAINING),
}
EVAL_LOSS, BATCH_LOSS = "train_eval_loss", "train_loss"


def first_epoch_below(rows: list[dict], key: str, threshold: float) -> int | None:
    """The first epoch (by row order) whose ``key`` is at most ``threshold``, or None."""
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and value <= threshold:
            return int(row["epoch"])
    return None


def steps_per_epoch(record: dict) -> int | None:
    """Optimizer steps per epoch: ceil(training samples / batch size), when run.json knows both."""
    sizes = ((record.get("data") or {}).get("sizes") or {})
    train, batch = sizes.get("train"), (record.get("args") or {}).get("batch_size")
    return math.ceil(train / batch) if isinstance(train, int) and isinstance(batch, int) and batch > 0 else None


def fitting_speed(record: dict, *, fit_loss: float, converged_loss: float) -> dict:
    """``{"measures", "loss_key", "notes"}`` of a run.json record."""
    rows = [row for row in record.get("epochs") or [] if isinstance(row, dict) and row.get("epoch") is not None]
    key = EVAL_LOSS if any(EVAL_LOSS in row for row in rows) else BATCH_LOSS
    notes = [] if key == EVAL_LOSS else [
        "run.json has no train_eval_loss (the run had no stopping criterion nor --train-acc); using the epochs' "
        "train_loss, the mean over each epoch's batches while training"]
    fit, converged = first_epoch_below(rows, key, fit_loss), first_epoch_below(rows, key, converged_loss)
    steps = steps_per_epoch(record)
    if fit is None:
        notes.append(f"the run never reached training cross-entropy {fit_loss:g}: no optimization measures")
    between = converged - fit if fit is not None and converged is not None else None
    measures = {"epochs_to_fit": fit, "steps_to_fit": fit * steps if fit is not None and steps else None,
                "steps_fit_to_converged": between * steps if between is not None and steps else None,
                "epochs_fit_to_converged": between}
    return {"measures": measures, "loss_key": key, "fit_loss": fit_loss, "converged_loss": converged_loss,
            "steps_per_epoch": steps, "notes": notes}


class Optimization(FieldMeasure):
    name = kind = "optimization"
    metrics = tuple(MEASURES)

    def measure(self, subject: Subject) -> dict:
        from schema.documents import read_json
        from utils.errors import UserError

        path = Path(subject.path).parent / "run.json" if subject.path is not None else None
        if path is None or not path.is_file():
            return {"measures": {}, "run_json": None,
                    "notes": [f"{subject.stem}: no optimization measures: no run.json beside it (they read a "
                              "training run's per-epoch losses)"]}
        try:
            record = read_json(path)
        except UserError as err:
            return {"measures": {}, "run_json": str(path), "notes": [f"{subject.stem}: {err}"]}
        return fitting_speed(record, fit_loss=self.settings.fit_loss,
                             converged_loss=self.settings.converged_loss) | {"run_json": str(path)}


def make(settings: FieldSettings, missing: str | None = None) -> Optimization:
    return Optimization(settings)


DECLARATION = Declaration(
    "optimization", kinds=("optimization",), cli=CLI, table_rows=run_level_rows("optimization"),
    metrics=tuple(MEASURES), sweep_arguments=sweep_arguments("optimization"), done=latest_covered("optimization"),
    sweep_together=sweep_together,
    measures=MEASURES, zoo=ZooUse(build=lambda probe: Optimization()), make=make, baseline=True)
