"""One number per model and measure, and the model's targets: the input of the ranking of measures.

    from comparison.measures import load_measures
    table = load_measures(["sweeps/noise_study"])     # a pandas DataFrame, tidy
    table.pivot_table(index="model", columns="measure", values="value")

A model is a run's snapshot (its last, or ``epoch``) or a zoo model (``analyses/zoo.py``, whose
results the CLI reads the same way). Results are read through ``schema`` (``find_runs``, ``table_of``)
and each measure is aggregated over layers as its analysis's declaration says (:data:`KNOWN` reads
``Declaration.measures``); any other metric the results hold becomes a measure too: its value for
run-level metrics, its mean over layers otherwise, with no expected direction until its
declaration gives one.

Columns: ``model`` (the run's folder, or the zoo name), ``label`` (short, for figures), ``source``
(``run``, ``zoo``), ``group`` (the setting: models that differ only by seed share it), ``seed``,
``epoch``, one column per factor that varies, one per target (:data:`TARGETS`), ``measure``,
``analysis`` (which results it comes from) and ``value``.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import schema
from analyses.registry import Measure, SweepContext, declaration
from analyses.registry import measures as registry_measures
from comparison import outcomes
from comparison.targets import GAP_TARGETS, TARGETS, run_level, run_sizes, run_targets, run_values, with_gaps
from schema.runs import relative
from schema.table import level_of, varying
from schema.thresholds import SIGNIFICANCE, SPECTRA_CONV_MODE
from utils.errors import UserError
from utils.paths import snapshot_root_index


class _Declared(Mapping):
    """``{measure: analyses.registry.Measure}``: each measure's expected direction, aggregation and
    source, read from the declarations of the analyses (``Declaration.measures``) on each access, so
    that an analysis registered later (a plug-in, a test) is seen too. The ranking keeps no list."""

    def _found(self) -> dict:
        return {name: measure for name, (_, measure) in registry_measures().items()}

    def __getitem__(self, name: str):
        return self._found()[name]

    def __iter__(self):
        return iter(self._found())

    def __len__(self) -> int:
        return len(self._found())


KNOWN = _Declared()
Known = Measure  # what KNOWN's values are: direction, aggregation, source
# Per-layer statistics the measures above summarize (or that are no measure of a model by themselves).
RAW = {"mean", "std", "median", "mass", "sign_test_p", "ks_stat", "ks_p", "l2_dist", "l_inf_dist", "cosine",
       "init_mean", "init_mass", "xmin", "ks_distance", "spectral_norm", "n_filters", "n_layers"}
TRAINING = {"train_loss", "train_top1", "val_top1", "val_loss", "test_top1", "test_loss"}


def expected_sign(measure: str, target: str) -> int:
    """The sign the literature expects for the correlation of ``measure`` with ``target`` (0: none)."""
    known = KNOWN.get(measure)
    return 0 if known is None else known.direction * TARGETS[target].orientation


def reads(measure: str) -> str:
    """What ``measure`` reads beside the weights (``Measure.reads``: weights, training, held-out; "" unknown)."""
    known = KNOWN.get(measure)
    return "" if known is None else known.reads


@dataclass(kw_only=True)
class Model:
    """One model: its results (a ``schema.Run``), its name, its design and its targets."""

    run: object  # schema.Run
    name: str
    source: str = "run"  # run | zoo
    factors: dict = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    epoch: int | None = None  # the snapshot measured (None: the last)
    label: str = ""
    group: str = ""
    # The examples its test targets were measured on (the Hoeffding weight of Dziugaite's environments) and
    # those it was trained on (Jiang's dataset-size scaling); a run's come from run.json's data.sizes
    test_size: int | None = None
    train_size: int | None = None


# -- models of runs -------------------------------------------------------------------------------------
def finished_runs(inputs) -> tuple[list, list[str]]:
    """The runs under ``inputs`` that ended well, and one note per run or sweep member left out."""
    from comparison.family import finished

    runs, manifests = schema.find_runs(inputs)
    notes: list[str] = []
    kept = finished(runs, manifests, notes)
    if not kept:
        raise UserError(f"no finished runs found in {', '.join(map(str, inputs))} (no run.json or result JSON); "
                        "give sweep, run or results folders")
    return kept, notes


def run_models(runs: list, *, epoch: int | None = None) -> list[Model]:
    """A :class:`Model` per run: named by its folder, labelled by the factors that vary (and the seed)."""
    factors = varying(runs)
    seeds = len({str(run.seed) for run in runs}) > 1
    models = []
    for run in runs:
        design = run.factors()
        group = level_of(run, factors)
        label = group if not seeds else f"{group} s{run.seed}" if factors else f"seed {run.seed}"
        models.append(Model(run=run, name=relative(run.folder), source="run",
                            factors={key: design.get(key) for key in factors}, epoch=epoch, label=label, group=group))
    return models


def table_rows(run) -> list[tuple]:
    """``(epoch, layer, metric, value)`` of one run, from ``schema.table_of`` (epoch None where unknown)."""
    frame = schema.table_of([run])
    epochs = [None if math.isnan(e) else int(e) for e in frame.epoch.astype("float64").tolist()]
    return list(zip(epochs, frame.layer.tolist(), frame.metric.tolist(), frame.value.tolist()))


def _chosen_epoch(model: Model, rows: list[tuple]) -> int | None:
    if model.epoch is not None:
        return model.epoch
    snapshots = [s.get("epoch") for s in (model.run.record or {}).get("snapshots") or [] if isinstance(s, dict)]
    snapshots = [e for e in snapshots if e is not None]
    if snapshots:
        return max(snapshots)
    analysed = [epoch for epoch, _, metric, _ in rows if epoch is not None and metric not in TRAINING]
    return max(analysed) if analysed else None


# -- measures of one model -------------------------------------------------------------------------------
def _spectra_net(run, epoch) -> dict[str, float]:
    """The spectra ``net`` averages (WeightWatcher's summary) at ``epoch``: every finite one."""
    documents = [d for d in run.of_kind("spectra") if d.get("conv_mode", SPECTRA_CONV_MODE) == SPECTRA_CONV_MODE
                 and d.get("epoch") == epoch]
    if documents:
        net = documents[-1].get("net") or {}
    else:
        summary = run.summary("spectra_summary", conv_mode=SPECTRA_CONV_MODE) or {}
        epochs = summary.get("epochs") or []
        at = epochs.index(epoch) if epoch in epochs else None
        net = {} if at is None else {key: values[at] for key, values in (summary.get("net") or {}).items()
                                     if isinstance(values, list) and len(values) > at}
    return {key: float(value) for key, value in net.items() if key not in RAW and schema.finite(value)}


def _derived(layered: dict[str, list[float]]) -> dict[str, float]:
    """The projection measures: bias over layers, in the last layer, the biased fraction, distance from init."""
    found = {}
    mass = layered.get("mass") or []
    if mass:
        found["bias_mean"] = statistics.fmean(abs(m - 0.5) for m in mass)
        found["bias_last_conv"] = abs(mass[-1] - 0.5)
    sign = layered.get("sign_test_p") or []
    if sign:
        found["biased_fraction"] = sum(p < SIGNIFICANCE for p in sign) / len(sign)
    for metric, name in (("l2_dist", "dist_init"), ("cosine", "cosine_init")):
        if layered.get(metric):
            found[name] = statistics.fmean(layered[metric])
    return found


def model_measures(model: Model, rows: list[tuple], epoch, analyses_of: dict[str, str]) -> dict[str, tuple[str, float]]:
    """``{measure: (analysis, value)}`` of one model at ``epoch`` (see the module docstring)."""
    layered: dict[str, list[float]] = {}
    for at, layer, metric, value in rows:
        if at == epoch and layer not in ("", "net") and metric not in TRAINING and schema.finite(value):
            layered.setdefault(metric, []).append(value)
    found = {name: ("projections", value) for name, value in _derived(layered).items()}
    for metric, values in layered.items():
        if metric not in RAW:
            found[metric] = (analyses_of.get(metric, "?"), statistics.fmean(values))
    for metric, value in run_level(rows, epoch).items():
        if metric not in RAW and metric not in TRAINING:
            found[metric] = (analyses_of.get(metric, "?"), float(value))
    found |= {name: ("spectra", value) for name, value in _spectra_net(model.run, epoch).items()}
    return found


def last_snapshot(run) -> tuple[int | None, dict[str, float], dict[str, float]]:
    """``(epoch, values, measures)`` of a run's last snapshot, as :func:`measures_table` has them:
    :func:`run_values` with the gaps, and ``{measure: value}``."""
    model = Model(run=run, name=relative(run.folder))
    rows = table_rows(run)
    epoch = _chosen_epoch(model, rows)
    values = with_gaps(run_values(model, rows, epoch, []))
    found = model_measures(model, rows, epoch, _analyses_of())
    return epoch, values, {name: value for name, (_, value) in found.items()}


# -- the table -------------------------------------------------------------------------------------------
def missing_command(model: Model, analysis: str) -> str:
    """The command that computes ``analysis`` for a run (its results root mirrors its snapshot root, ``runs/`` or ``models/``)."""
    declared = declaration(analysis)
    folder = Path(model.name)
    parts = folder.parts
    at = snapshot_root_index(parts)
    if model.run.record is not None and at is not None:
        results, plots = Path(*parts[:at], "results"), Path(*parts[:at], "plots")
        run = str(folder)
    else:
        results = Path(((model.run.record or {}).get("args") or {}).get("results") or "results")
        plots, run = Path("plots"), str(folder) if model.run.record is not None else "<its snapshot folder>"
    if declared.sweep_arguments is not None:
        arguments = declared.sweep_arguments(SweepContext(run=run, results=str(results), plots=str(plots)))
    else:
        arguments = ["--load-from", run, "--results", str(results), *declared.sweep_train_flags]
    return f"python {declared.cli} {' '.join(arguments)}"


def _missing_notes(models: list[Model], found: list[dict], epochs: list) -> list[str]:
    notes = []
    present = {analysis for measures in found for analysis, _ in measures.values()} - {"?"}
    for model, measures, epoch in zip(models, found, epochs):
        if model.source != "run":
            continue
        have = {analysis for analysis, _ in measures.values()}
        for analysis in sorted(present - have):
            notes.append(f"run {model.name} has no {analysis} results at epoch {epoch}; ranked without them. "
                         f"Compute them with: {missing_command(model, analysis)}")
    return notes


def _analyses_of() -> dict[str, str]:
    return {metric: name for name, metrics in schema.table_metrics().items() for metric in metrics
            if name != "train"}


def unconverged_gaps(models: list[Model], *, keep: bool) -> str | None:
    """One line naming the runs that reached their epoch cap without their training criterion (None
    when there are none); unless ``keep``, their gap targets are dropped (the field compares the gaps
    of models trained to the same criterion)."""
    lacking = [model for model in models if model.source == "run" and outcomes.unconverged(model.run.record)]
    if not lacking:
        return None
    if not keep:
        for model in lacking:
            model.targets = {name: value for name, value in model.targets.items() if name not in GAP_TARGETS}
    what = ("kept in the gap targets (--keep-unconverged)" if keep else
            "left out of the gap targets, whose models must share the criterion (--keep-unconverged keeps them)")
    return outcomes.unconverged_line([model.name for model in lacking], [model.run.record for model in lacking],
                                     what=what)


def chance_notes(models: list[Model]) -> list[str]:
    """A line per setting whose runs' test top-1 is not above chance (``metrics.chance``)."""
    found = [outcomes.at_chance(model.name, model.group or model.name, record=model.run.record,
                                top1=model.targets.get("test_top1"), noise=model.run.factors().get("noise"))
             for model in models if model.source == "run"]
    return outcomes.chance_lines([item for item in found if item is not None])


def measures_table(models: list[Model], *, notes: list[str] | None = None, status: list[str] | None = None,
                   keep_unconverged: bool = False):
    """The tidy DataFrame of ``models`` (see the module docstring); ``notes`` gets a line per run that
    lacks an analysis others have, ``status`` (else ``notes``) a line naming the runs that did not
    reach their training criterion (their gap targets dropped unless ``keep_unconverged``) and one
    per setting at chance. A model without any target is a :class:`UserError`."""
    import pandas as pd

    notes = notes if notes is not None else []
    status = status if status is not None else notes
    analyses_of, found, epochs = _analyses_of(), [], []
    for model in models:
        rows = table_rows(model.run)
        epoch = _chosen_epoch(model, rows)
        if model.source == "run":
            model.targets = run_targets(model, rows, epoch, notes) | model.targets
            test_size, train_size = run_sizes(model, rows, epoch)
            model.test_size = model.test_size if model.test_size is not None else test_size
            model.train_size = model.train_size if model.train_size is not None else train_size
        found.append(model_measures(model, rows, epoch, analyses_of))
        epochs.append(epoch)
    status += [line for line in [unconverged_gaps(models, keep=keep_unconverged)] if line]
    status += chance_notes(models)
    lacking = [model.name for model in models if not model.targets]
    if lacking:
        raise UserError(f"{len(lacking)} model(s) have no target (test accuracy): {', '.join(lacking[:3])}"
                        f"{' ...' if len(lacking) > 3 else ''}; give --accuracy FILE.csv with a row for each "
                        "(columns model, top1[, top5])")
    notes += _missing_notes(models, found, epochs)
    factors = list(dict.fromkeys(key for model in models for key in model.factors))
    targets = [name for name in TARGETS if any(name in model.targets for model in models)]
    records = []
    for model, measures, epoch in zip(models, found, epochs):
        head = [model.name, model.label or model.name, model.source, model.group or model.name,
                getattr(model.run, "seed", None), epoch, *(model.factors.get(key) for key in factors),
                *(model.targets.get(name, math.nan) for name in targets), _size(model.test_size),
                _size(model.train_size)]
        records += [(*head, measure, analysis, value) for measure, (analysis, value) in sorted(measures.items())]
    columns = ["model", "label", "source", "group", "seed", "epoch", *factors, *targets, "test_size", "train_size",
               "measure", "analysis", "value"]
    table = pd.DataFrame.from_records(records, columns=columns)
    status += size_scaling(table)
    return table


def _size(value) -> float:
    return float(value) if value is not None else math.nan


# -- Jiang's dataset-size scaling ------------------------------------------------------------------------
def scaled(value: float, m: float, how: str) -> float:
    """Jiang et al.'s (ICLR 2020) scaling of a measure ``value`` of a model trained on ``m`` examples:
    ``sqrt(value / m)`` for a bound ("sqrt"), ``(value - log m) / 2`` for a bound given as its natural
    logarithm ("log"), the log of the former."""
    if how == "sqrt":
        return math.sqrt(value / m) if value >= 0 else math.nan
    if how == "log":
        return (value - math.log(m)) / 2.0
    raise ValueError(f"unknown size scaling {how!r}; expected 'sqrt' or 'log'")


def size_scaling(table) -> list[str]:
    """Where the models were trained on different numbers of examples m (``train_size``), scale each
    measure that declares ``size_scaling`` in place (column ``size_scaling`` says how) and return one line
    naming the measures compared as they are, which are not comparable across training-set sizes (no
    line, and no scaling, when every model has the same m)."""
    table["size_scaling"] = ""
    sizes = sorted({int(m) for m in table.train_size.dropna()})
    if len(sizes) < 2:
        return []
    declared = {name: getattr(KNOWN.get(name), "size_scaling", None) for name in table.measure.unique()}
    rows = table.train_size.notna() & table.measure.map(declared).notna()
    how = table.measure[rows].map(declared)
    table.loc[rows, "value"] = [scaled(v, m, h) for v, m, h in zip(table.value[rows], table.train_size[rows], how)]
    table.loc[rows, "size_scaling"] = how.map({"sqrt": "sqrt(x / m)", "log": "(x - log m) / 2"})
    unscaled = sorted(name for name, found in declared.items() if found is None)
    lacking = table[table.train_size.isna()].model.nunique()
    shown = ", ".join(f"`{name}`" for name in unscaled[:8]) + (f" and {len(unscaled) - 8} more" if len(unscaled) > 8
                                                               else "")
    compared = (f"; {shown} declare none: compared as they are, they are not comparable across training-set sizes"
                if unscaled else "")
    return [f"the models were trained on {len(sizes)} training-set sizes (m = {', '.join(map(str, sizes))}): the "
            "measures that declare Jiang et al.'s dataset-size scaling are scaled (sqrt(x / m), or (x - log m) / 2 "
            f"for a logarithm){compared}"
            + (f"; {lacking} model(s) record no training-set size and are not scaled" if lacking else "")]


def load_measures(inputs, *, epoch: int | None = None, accuracy: dict[str, dict] | None = None,
                  keep_unconverged: bool = False):
    """The measures table of the runs under ``inputs`` (sweep, run or results folders): each run's last
    snapshot (or ``epoch``); ``accuracy`` (``{model: {"test_top1"[, "test_top5"]}}``, by run folder or
    label) supplies or overrides targets; runs that did not reach their training criterion have no
    gap targets unless ``keep_unconverged``."""
    runs, _ = finished_runs(inputs)
    models = run_models(runs, epoch=epoch)
    apply_accuracy(models, accuracy or {})
    return measures_table(models, keep_unconverged=keep_unconverged)


def apply_accuracy(models: list[Model], accuracy: dict[str, dict]) -> list[str]:
    """Set the targets ``accuracy`` gives (by model name or label); returns the names it has for no model."""
    used = set()
    for model in models:
        for key in (model.name, model.label):
            if key in accuracy:
                model.targets = model.targets | accuracy[key]
                used.add(key)
    return [name for name in accuracy if name not in used]
