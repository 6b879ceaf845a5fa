"""Pretrained models ("a zoo") for rank_measures.py: torchvision's ImageNet classifiers by name,
``timm/<name>`` when timm is installed, and local weight files, each analysed into the standard
results layout so that every other CLI reads them.

- **Offline**: torchvision's weights are read from the torch hub cache (``$TORCH_HOME/hub/checkpoints``),
  timm's from the local Hugging Face cache; nothing downloads without ``download``. Every missing
  file is named, with the URL to copy it from, before any model is analysed.
- **Targets**: ImageNet-1K acc@1 and acc@5 from ``torchvision.models.get_model_weights(name).DEFAULT.meta``;
  ``--accuracy file.csv`` (columns ``model, top1[, top5]``) overrides or supplies them.
- **Analyses**: those whose declaration says how a zoo model gets them (``Declaration.zoo``):
  by default projections (normalized, as sweeps run them) and spectra of the weights, and, with a
  probe dataset, DSE/DSMI of the penultimate representation on that dataset's images (upscaled to
  224x224; the 1000-class head is kept); on request the field's measures (norms; margin and
  sharpness name the training data a zoo model lacks in one note). Each model runs in its own process (``jobs``), through the
  analyses' own ``measure``/``document`` and the runner's writers, into
  ``<root>/<model>/<dataset>/<arch>/none/``. Results already there for the same model and settings
  are reused.
"""
from __future__ import annotations

import difflib
import logging
import multiprocessing
import os
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch

import schema
from analyses import runner
from analyses.loading import fresh_model, model_shape
from analyses.subject import PRETRAINED, PRETRAINED_EPOCH, SNAPSHOT, Subject
from utils.errors import UserError
from utils.paths import results_dir
from utils.weights import WEIGHT_SUFFIXES, read_state_dict

logger = logging.getLogger(__name__)

ZOO_DATASET = "imagenet"
TIMM_PREFIX = "timm/"
TORCHVISION, TIMM, WEIGHTS = "torchvision", "timm", "weights"


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo: its name (how the user named it, or a weight file's stem), where its
    weights come from, and the architecture that holds them."""

    name: str
    source: str  # torchvision | timm | weights
    arch: str  # torchvision's name, timm's name, or --arch of a weight file
    path: str | None = None  # the weight file
    dataset: str = ZOO_DATASET  # what the weights were trained on (their shape)

    @property
    def folder(self) -> str:
        return _safe(self.name)

    @property
    def safe_arch(self) -> str:
        return f"timm-{_safe(self.arch)}" if self.source == TIMM else _safe(self.arch)

    @property
    def stem(self) -> str:
        """The stem of its result files (as :class:`analyses.subject.Subject` names them)."""
        return Path(self.path).stem if self.path else f"pretrained_{self.safe_arch}"

    def results(self, root: str | os.PathLike) -> Path:
        return results_dir(Path(root) / self.folder, dataset=self.dataset, arch=self.safe_arch, seed=None)

    def factors(self) -> dict:
        """What a zoo varies, for colouring figures: the family (``vgg``) and batch normalization."""
        base = self.arch.split(".")[0]
        family = re.match(r"[A-Za-z_]*?(?=\d|$)", base).group(0).rstrip("_") or base
        return {"family": family, "batch_norm": base.endswith("_bn") or base.endswith("bn")}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


# -- the entries ---------------------------------------------------------------------------------------
def _torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _torchvision_entry(name: str) -> ZooEntry:
    from models.torchvision_models import TORCHVISION_VARIANTS

    known = _torchvision_names()
    tv_name = TORCHVISION_VARIANTS.get(name, name)
    if tv_name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"unknown zoo model {name!r}; {hint}--zoo takes torchvision's classifiers "
                        f"(torchvision.models.list_models(): {len(known)} names) or timm/<name>")
    return ZooEntry(name, TORCHVISION, tv_name)


def _timm(download: bool):
    """The timm package, offline unless ``download``; None when it is not installed."""
    if not download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read before huggingface_hub is imported
    try:
        import timm
    except ImportError:
        return None
    return timm


def _timm_entry(name: str, download: bool) -> ZooEntry:
    model = name[len(TIMM_PREFIX):]
    timm = _timm(download)
    if timm is None:
        raise UserError(f"zoo entry {name} needs timm, which is not installed: pip install timm (an optional "
                        "extra), or drop the entry")
    if not model or not timm.is_model(model):
        raise UserError(f"unknown timm model {model!r} in --zoo {name}; timm.list_models() names them")
    return ZooEntry(name, TIMM, model)


def _weights_entry(token: str, arch: str | None, dataset: str) -> ZooEntry:
    """``FILE`` (with ``--arch``) or ``ARCH=FILE``."""
    given, sep, path = token.partition("=")
    arch, path = (given, path) if sep else (arch, given)
    if not arch:
        raise UserError(f"--weights {token}: which architecture holds it? pass --arch, or write ARCH={token}")
    if Path(path).suffix.lower() not in WEIGHT_SUFFIXES:
        raise UserError(f"--weights {path}: not a weight file ({', '.join(WEIGHT_SUFFIXES)}); check the path")
    if not Path(path).is_file():
        raise UserError(f"--weights {path} does not exist; check the path")
    from models import list_models

    if arch not in list_models() and arch not in _torchvision_names():
        raise UserError(f"unknown architecture {arch!r} for --weights {path}; choose one of: "
                        f"{', '.join(list_models())} (or any torchvision classification model name)")
    model_shape(dataset)  # an unknown dataset fails here, before any work
    return ZooEntry(Path(path).stem, WEIGHTS, arch, str(path), dataset)


def parse_entries(zoo: list[str], weights: list[str], *, arch: str | None = None, dataset: str = ZOO_DATASET,
                  download: bool = False) -> list[ZooEntry]:
    """The entries of ``--zoo`` names and ``--weights`` files, validated (no work done yet)."""
    entries = [_timm_entry(name, download) if name.startswith(TIMM_PREFIX) else _torchvision_entry(name)
               for name in zoo]
    entries += [_weights_entry(token, arch, dataset) for token in weights]
    seen: dict[str, ZooEntry] = {}
    for entry in entries:
        if entry.folder in seen:
            raise UserError(f"two zoo models are named {entry.name!r}; give each weight file its own name")
        seen[entry.folder] = entry
    return entries


def check_cached(entries: list[ZooEntry], *, download: bool) -> None:
    """Every torchvision entry's weights are in the local cache (or ``download`` allows fetching them)."""
    from models.torchvision_models import pretrained_cache_file

    if download:
        return
    missing = []
    for entry in entries:
        if entry.source == TORCHVISION:
            path, url = pretrained_cache_file(entry.arch)
            if not os.path.isfile(path):
                missing.append(f"{entry.name} (expected {path}, from {url})")
    if missing:
        raise UserError(f"{len(missing)} zoo model(s) not in the local cache: {'; '.join(missing)}; copy the "
                        "files there (or set TORCH_HOME), or pass --download")


# -- the probe -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeSettings:
    """``--probe-dataset``: DSE/DSMI of the penultimate representation on this dataset's images."""

    dataset: str
    data_path: str = "./data"
    samples: int = 1000
    sigma: float | str = "auto"
    seed: int = 0
    batch_size: int = 64
    download: bool = False

    def record(self) -> dict:
        return {"probe_dataset": self.dataset, "probe_samples": self.samples, "dse_sigma": self.sigma,
                "dse_seed": self.seed}


def probe_data(probe: ProbeSettings):
    """The probe dataset as 3-channel images of 224x224 (a ``datasets.DataBundle``)."""
    import datasets
    from datasets.transforms import UPSCALE_SIZE

    spec = datasets.get_dataset_spec(probe.dataset)
    if spec.in_channels != 3:
        raise UserError(f"--probe-dataset {probe.dataset} has {spec.in_channels}-channel images and zoo models take "
                        "3 channels; choose " + ", ".join(name for name in datasets.list_datasets()
                                                          if datasets.get_dataset_spec(name).in_channels == 3))
    options = datasets.DataOptions(data_path=probe.data_path, download=probe.download,
                                   upscale=spec.image_size != UPSCALE_SIZE)
    return datasets.build_data(probe.dataset, options)


# -- one model's analyses ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ZooTask:
    entry: ZooEntry
    root: str
    analyses: tuple[str, ...]
    probe: ProbeSettings | None = None
    device: str = "cpu"
    download: bool = False
    threads: int = 0  # torch threads of a worker process (0: leave them)


def build_model(entry: ZooEntry, device: torch.device, *, download: bool) -> Subject:
    """The entry's model with its weights, ready for analysis (epoch ``PRETRAINED_EPOCH``)."""
    if entry.source == TORCHVISION:
        return fresh_model(entry.arch, ZOO_DATASET, pretrained=True, download=download, check_input=False,
                           device=device)
    if entry.source == WEIGHTS:
        from models import get_model
        from utils.checkpoints import load_model_state

        shape = model_shape(entry.dataset)
        model = get_model(entry.arch, shape[0], shape[1], image_size=shape[2], check_input=False)
        load_model_state(model, read_state_dict(entry.path), source=entry.path)
        return Subject(model.to(device).eval(), entry.arch, entry.dataset, *shape, PRETRAINED_EPOCH, None,
                       source=SNAPSHOT, path=Path(entry.path), device=device)
    timm = _timm(download)
    try:
        model = timm.create_model(entry.arch, pretrained=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"timm/{entry.arch}: cannot load its pretrained weights ({first}); put them in the local "
                        "Hugging Face cache, or pass --download") from err
    channels, size = tuple((model.pretrained_cfg or {}).get("input_size", (3, 224, 224)))[:2]
    return Subject(model.to(device).eval(), entry.safe_arch, ZOO_DATASET, model.num_classes, channels, size,
                   PRETRAINED_EPOCH, None, source=PRETRAINED, device=device)


def _declared(name: str):
    from analyses.registry import declaration

    return declaration(name)


def _zoo_use(name: str):
    """How the zoo runs analysis ``name`` (its declaration's ``zoo``)."""
    use = _declared(name).zoo
    if use is None:
        raise UserError(f"analysis {name!r} does not run on zoo models; choose one of: {', '.join(analyses_choices())}")
    return use


def analyses_choices() -> tuple[str, ...]:
    """The analyses a zoo model can get (their declarations say how)."""
    from analyses.registry import zoo_analyses

    return zoo_analyses()[0]


def default_analyses() -> tuple[str, ...]:
    """The zoo's analyses without --analyses (+ those that read a probe dataset, when one is given)."""
    from analyses.registry import zoo_analyses

    return zoo_analyses()[1]


def __getattr__(name: str):
    """``ANALYSES`` and ``DEFAULT_ANALYSES``, read from the registry when asked for (not at import)."""
    if name == "ANALYSES":
        return analyses_choices()
    if name == "DEFAULT_ANALYSES":
        return default_analyses()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _done(path: Path, args: dict) -> bool:
    """Its document is there, for the same model and settings."""
    try:
        return path.is_file() and schema.load(path).get("args") == args
    except UserError:
        return False


def analyse(task: ZooTask) -> dict:
    """Every analysis of one zoo model that its results folder lacks: ``{"files", "notes"}``."""
    if task.threads:
        torch.set_num_threads(task.threads)
    entry, out_dir = task.entry, task.entry.results(task.root)
    base = {"zoo": entry.name, "source": entry.source, "arch": entry.arch, "weights": entry.path}
    files, notes, subject = [], [], None
    for name in task.analyses:
        use = _zoo_use(name)
        analysis = use.build(task.probe)
        args = base | (task.probe.record() if use.probe else {})
        path = out_dir / f"{analysis.file_prefix}_{entry.stem}.json"
        if _done(path, args):
            logger.info("%s: reusing %s", entry.name, path)
            continue
        if subject is None:
            subject = build_model(entry, torch.device(task.device), download=task.download)
        if use.probe and subject.data_bundle is None:
            from analyses.data import conventions_of

            subject.data_bundle = probe_data(task.probe)
            subject.data_conventions = conventions_of(subject.data_bundle)
        try:
            document = analysis.run(subject, args)
        except UserError as err:
            if not use.optional:
                raise
            what = _declared(name).compared_as or name  # e.g. "DSE": no linear layer to probe
            notes.append(f"zoo model {entry.name} has no {what}: {err}")
            continue
        if use.probe:
            document["probe"]["dataset"] = task.probe.dataset
        notes += [f"zoo model {entry.name}: {note}" for note in document.get("notes") or []]
        files.append(str(runner.write_document(analysis, document, out_dir, entry.stem)))
        summary = runner.write_summary(analysis, out_dir, [(Path(files[-1]), document)], args)
        files += [str(summary)] if summary is not None else []
    return {"files": files, "notes": notes}


def analyse_all(entries: list[ZooEntry], root: str | os.PathLike, *, analyses: tuple[str, ...],
                probe: ProbeSettings | None = None, device: str = "cpu", download: bool = False, jobs: int = 1,
                initializer: Callable[[], None] | None = None) -> dict[str, dict]:
    """Each entry's :func:`analyse`, ``jobs`` models at once in worker processes (``initializer``
    runs first in each, e.g. the CLI's logging setup); ``{name: {"files", "notes"}}``."""
    workers = max(1, min(jobs, len(entries)))
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0
    tasks = [ZooTask(entry, str(root), analyses, probe, device, download, threads) for entry in entries]
    if workers == 1:
        return {task.entry.name: _logged(task, analyse(task)) for task in tasks}
    found = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=initializer) as pool:
        futures = {pool.submit(analyse, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                task = futures[future]
                found[task.entry.name] = _logged(task, future.result())
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return found


def _logged(task: ZooTask, result: dict) -> dict:
    logger.info("zoo model %s: %d file(s) written in %s", task.entry.name, len(result["files"]),
                task.entry.results(task.root))
    return result
