"""The PGDL competition's reference data, its self-check and its score, for ``rank_measures.py --pgdl``.

- **Reference data**: ``reference_data/<task>/model_configs.json`` beside the task's
  ``input_data/<task>/`` (or ``--pgdl-reference DIR``, holding ``<task>/model_configs.json``): per model
  id, ``hparams`` (``{name: {current_value, possible_values}}``) and ``metrics`` (``train_acc``,
  ``test_acc``, fractions). Ids ``20`` and ``model_20`` both name the folder ``model_20``, as the
  scoring program reads them. A value is matched to its possible value by equality (``256.0`` is
  ``256``), as the scoring program's ``list.index`` does.
- **Targets**: ``train_top1`` and ``test_top1`` in %, ``gen_gap`` = train - test in points. The
  hyperparameters are the grid's axes (``<task>_<name>`` when several tasks are ranked together, so
  that no two tasks' grids mix), so the granulated coefficient and the sign statistics apply.
- **The score** (:func:`scores`): the competition's, per measure and task (``comparison/cmi.py``'s
  :func:`pgdl_score`), on the values the ``.predict`` files hold and on the gap as the scoring program
  computes it (``train_acc - test_acc``); a measure's overall score is the mean over the tasks times
  100. A grid that is incomplete or has duplicates is refused before any work (:func:`check_reference`).
- **Predictions**: ``<out>/predict/<measure>/<task>.predict``, ``{model folder: value}``, the value
  turned so that a larger one predicts a larger gap where the measure has an expected sign (the
  competition's convention), ready for its scoring program.
"""
from __future__ import annotations

import json
import keyword
import math
import re
from dataclasses import dataclass
from pathlib import Path

import schema
from comparison.cmi import check_grid, pgdl_score
from comparison.measures import Model, expected_sign
from utils.errors import UserError

OFF_POINTS = 1.0  # a model whose measured training top-1 is further off than this is named
NOT_ITS_AXIS = "n/a"  # a model's value of another task's hyperparameter (several tasks ranked together)
MEAN = "mean"


@dataclass(frozen=True)
class Reference:
    """One task's ``model_configs.json``: by model folder, its hyperparameters and metrics."""

    task: str
    path: Path
    hparams: dict[str, dict]  # model folder -> {name: value}
    metrics: dict[str, dict]  # model folder -> {"train_acc", "test_acc"} (fractions)
    possible: dict[str, list]

    @property
    def axes(self) -> list[str]:
        return list(self.possible)


def folder_of(model_id: str) -> str:
    return model_id if "model" in model_id else f"model_{model_id}"


def reference_file(task_dir: str | Path, reference: str | None = None) -> Path:
    """Where the task's ``model_configs.json`` is (see the module docstring); missing is a UserError."""
    task_dir = Path(task_dir)
    candidates = [Path(reference) / task_dir.name / "model_configs.json"] if reference else \
        [task_dir.parent.parent / "reference_data" / task_dir.name / "model_configs.json"]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        fix = "check --pgdl-reference" if reference else "give --pgdl-reference DIR (the competition's reference_data)"
        raise UserError(f"task {task_dir.name}: no model_configs.json at {candidates[0]}; {fix}")
    return found


def _canonical(value, possible: list):
    return next((choice for choice in possible if choice == value), value)


def read_reference(task_dir: str | Path, reference: str | None = None) -> Reference:
    """The task's reference data, checked: every model has the same hyperparameters and both metrics."""
    task = Path(task_dir).name
    path = reference_file(task_dir, reference)
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"task {task}: cannot read {path} ({err}); copy it again from the competition's data") from None
    if not isinstance(found, dict) or not found:
        raise UserError(f"task {task}: {path} holds no model; it is not a PGDL model_configs.json")
    hparams, metrics, possible = {}, {}, None
    for model_id, entry in found.items():
        try:
            given = entry["hparams"]
            possible = possible or {name: list(value["possible_values"]) for name, value in given.items()}
            hparams[folder_of(model_id)] = {name: _canonical(given[name]["current_value"], possible[name])
                                            for name in possible}
            metrics[folder_of(model_id)] = {key: float(entry["metrics"][key]) for key in ("train_acc", "test_acc")}
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"task {task}: model {model_id} of {path} lacks {err} (hparams with current_value and "
                            "possible_values, metrics train_acc and test_acc)") from None
    return Reference(task, path, hparams, metrics, possible)


def check_reference(reference: Reference, folders: list[str]) -> None:
    """The task's model folders are its reference's models, and they make a complete grid with one
    model per setting (as the scoring program requires); else a UserError."""
    import pandas as pd

    missing = sorted(set(reference.hparams) - set(folders))
    extra = sorted(set(folders) - set(reference.hparams))
    if missing or extra:
        which = f"{missing[0]} has no model folder" if missing else f"folder {extra[0]} is not in it"
        raise UserError(f"task {reference.task}: {reference.path} and the task's folders differ ({which}; "
                        f"{len(missing)} missing, {len(extra)} extra); use the competition's data as published")
    frame = pd.DataFrame.from_dict(reference.hparams, orient="index")
    check_grid(frame, reference.axes, reference.possible, what=f"task {reference.task}")


def axis_names(references: list[Reference]) -> dict[tuple[str, str], str]:
    """``{(task, hyperparameter): axis}``: the name, or ``<task>_<name>`` when several tasks are ranked,
    as a Python identifier (``hp.lr`` -> ``hp_lr``: the report reads the ranking's columns as attributes)."""
    several = len(references) > 1

    def identifier(text: str) -> str:
        text = re.sub(r"\W", "_", text)
        return text if text.isidentifier() and not keyword.iskeyword(text) else f"hp_{text}"

    return {(ref.task, name): identifier(f"{ref.task}_{name}" if several else name)
            for ref in references for name in ref.axes}


def targets(reference: Reference, folder: str) -> dict[str, float]:
    found = reference.metrics[folder]
    return {"train_top1": 100.0 * found["train_acc"], "test_top1": 100.0 * found["test_acc"],
            "gen_gap": 100.0 * (found["train_acc"] - found["test_acc"])}


def pgdl_models(references: list[Reference], results_of, *, test_size: int | None, notes: list[str]) -> list[Model]:
    """A :class:`comparison.measures.Model` per model with results (``results_of(task, folder)``: its
    results folder), named ``<task>/<model>``, its factors every task's axes (:data:`NOT_ITS_AXIS` for
    another task's); one note per model without results."""
    names, found = axis_names(references), []
    absent = {axis: NOT_ITS_AXIS for axis in names.values()}  # another task's axis: a value, not NaN
    for ref in references:
        for folder in ref.hparams:
            where = Path(results_of(ref.task, folder))
            runs = schema.find_runs([where])[0] if where.is_dir() else []
            if not runs:
                notes.append(f"task {ref.task}, model {folder} has no results; left out")
                continue
            name = f"{ref.task}/{folder}"
            found.append(Model(run=runs[0], name=name, source="pgdl", label=name, group=name,
                               factors=absent | {names[ref.task, hp]: v for hp, v in ref.hparams[folder].items()},
                               targets=targets(ref, folder), test_size=test_size))
    return found


CHECK_COLUMNS = ("task", "model", "reference_train_acc", "measured_train_acc")


def check_table(references: list[Reference], checks: dict[tuple[str, str], dict]):
    """``pgdl_check.csv`` (in %; a DataFrame) and a line per model more than :data:`OFF_POINTS` off.
    ``checks``: ``{(task, model folder): {"measured_train_acc", "samples", "of"}}``."""
    import pandas as pd

    rows, lines = [], []
    for ref in references:
        for folder in ref.hparams:
            check = checks.get((ref.task, folder))
            if check is None:
                continue
            reference, measured = 100.0 * ref.metrics[folder]["train_acc"], check["measured_train_acc"]
            rows.append((ref.task, folder, reference, measured))
            if abs(measured - reference) > OFF_POINTS:
                part = "" if check["samples"] == check["of"] else f" (its first {check['samples']} of {check['of']})"
                lines.append(f"task {ref.task}, model {folder}: top-1 {measured:.2f}% on the task's training "
                             f"data{part}, model_configs.json says {reference:.2f}%: the reader is wrong or the "
                             "shards differ from those it was measured on")
    return pd.DataFrame(rows, columns=list(CHECK_COLUMNS)), lines


def predictions(table, references: list[Reference]) -> dict[tuple[str, str], dict[str, float]]:
    """``{(measure, task): {model folder: value}}`` for every measure a task's models all have (turned:
    see the module docstring); a measure some models lack gives no prediction for that task."""
    found = {}
    for ref in references:
        mine = table[table.model.str.startswith(f"{ref.task}/")]
        for measure, rows in mine.groupby("measure", sort=True):
            values = {model.split("/", 1)[1]: float(value) for model, value in zip(rows.model, rows.value)}
            if set(values) != set(ref.hparams) or not all(math.isfinite(v) for v in values.values()):
                continue
            turn = -1.0 if expected_sign(measure, "gen_gap") < 0 else 1.0
            found[measure, ref.task] = {model: turn * value + 0.0 for model, value in values.items()}
    return found


def write_predictions(out: Path, found: dict[tuple[str, str], dict[str, float]]) -> list[Path]:
    from utils.fileio import atomic_write_json

    return [atomic_write_json(out / "predict" / measure / f"{task}.predict", values)
            for (measure, task), values in sorted(found.items())]


def scores(found: dict[tuple[str, str], dict[str, float]], references: list[Reference]):
    """``measure, task, score`` per measure and task, and a row per measure with task ``mean`` (the mean
    over the tasks times 100, as the competition reports it; NaN unless every task has a score)."""
    import pandas as pd

    by_task = {ref.task: ref for ref in references}
    rows = []
    for (measure, task), values in sorted(found.items()):
        ref = by_task[task]
        frame = pd.DataFrame([{**ref.hparams[m], "x": values[m],
                               "y": ref.metrics[m]["train_acc"] - ref.metrics[m]["test_acc"]} for m in values])
        rows.append({"measure": measure, "task": task, "score": pgdl_score(frame, ref.axes)})
    frame = pd.DataFrame(rows, columns=["measure", "task", "score"])
    means = []
    for measure, group in frame.groupby("measure", sort=True):
        complete = len(group) == len(references) and group.score.notna().all()
        means.append({"measure": measure, "task": MEAN, "score": 100.0 * group.score.mean() if complete else math.nan})
    return pd.concat([frame, pd.DataFrame(means, columns=frame.columns)], ignore_index=True)


def report_section(frame, ranking, references: list[Reference], *, check_lines: list[str]) -> str:
    """The report's section on the competition's score: a table of every measure's score per task and
    overall, the seeds' measures and the field's baselines marked, best first."""
    from comparison.ranking import BASELINE

    roles = dict(zip(ranking.measure, ranking.role)) if len(ranking) and "role" in ranking else {}
    tasks = [ref.task for ref in references]
    wide = frame.pivot_table(index="measure", columns="task", values="score", dropna=False)
    wide = wide.reindex(columns=[*tasks, MEAN]).sort_values(MEAN, ascending=False, na_position="last")
    described = "; ".join(f"{ref.task} ({len(ref.hparams)} models over {', '.join(ref.axes)})" for ref in references)
    lines = ["", "## The PGDL competition's score", "",
             f"Tasks: {described}. A measure's score on a task is the competition's: over every ordered pair of "
             "models and every ordered pair of hyperparameters, the mutual information between the sign of the "
             "measure's difference and the sign of the gap's, averaged over the cells of the pair's values of the "
             "two hyperparameters and divided by the mean entropy of the gap's sign; the minimum over the pairs of "
             "hyperparameters. 0: once two hyperparameters are known, the measure tells nothing more about which "
             "model generalizes worse; 1: it tells it always. Unlike Kendall's tau above, a measure that only "
             "follows one hyperparameter (width, say) scores near 0. The mean is over the tasks, times 100, as the "
             "competition reports it; its predictions are in predict/<measure>/<task>.predict.", "",
             "| measure | role | " + " | ".join(tasks) + " | mean x 100 |",
             "| --- | --- | " + " | ".join("---:" for _ in tasks) + " | ---: |"]
    for measure, row in wide.iterrows():
        role = "field's baseline" if roles.get(measure) == BASELINE else "seeds' measure"
        cells = [_cell(row.get(task)) for task in tasks] + [_cell(row.get(MEAN), digits=2)]
        lines.append(f"| `{measure}` | {role} | " + " | ".join(cells) + " |")
    if check_lines:
        lines += ["", "Self-check (each model's top-1 on the task's training data against model_configs.json):", ""]
        lines += [f"- {line}" for line in check_lines]
    return "\n".join(lines) + "\n"


def _cell(value, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
