"""TensorBoard's HParams view of a family: one session per sweep member, its grid values against its results.

    tensorboard --logdir sweeps/noise_study        # the HParams tab: a table, parallel coordinates

Each member's TensorBoard run (``<sweep>/tensorboard/[<extra>/]<its run>/``, the folder train.py
logs to) gets one events file of its own (:data:`utils.hparams_events.EVENTS_FILE`), rewritten whole
and atomically each time: a re-run replaces it, so nothing appears twice and no extra run folder is
made. Every member is a session, failed, interrupted or pending ones too (a folder is made for a
member that never trained). sweep.py writes the view when its members end; compare_runs.py and
rank_measures.py rewrite it for the sweep folders among their inputs.

- **Hyperparameters** (discrete domains): each axis of the grid with its values, as in the member's
  name (``noise``, ``seed``, ``lr``, a boolean axis ``on``/``off``; numbers where every value is one);
  ``seed`` where it is no axis; ``status`` (the manifest's: done, failed, interrupted, pending,
  running, also shown as the session's TensorBoard status); ``stopping`` (run.json's outcome of the
  training criterion: converged, cap reached, plateau; else no criterion, unfinished, not started).
- **Metrics** of a member whose training finished, at its last snapshot (:func:`comparison.measures.last_snapshot`,
  as measures.csv has them): ``final/test_top1``, ``final/train_top1`` (the training set in eval
  mode where run.json has it), ``final/gen_gap``, ``final/loss_gap``, ``final/epochs``,
  ``final/criterion_met`` (1 or 0, runs with a criterion), ``final/train_loss``, ``final/test_loss``,
  and ``measure/<name>`` for every measure of measures.csv the member has. Each is shown by its name
  alone. A member whose training did not finish has ``final/epochs`` only (how far it got).
- **Sessions** are named after the member's TensorBoard run; their Trial ID in the tab (the session
  group) is ``<member> (<family>)``.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path

import schema
from comparison import outcomes
from comparison.family import FINISHED
from comparison.measures import KNOWN, last_snapshot
from schema.runs import relative
from utils.errors import UserError
from utils.hparams_events import Experiment, HParam, Metric, Session, write_events

logger = logging.getLogger(__name__)

MANIFEST = "sweep.json"  # sweep.py's manifest (sweeper.manifest)
LINE_WIDTH = 120  # a log line's (docs/contributing.md): a long command goes on a line of its own
FINAL = {  # in this order: the HParams tab shows the first five metrics unless one picks others
    "test_top1": "top-1 (%) on the test set at the last snapshot (the validation split's where run.json has "
                 "no test set there)",
    "train_top1": "training top-1 (%): the training set measured in eval mode where run.json has it "
                  "(train_eval_top1), else the last epoch's running top-1",
    "gen_gap": "generalization gap: train_top1 - test_top1 (points)",
    "loss_gap": "loss gap: test_loss - train_loss",
    "epochs": "epochs trained (run.json's last epoch)",
    "criterion_met": "1: the run reached its --stop-train-loss/--stop-train-acc criterion; 0: it stopped without "
                     "it (cap reached, plateau); none without a criterion",
    "train_loss": "training loss: the training set measured in eval mode where run.json has it "
                  "(train_eval_loss), else the last epoch's mean",
    "test_loss": "loss on the test set at the last snapshot",
}
TENSORBOARD_STATUS = {"done": "success", "failed": "failure", "running": "running"}  # others: unknown


def sweep_folders(inputs) -> list[Path]:
    """The sweep folders among ``inputs`` (folders holding a sweep.json), or below them."""
    found = []
    for item in inputs:
        path = Path(item)
        if (path / MANIFEST).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(manifest.parent for manifest in path.rglob(MANIFEST))
    return list({path.resolve(): path for path in found}.values())


def write_views(inputs, *, runs: list | None = None, measured=None) -> list[Path]:
    """The HParams view of every sweep folder among ``inputs`` (:func:`write_view`); a view that cannot
    be written is a warning, not an error: the caller's own outputs are what it was asked for."""
    written = []
    for folder in sweep_folders(inputs):
        try:
            written += write_view(folder, runs=runs, measured=measured)
        except UserError as err:
            logger.warning("no HParams view for %s: %s", folder, err)
    return written


def write_view(sweep_dir: str | Path, *, runs: list | None = None, measured=None) -> list[Path]:
    """Write the view of the sweep in ``sweep_dir``: one events file per member (see the module
    docstring). ``runs`` (``schema.Run``, e.g. a comparison's) saves reading the results again; a
    member's run missing from them is read from its run.json. ``measured`` (a measures.csv table,
    rank_measures.py's) gives the measures of the runs it has, instead of computing them."""
    sweep_dir = Path(sweep_dir)
    manifest = schema.read_json(sweep_dir / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("kind") != "sweep":
        raise UserError(f"{sweep_dir / MANIFEST} is not a sweep manifest")
    if runs is None:
        runs, _ = schema.find_runs([sweep_dir])
    by_folder = {Path(run.folder).resolve(): run for run in runs}
    given = _measured_by_folder(measured)
    entries = [entry for entry in manifest.get("members") or [] if (entry.get("folders") or {}).get("tensorboard")]
    family = str(manifest.get("name"))
    sessions = [member_session(entry, sweep_dir, by_folder, given, family=family) for entry in entries]
    _numbers_where_all_are(sessions)
    experiment = experiment_of(manifest, entries, sessions)
    written = [write_events(sweep_dir / entry["folders"]["tensorboard"], experiment, session)
               for entry, session in zip(entries, sessions)]
    head = f"TensorBoard's HParams view of {family} is up to date ({len(written)} members):"
    command = f"tensorboard --logdir {relative(sweep_dir)}"
    for line in [f"{head} {command}"] if len(head) + len(command) < LINE_WIDTH else [head, f"  {command}"]:
        logger.info("%s", line)
    return written


def _measured_by_folder(measured) -> dict[Path, dict[str, float]]:
    """``{run folder: {measure: value}}`` of a measures table (its ``model`` column names run folders)."""
    if measured is None or measured.empty:
        return {}
    rows = measured[measured.source == "run"] if "source" in measured else measured
    found: dict[Path, dict[str, float]] = {}
    for model, measure, value in zip(rows.model, rows.measure, rows.value):
        found.setdefault(Path(model).resolve(), {})[measure] = float(value)
    return found


def _seconds(stamp) -> float | None:
    """``2024-05-01T12:00:00`` (local time, as the manifest writes it) in seconds since the epoch."""
    try:
        return time.mktime(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def _record(run_dir: Path, run) -> dict | None:
    if run is not None:
        return run.record
    try:
        found = schema.read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else None
    except UserError:
        return None
    return found if isinstance(found, dict) else None


def _flag_value(flags: list[str], option: str) -> str | None:
    return flags[flags.index(option) + 1] if option in flags[:-1] else None


def stopping_of(record: dict | None) -> str:
    """How the training ended, in words (the ``stopping`` hyperparameter)."""
    if record is None:
        return "not started"
    outcome = (outcomes.stopping(record) or {}).get("outcome")
    state = (record.get("status") or {}).get("state")
    if outcome:
        return outcome
    if state == "plateau":
        return "plateau"
    return "no criterion" if state == "finished" and outcomes.stopping(record) is None else "unfinished"


def _epochs(record: dict) -> int | None:
    last = (record.get("status") or {}).get("last_epoch")
    if last is None:
        rows = [row.get("epoch") for row in record.get("epochs") or [] if isinstance(row, dict)]
        last = max((epoch for epoch in rows if isinstance(epoch, int)), default=None)
    return last


def member_metrics(record: dict | None, run, measured: Mapping[str, float] | None) -> tuple[dict[str, float], int]:
    """``({tag: value}, step)`` of one member (see the module docstring)."""
    if record is None:
        return {}, 0
    epochs = _epochs(record)
    found = {} if epochs is None else {"final/epochs": float(epochs)}
    finished = (record.get("status") or {}).get("state") in FINISHED
    if not finished or run is None:
        return found, epochs or 0
    epoch, values, measures = last_snapshot(run)
    found |= {f"final/{name}": float(values[name]) for name in FINAL if name in values}
    outcome = (outcomes.stopping(record) or {}).get("outcome")
    if outcome:
        found["final/criterion_met"] = 1.0 if outcome == "converged" else 0.0
    chosen = measured if measured is not None else measures
    found |= {f"measure/{name}": float(value) for name, value in sorted(chosen.items()) if schema.finite(value)}
    return found, epoch if epoch is not None else epochs or 0


def member_session(entry: dict, sweep_dir: Path, runs: dict, measured: dict, *, family: str) -> Session:
    """One member's session: its hyperparameters, status, times and metrics; its Trial ID in the tab is
    ``<member> (<family>)``, so that the members of two families in one TensorBoard stay apart."""
    run_dir = (sweep_dir / entry["folders"]["models"]).resolve()
    run = runs.get(run_dir)
    record = _record(run_dir, run)
    if run is None and ((record or {}).get("status") or {}).get("state") in FINISHED:  # not among ``runs``
        found, _ = schema.find_runs([run_dir, sweep_dir / entry["folders"]["results"]])
        run = next((candidate for candidate in found if Path(candidate.folder).resolve() == run_dir), None)
    values = {name: str(value) for name, value in (entry.get("values") or {}).items()}
    if "seed" not in values:
        seed = (record or {}).get("seed")
        seed = seed if seed is not None else _flag_value(list(entry.get("flags") or []), "--seed")
        if seed is not None:
            values["seed"] = str(seed)
    values |= {"status": str(entry.get("status")), "stopping": stopping_of(record)}
    metrics, step = member_metrics(record, run, measured.get(run_dir))
    status = TENSORBOARD_STATUS.get(entry.get("status"), "unknown")
    return Session(values, group=f"{entry['id']} ({family})", status=status, metrics=metrics, step=step,
                   started=_seconds(entry.get("started")), ended=_seconds(entry.get("finished")))


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _numbers_where_all_are(sessions: list[Session]) -> None:
    """A hyperparameter whose every value is a number (``--noise 0 -1``) is shown as numbers, on an
    axis of its own in the parallel coordinates; any other (``--augmentation off on``) as words."""
    names = {name for session in sessions for name in session.hparams}
    for name in names:
        having = [session for session in sessions if name in session.hparams]
        if all(_number(session.hparams[name]) is not None for session in having):
            for session in having:
                session.hparams[name] = _number(session.hparams[name])


def _domain(values: list) -> tuple:
    """Distinct values: numbers sorted, words in order of appearance."""
    distinct = tuple(dict.fromkeys(values))
    return tuple(sorted(distinct)) if all(isinstance(value, float) for value in distinct) else distinct


def experiment_of(manifest: dict, entries: list[dict], sessions: list[Session]) -> Experiment:
    """Every hyperparameter with the values its members take, every metric any member has."""
    names = list(dict.fromkeys(name for session in sessions for name in session.hparams))
    axes = {name for entry in entries for name in entry.get("values") or {}}
    hparams = [HParam(name, _domain([session.hparams[name] for session in sessions if name in session.hparams]),
                      "an axis of the grid" if name in axes else _HPARAM_TEXT.get(name, "")) for name in names]
    tags = list(dict.fromkeys(tag for session in sessions for tag in session.metrics))
    ordered = [f"final/{name}" for name in FINAL if f"final/{name}" in tags]
    ordered += sorted(tag for tag in tags if tag not in ordered)
    metrics = tuple(Metric(tag, tag.split("/", 1)[1], _metric_text(tag)) for tag in ordered)
    fixed = " ".join(" ".join([option, *tokens]) for option, tokens in
                     ((manifest.get("grids") or [{}])[-1].get("fixed") or {}).items())
    description = f"sweep {manifest.get('name')}: {len(entries)} members; fixed flags: {fixed or 'none'}"
    return Experiment(tuple(hparams), metrics, description, _seconds(manifest.get("created")))


_HPARAM_TEXT = {
    "seed": "the member's --seed",
    "status": "the member's status in sweep.json",
    "stopping": "how its training ended: converged, cap reached, plateau (run.json's stopping outcome), no "
                "criterion (it ran its --epochs), unfinished, not started",
}


def _metric_text(tag: str) -> str:
    group, name = tag.split("/", 1)
    if group == "final":
        return FINAL[name]
    known = KNOWN.get(name)
    how = f" ({known.aggregation})" if known is not None else ""
    return f"measures.csv's {name}{how}, at the last snapshot"
