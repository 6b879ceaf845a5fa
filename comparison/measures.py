"""One number per model and measure, and the model's targets: the input of the ranking of measures.

    from comparison.measures import load_measures
    table = load_measures(["sweeps/noise_study"])     # a pandas DataFrame, tidy
    table.pivot_table(index="model", columns="measure", values="value")

A model is a run's snapshot (its last, or ``epoch``) or a zoo model (``analyses/zoo.py``, whose
results the CLI reads the same way). Results are read through ``schema`` (``find_runs``, ``table_of``)
and each measure is aggregated over layers as :data:`KNOWN` says; any other metric the results hold
(a new analysis's) becomes a measure too: its value for run-level metrics, its mean over layers
otherwise, with no expected direction until :data:`KNOWN` gives one.

Columns: ``model`` (the run's folder, or the zoo name), ``label`` (short, for figures), ``source``
(``run``, ``zoo``), ``group`` (the setting: models that differ only by seed share it), ``seed``,
``epoch``, one column per factor that varies, one per target (:data:`TARGETS`), ``measure``,
``analysis`` (which results it comes from) and ``value``.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import schema
from analyses.registry import SweepContext, declaration
from schema.thresholds import SIGNIFICANCE
from utils.errors import UserError


@dataclass(frozen=True)
class Target:
    orientation: int  # +1: higher is better generalization, -1: lower is
    label: str
    short: str  # for figure titles


TARGETS = {
    "test_top1": Target(+1, "test top-1 (%)", "test top-1 (%)"),
    "test_top5": Target(+1, "test top-5 (%)", "test top-5 (%)"),
    "gen_gap": Target(-1, "generalization gap: train top-1 on the training labels - test top-1 (points)",
                      "generalization gap (points)"),
    "loss_gap": Target(-1, "loss gap: test loss - mean training loss of the epoch", "loss gap"),
}


@dataclass(frozen=True)
class Known:
    direction: int  # +1: higher means better generalization in the literature, -1: worse, 0: no agreed sign
    aggregation: str
    source: str


_WW = "WeightWatcher (Martin & Mahoney 2021)"
_LAYERS = "mean over conv and linear layers (WeightWatcher's get_summary)"
KNOWN = {
    "alpha": Known(-1, f"power-law exponent of the layer ESD, {_LAYERS}", _WW),
    "alpha_weighted": Known(-1, f"alpha * log10(largest eigenvalue) (alpha-hat), {_LAYERS}", _WW),
    "log_norm": Known(-1, f"log10 of the squared Frobenius norm, {_LAYERS}", _WW),
    "log_spectral_norm": Known(-1, f"log10 of the largest eigenvalue, {_LAYERS}", _WW),
    "stable_rank": Known(0, f"||W||_F^2 / ||W||_2^2, {_LAYERS}", "no agreed sign"),
    "entropy": Known(-1, f"normalized matrix entropy, {_LAYERS}", "WeightWatcher: it decreases as a layer trains"),
    "rand_distance": Known(+1, f"Jensen-Shannon distance of the ESD to the shuffled weights' ESD, {_LAYERS}",
                           "WeightWatcher: larger for well-trained layers"),
    "log_alpha_norm": Known(-1, f"log10 of the sum of eigenvalues^alpha (alpha-norm), {_LAYERS}", _WW),
    "mp_softrank": Known(0, f"Marchenko-Pastur bulk edge / largest eigenvalue, {_LAYERS}",
                         "WeightWatcher: lower once a layer learns structure, near 1 for random weights"),
    "num_spikes": Known(0, "mean over conv and linear layers of the eigenvalues beyond the MP bulk edge", _WW),
    "num_traps": Known(-1, "mean over conv and linear layers of the correlation traps of the randomized ESD",
                       "WeightWatcher: traps mark over-trained layers"),
    "bias_mean": Known(+1, "mean over analysed layers of |mass - 0.5|, mass = P(p <= 0) of the filters' projections",
                       "hyperplane paper: bias emerges from training and correlates with learning"),
    "bias_last_conv": Known(+1, "|mass - 0.5| of the last analysed layer (the last conv layer)", "hyperplane paper"),
    "biased_fraction": Known(+1, f"fraction of analysed layers whose sign test of mass = 0.5 has p < {SIGNIFICANCE}",
                             "hyperplane paper"),
    "dist_init": Known(-1, "mean over analysed layers of ||W - W0||_F / ||W0||_F (distance from init, relative)",
                       "WeightWatcher; Jiang et al. 2020: it grows as a model memorizes"),
    "cosine_init": Known(+1, "mean over analysed layers of the cosine between W and W0", "the inverse of dist_init"),
    "dse": Known(0, "DSE(Z) of the penultimate representation on the probe (bits)",
                 "DSE paper: it rises in generalizing and in memorizing training"),
    "dsmi_y": Known(+1, "DSMI(Z; Y) of the penultimate representation with the labels (bits)",
                    "DSE paper: rises with generalization, flat when memorizing; tracks ImageNet accuracy"),
    "dsmi_x": Known(0, "DSMI(Z; X) of the penultimate representation with the inputs (bits)",
                    "DSE paper: its trend depends on the dataset"),
    "cse": Known(0, "classic Shannon entropy of the penultimate representation (bits)", "no agreed sign"),
    "hsic_x": Known(0, "mean over layers of HSIC(T, X)", "information bottleneck debate: no agreed sign"),
    "hsic_y": Known(+1, "mean over layers of HSIC(T, Y)", "HSIC bottleneck (Ma et al. 2020)"),
    "reinit_drop": Known(0, "mean over layers of the relative test top-1 drop when the layer is reset to epoch 0",
                         "contested: Chatterji et al. 2020 (less critical = better) vs. a chance-level model "
                         "having nothing to lose"),
    "reinit_drop_rand": Known(0, "mean over layers of the relative test top-1 drop when the layer is re-randomized",
                              "as reinit_drop"),
}
# Per-layer statistics the measures above summarize (or that are no measure of a model by themselves).
RAW = {"mean", "std", "median", "mass", "sign_test_p", "ks_stat", "ks_p", "l2_dist", "l_inf_dist", "cosine",
       "init_mean", "init_mass", "xmin", "ks_distance", "spectral_norm", "n_filters", "n_layers"}
TRAINING = {"train_loss", "train_top1", "val_top1", "val_loss", "test_top1", "test_loss"}
SPECTRA_CONV_MODE = "slices"  # WeightWatcher's; the table's too
PIXEL_SHUFFLE = -1.0


def expected_sign(measure: str, target: str) -> int:
    """The sign the literature expects for the correlation of ``measure`` with ``target`` (0: none)."""
    known = KNOWN.get(measure)
    return 0 if known is None else known.direction * TARGETS[target].orientation


@dataclass
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


# -- models of runs -------------------------------------------------------------------------------------
def _value_label(key: str, value) -> str:
    if key == "noise" and value is not None and float(value) == PIXEL_SHUFFLE:
        return "pixel shuffle"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _varying(found: list[dict]) -> list[str]:
    keys = dict.fromkeys(key for factors in found for key in factors)
    return [key for key in keys if len({repr(factors.get(key)) for factors in found}) > 1]


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
    designs = [run.factors() for run in runs]
    varying = _varying(designs)
    seeds = len({str(run.seed) for run in runs}) > 1
    models = []
    for run, design in zip(runs, designs):
        group = ",".join(f"{key}={_value_label(key, design.get(key))}" for key in varying) or "all"
        label = group if not seeds else f"{group} s{run.seed}" if varying else f"seed {run.seed}"
        models.append(Model(run, _relative(run.folder), "run", {key: design.get(key) for key in varying}, {},
                            epoch, label, group))
    return models


def _relative(path) -> str:
    here, path = Path.cwd().resolve(), Path(path).resolve()
    return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)


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


def _run_level(rows: list[tuple], epoch) -> dict[str, float]:
    """The run-level values (layer ``""``) at ``epoch``, by metric (the last row wins)."""
    return {metric: value for at, layer, metric, value in rows if at == epoch and layer == "" and schema.finite(value)}


def run_targets(model: Model, rows: list[tuple], epoch, notes: list[str]) -> dict[str, float]:
    """Test top-1, the generalization gap and the loss gap at ``epoch``, from run.json's rows."""
    at = _run_level(rows, epoch)
    top1, loss = at.get("test_top1"), at.get("test_loss")
    if top1 is None and at.get("val_top1") is not None:
        top1, loss = at.get("val_top1"), at.get("val_loss")
        notes.append(f"run {model.name}: no test top-1 at epoch {epoch} (run.json has the test set at its last "
                     "epoch only); using its validation top-1")
    train_top1, train_loss = at.get("train_top1"), at.get("train_loss")
    targets = {"test_top1": top1,
               "gen_gap": train_top1 - top1 if train_top1 is not None and top1 is not None else None,
               "loss_gap": loss - train_loss if loss is not None and train_loss is not None else None}
    return {key: value for key, value in targets.items() if value is not None}


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
    for metric, value in _run_level(rows, epoch).items():
        if metric not in RAW and metric not in TRAINING:
            found[metric] = (analyses_of.get(metric, "?"), float(value))
    found |= {name: ("spectra", value) for name, value in _spectra_net(model.run, epoch).items()}
    return found


# -- the table -------------------------------------------------------------------------------------------
def missing_command(model: Model, analysis: str) -> str:
    """The command that computes ``analysis`` for a run (its results root mirrors ``models/``)."""
    declared = declaration(analysis)
    folder = Path(model.name)
    parts = folder.parts
    if model.run.record is not None and "models" in parts:
        at = len(parts) - 1 - parts[::-1].index("models")
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


def measures_table(models: list[Model], *, notes: list[str] | None = None):
    """The tidy DataFrame of ``models`` (see the module docstring); ``notes`` gets a line per run that
    lacks an analysis others have. A model without any target is a :class:`UserError`."""
    import pandas as pd

    notes = notes if notes is not None else []
    analyses_of, found, epochs = _analyses_of(), [], []
    for model in models:
        rows = table_rows(model.run)
        epoch = _chosen_epoch(model, rows)
        if model.source == "run":
            model.targets = run_targets(model, rows, epoch, notes) | model.targets
        found.append(model_measures(model, rows, epoch, analyses_of))
        epochs.append(epoch)
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
                *(model.targets.get(name, math.nan) for name in targets)]
        records += [(*head, measure, analysis, value) for measure, (analysis, value) in sorted(measures.items())]
    columns = ["model", "label", "source", "group", "seed", "epoch", *factors, *targets, "measure", "analysis",
               "value"]
    return pd.DataFrame.from_records(records, columns=columns)


def load_measures(inputs, *, epoch: int | None = None, accuracy: dict[str, dict] | None = None):
    """The measures table of the runs under ``inputs`` (sweep, run or results folders): each run's last
    snapshot (or ``epoch``); ``accuracy`` (``{model: {"test_top1"[, "test_top5"]}}``, by run folder or
    label) supplies or overrides targets."""
    runs, _ = finished_runs(inputs)
    models = run_models(runs, epoch=epoch)
    apply_accuracy(models, accuracy or {})
    return measures_table(models)


def apply_accuracy(models: list[Model], accuracy: dict[str, dict]) -> list[str]:
    """Set the targets ``accuracy`` gives (by model name or label); returns the names it has for no model."""
    used = set()
    for model in models:
        for key in (model.name, model.label):
            if key in accuracy:
                model.targets = model.targets | accuracy[key]
                used.add(key)
    return [name for name in accuracy if name not in used]
