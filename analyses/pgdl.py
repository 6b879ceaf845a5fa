"""The PGDL competition's models (NeurIPS 2020, "Predicting Generalization in Deep Learning") as a
source of the analyses, for ``rank_measures.py --pgdl``.

A task folder (``public_data/input_data/<task>/``) holds ``model_<id>/`` folders (``config.json``,
``weights.hdf5``, ``weights_init.hdf5`` where it exists) and its training data
(``dataset_1/train/shard_*.tfrecord``). Each model is translated into a torch module
(``models/keras_model.py``) and becomes one :class:`analyses.subject.Subject`, with
``weights_init.hdf5`` as its initialization and the task's data as its data (``datasets/pgdl.py``:
the probe of DSE and HSIC is drawn from it). From there on it is measured as any model is:

- every analysis that needs no test set (:func:`choices`): the projections (normalized, as sweeps
  and the zoo run them), spectra, the field's measures (norms, margin, sharpness, with
  compute_measures.py's defaults) and DSE/DSMI and HSIC on the task's data. Reinit evaluates a test
  set and the optimization measures read a training history; the tasks give neither
  (:data:`NOT_ON_PGDL`), so they are skipped with one line. An analysis a model cannot have (DSE of a
  model without a linear layer) is a note, not a failure;
- the results go to ``<root>/<task>/<model>/none/``: the standard layout, with the task as the
  dataset and the model as the architecture (each model has its own config). A document already
  there for the same model and settings is reused;
- the self-check: the model's top-1 on the task's training data (``pgdl_check_<model>.json``), which
  the ranking compares with ``model_configs.json``'s ``train_acc``; with ``logits`` the logits of
  the first examples in the shards' order go to ``<logits_root>/<task>/<model>.npy``.

:func:`analyse` measures one model and is what runs in a worker process or a SLURM job.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import schema
from analyses import runner
from analyses.subject import PRETRAINED, PRETRAINED_EPOCH, Subject
from datasets.pgdl import check_shards, conventions, read_examples, task_bundle
from models.keras import Where
from models.keras_model import KerasSequential, build, logits, read_config, read_weights, translate
from models.keras_model import check_weights as check_weight_shapes
from utils.errors import UserError
from utils.fileio import atomic_write
from utils.paths import results_dir

logger = logging.getLogger(__name__)

WEIGHTS, INIT_WEIGHTS = "weights.hdf5", "weights_init.hdf5"
CHECK_KIND = "pgdl_check"
NOT_ON_PGDL = {"reinit": "it evaluates a test set, which the tasks do not give",
               "optimization": "it reads a training history (run.json), which the tasks do not give"}


@dataclass(frozen=True)
class PgdlModel:
    """One model of a task: ``task_dir`` is ``.../input_data/<task>``, ``model`` its folder's name."""

    task_dir: str
    model: str
    use_init: bool = True  # False: its weights_init.hdf5 does not fit its config (the kit then goes on without)

    @property
    def task(self) -> str:
        return Path(self.task_dir).name

    @property
    def dir(self) -> Path:
        return Path(self.task_dir) / self.model

    @property
    def where(self) -> Where:
        return Where(self.task, self.model)

    @property
    def init_path(self) -> Path | None:
        path = self.dir / INIT_WEIGHTS
        return path if self.use_init and path.is_file() else None

    def results(self, root: str | Path) -> Path:
        return results_folder(root, self.task, self.model)


def results_folder(root: str | Path, task: str, model: str) -> Path:
    """``<root>/<task>/<model>/none/``: the standard layout, the task as the dataset, the model as the arch."""
    return results_dir(root, dataset=task, arch=model, seed=None)


def task_models(task_dir: str | Path) -> list[PgdlModel]:
    """The model folders of a task, as the competition lists them (sorted names containing ``model``)."""
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise UserError(f"--pgdl {task_dir} is not a folder; give task folders such as public_data/input_data/task1_v4")
    found = [PgdlModel(str(task_dir), path.name) for path in sorted(task_dir.iterdir())
             if path.is_dir() and "model" in path.name and "json" not in path.name]
    if not found:
        raise UserError(f"--pgdl {task_dir} holds no model_<id> folder; give a task folder of the competition's "
                        "input_data")
    return found


def check_model(model: PgdlModel, notes: list[str]) -> tuple[PgdlModel, KerasSequential]:
    """Its config translates and ``weights.hdf5`` fits it (shapes only), else a UserError; an
    initialization that cannot be read or does not fit is a note, and the model goes on without one (as
    the competition's loader does). Returns the model (``use_init`` settled) and its translation."""
    translated = translate(read_config(model.dir / "config.json", model.where))
    path = model.dir / WEIGHTS
    if not path.is_file():
        raise UserError(f"task {model.task}, model {model.model}: no {WEIGHTS} in {model.dir}")
    check_weight_shapes(translated, read_weights(path, model.where, data=False), path)
    if model.init_path is not None:
        try:
            check_weight_shapes(translated, read_weights(model.init_path, model.where, data=False), model.init_path)
        except UserError as err:
            notes.append(f"{err}; measured without an initialization")
            return PgdlModel(model.task_dir, model.model, use_init=False), translated
    return model, translated


def check_task(models: list[PgdlModel], notes: list[str]) -> tuple[list[PgdlModel], dict]:
    """Every model of one task checked before any work (:func:`check_model`); the models, and
    ``{"classes", "examples", "input_shape"}``."""
    models, translated = (list(found) for found in zip(*(check_model(model, notes) for model in models)))
    task = models[0].task
    outputs = {tuple(found.output_shape) for found in translated}
    inputs = {tuple(found.input_shape) for found in translated}
    if len(outputs) != 1 or len(next(iter(outputs))) != 1:
        raise UserError(f"task {task}: its models end in outputs of shapes {sorted(outputs)}; a task's models end in "
                        "one vector of class scores of one size")
    if len(inputs) != 1:
        raise UserError(f"task {task}: its models take inputs of shapes {sorted(inputs)}; one task, one input shape")
    return models, {"classes": next(iter(outputs))[0], "examples": check_shards(models[0].task_dir),
                    "input_shape": next(iter(inputs))}


# -- which analyses -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PgdlSettings:
    """How the models of the tasks are measured, and where their results go."""

    analyses: tuple[str, ...]
    root: str  # <out>/models
    probe_samples: int = 1000
    dse_sigma: float | str = "auto"
    seed: int = 0
    check_samples: int = 0  # 0: every training example
    logits: int = 0
    logits_root: str | None = None
    device: str = "cpu"
    batch_size: int = 256


def _builders() -> dict:
    """The analyses a PGDL model gets that the registry's own ``make`` does not build (with data)."""
    from analyses.dse import DSE, DSESettings
    from analyses.hsic import HSIC, HSICSettings
    from analyses.projections import Projections, ProjectionSettings
    from analyses.spectra import Spectra, SpectraSettings

    return {"projections": lambda s: Projections(ProjectionSettings(normalize=True)),
            "spectra": lambda s: Spectra(SpectraSettings()),
            "dse": lambda s: DSE(DSESettings(samples=s.probe_samples, seed=s.seed, sigma=s.dse_sigma,
                                             batch_size=s.batch_size)),
            "hsic": lambda s: HSIC(HSICSettings(samples=s.probe_samples, seed=s.seed, batch_size=s.batch_size))}


def choices() -> tuple[str, ...]:
    """Every registered analysis that needs no test set and no training history, in registry order."""
    from analyses.registry import declarations

    known = _builders()
    return tuple(found.name for found in declarations() if found.name not in NOT_ON_PGDL
                 and (found.name in known or found.make is not None))


def build_analysis(name: str, settings: PgdlSettings):
    known = _builders()
    if name in known:
        return known[name](settings)
    from analyses.field import FieldSettings
    from analyses.registry import declaration

    return declaration(name).make(FieldSettings(seed=settings.seed), None)  # with the task's training data


def chosen(requested: list[str] | None) -> tuple[tuple[str, ...], list[str]]:
    """``(analyses, notes)``: the requested ones (every one by default), and a line per skipped one."""
    available = choices()
    names = list(requested) if requested else [*available, *NOT_ON_PGDL]
    notes = [f"PGDL models get no {name} analysis: {NOT_ON_PGDL[name]}" for name in names if name in NOT_ON_PGDL]
    unknown = [name for name in names if name not in available and name not in NOT_ON_PGDL]
    if unknown:
        raise UserError(f"--analyses {unknown[0]} does not run on PGDL models; choose from: {', '.join(available)}")
    return tuple(name for name in available if name in names), notes


# -- one model --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PgdlJob:
    model: PgdlModel
    settings: PgdlSettings
    threads: int = 0  # torch threads of the worker (0: leave them)


@functools.lru_cache(maxsize=1)
def task_data(task_dir: str) -> tuple[torch.Tensor, np.ndarray]:
    """The task's training data, read once per process (the models of a task share it)."""
    return read_examples(task_dir)


def subject_of(model: PgdlModel, settings: PgdlSettings, *, with_init: bool, with_data: bool) -> Subject:
    device = torch.device(settings.device)

    def made(keras: KerasSequential, path: Path) -> Subject:
        shape = keras.input_shape
        return Subject(keras.to(device).eval(), model.model, model.task, keras.output_shape[0], shape[0], shape[1],
                       PRETRAINED_EPOCH, None, source=PRETRAINED, path=path, device=device)

    subject = made(build(model.dir, model.where), model.dir)
    if with_init and model.init_path is not None:
        subject.initialization = (model.init_path, made(build(model.dir, model.where, weights=INIT_WEIGHTS),
                                                        model.init_path))
    if with_data:
        images, labels = task_data(model.task_dir)
        subject.data_bundle = task_bundle(model.task, images, labels, num_classes=subject.num_classes)
        subject.data_conventions = conventions(model.task)
    return subject


def _done(path: Path, args: dict) -> bool:
    try:
        return path.is_file() and schema.load(path).get("args") == args
    except UserError:
        return False


def _check(subject: Subject, model: PgdlModel, settings: PgdlSettings) -> dict:
    """Top-1 (%) of the model on the task's training data (the first ``check_samples``, else all)."""
    images, labels = task_data(model.task_dir)
    count = settings.check_samples or len(labels)
    outputs = logits(subject.model, images[:count].to(subject.device), batch_size=settings.batch_size)
    correct = (outputs.argmax(dim=1).cpu().numpy() == labels[:count]).mean()
    return {"measured_train_acc": 100.0 * float(correct), "samples": int(min(count, len(labels))),
            "of": int(len(labels)), "softmax_output": bool(subject.model.softmax_output)}


def _write_logits(subject: Subject, model: PgdlModel, settings: PgdlSettings, path: Path) -> Path:
    """The logits of the first ``settings.logits`` training examples, in the shards' order (float32 .npy)."""
    images, _ = task_data(model.task_dir)
    outputs = logits(subject.model, images[:settings.logits].to(subject.device), batch_size=settings.batch_size)
    return atomic_write(path, lambda handle: np.save(handle, outputs.cpu().numpy().astype(np.float32)))


def _logits_path(model: PgdlModel, settings: PgdlSettings) -> Path | None:
    if not settings.logits or settings.logits_root is None:
        return None
    path = Path(settings.logits_root) / model.task / f"{model.model}.npy"
    try:
        if path.is_file() and np.load(path, mmap_mode="r").shape[0] == settings.logits:
            return None  # already there
    except (OSError, ValueError):
        pass
    return path


def analyse(job: PgdlJob) -> dict:
    """Every analysis of one model that its results folder lacks, its self-check and its logits:
    ``{"task", "model", "files", "notes", "check"}``."""
    if job.threads:
        torch.set_num_threads(job.threads)
    model, settings = job.model, job.settings
    out_dir = model.results(settings.root)
    base = {"pgdl_task": model.task, "pgdl_model": model.model, "config": str(model.dir / "config.json"),
            "weights": str(model.dir / WEIGHTS), "init": str(model.init_path) if model.init_path else None}
    pending = []
    for name in settings.analyses:
        analysis = build_analysis(name, settings)
        args = base | ({"probe_samples": settings.probe_samples, "dse_sigma": settings.dse_sigma, "seed": settings.seed}
                       if analysis.needs_data else {})
        path = out_dir / f"{analysis.file_prefix}_{model.model}.json"
        if not _done(path, args):
            pending.append((name, analysis, args))
    check_path = out_dir / f"{CHECK_KIND}_{model.model}.json"
    check_args = base | {"check_samples": settings.check_samples}
    check = schema.load(check_path) if _done(check_path, check_args) else None
    logits_path = _logits_path(model, settings)
    files, notes = [], []
    if pending or check is None or logits_path is not None:
        subject = subject_of(model, settings, with_init=any(a.needs_init for _, a, _ in pending), with_data=True)
        if check is None:
            check = schema.header(CHECK_KIND, arch=model.model, dataset=model.task, seed=None, epoch=PRETRAINED_EPOCH,
                                  args=check_args) | _check(subject, model, settings)
            files.append(str(schema.write(check_path, check)))
        if logits_path is not None:
            files.append(str(_write_logits(subject, model, settings, logits_path)))
        for name, analysis, args in pending:
            files += _measured(name, analysis, subject, args, out_dir, notes)
    else:
        logger.info("task %s, model %s: reusing its results in %s", model.task, model.model, out_dir)
    return {"task": model.task, "model": model.model, "files": files, "notes": notes,
            "check": {key: check[key] for key in ("measured_train_acc", "samples", "of", "softmax_output")}}


def _measured(name: str, analysis, subject: Subject, args: dict, out_dir: Path, notes: list[str]) -> list[str]:
    """The document of one analysis, written with its summary (a UserError is a note: the model lacks it)."""
    started = time.monotonic()
    try:
        document = analysis.run(subject, args)
    except UserError as err:
        notes.append(f"task {subject.dataset}, model {subject.arch} has no {name}: {err}")
        return []
    notes += [f"task {subject.dataset}, model {subject.arch}: {note}" for note in document.get("notes") or []]
    path = runner.write_document(analysis, document, out_dir, subject.stem)
    summary = runner.write_summary(analysis, out_dir, [(path, document)], args)
    logger.info("task %s, model %s: %s in %.1fs", subject.dataset, subject.arch, name, time.monotonic() - started)
    return [str(path)] + ([str(summary)] if summary is not None else [])
