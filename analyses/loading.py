"""One way in for a model: a snapshot file, a run directory, a glob, the zoo or a seeded random init
becomes a :class:`analyses.subject.Subject`, built whole in one pass (:func:`subjects`).

Our snapshots describe themselves, so ``arch``/``dataset`` are optional and, when given, must
agree. Plain state dicts (the reference's files) need ``arch`` and ``dataset``; their shape then
follows from the dataset, the class subset and the upscaling flags. Each subject gets, when its
analyses need them, the initialization it is compared with and the data of its run (with their
conventions); both are loaded once per file and options and shared by the subjects of a run.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from analyses.data import DataBundles, DataSettings
from analyses.sources import REFERENCE_LAYOUT, InitSettings, SourceSettings
from analyses.subject import INIT, PRETRAINED, PRETRAINED_EPOCH, SNAPSHOT, Subject
from datasets import get_dataset_spec
from datasets.transforms import UPSCALE_SIZE
from models.registry import get_model, model_options
from utils.checkpoints import (
    is_reference_file,
    load_checkpoint,
    load_model_state,
    reference_epoch,
    resolve_snapshots,
    snapshot_sort_epoch,
)
from utils.errors import UserError

logger = logging.getLogger(__name__)


def subjects(sources: SourceSettings, *, device: torch.device, init: InitSettings | None = None,
             data: DataSettings | None = None) -> Iterator[Subject]:
    """Each model of ``sources`` in epoch order (one at a time), built whole: with its initialization
    when ``init`` is given (analyses that compare with one), with its run's data bundle and their
    conventions when ``data`` is given (analyses that read data)."""
    initializations = Initializations(init, device) if init is not None else None
    bundles = DataBundles(data) if data is not None else None
    probes: dict = {}  # (data, samples, seed) -> probe set, drawn once per run
    for subject in models(sources, device):
        lookups = {"probes": probes}
        if initializations is not None:
            lookups["initialization"] = initializations(subject)
        if bundles is not None:
            lookups["data_bundle"], lookups["data_conventions"] = bundles.of(subject)
        yield dataclasses.replace(subject, **lookups)


# -- the models ------------------------------------------------------------------------------------
def models(sources: SourceSettings, device: torch.device) -> Iterator[Subject]:
    """Each snapshot of ``--load-from`` in epoch order, else the zoo model or a seeded init."""
    if not sources.load_from:
        subject = fresh_model(sources.arch, sources.dataset, pretrained=sources.pretrained, seed=sources.seed,
                              subsample_classes=sources.subsample_classes or 0, upscale=sources.upscale,
                              download=sources.download, check_input=sources.check_input, device=device)
        what = "pretrained weights from the model zoo" if sources.pretrained else f"a random init (seed {sources.seed})"
        logger.info("no --load-from: analysing %s of %s", what, sources.arch)
        yield subject
        return
    if sources.pretrained:
        logger.warning("--pretrained is only used without --load-from; ignoring it")
    for path in snapshot_paths(sources):
        subject = load_snapshot_model(path, arch=sources.arch, dataset=sources.dataset,
                                      subsample_classes=sources.subsample_classes or None, upscale=sources.upscale,
                                      seed=sources.seed, device=device)
        if sources.seed is not None and subject.seed is not None and subject.seed != sources.seed:
            raise UserError(f"--seed {sources.seed} disagrees with snapshot {path} (seed {subject.seed}); "
                            "drop the flag or fix it")
        yield subject


def snapshot_paths(sources: SourceSettings) -> list[Path]:
    """The snapshots ``--load-from`` names, in epoch order (see :class:`SourceSettings`)."""
    snapshots = resolve_snapshots(sources.load_from, dedupe=sources.layout != REFERENCE_LAYOUT)
    if not sources.latest_only:
        return snapshots
    if Path(sources.load_from).is_dir():
        return snapshots[-1:]
    if len(snapshots) > 1:
        raise UserError(f"--load-from {sources.load_from} matches {len(snapshots)} snapshots; give one file")
    return snapshots


def model_shape(dataset: str, *, subsample_classes: int = 0, upscale: bool = False) -> tuple[int, int, int]:
    """(num_classes, in_channels, image_size) of a model trained on ``dataset`` with these options."""
    spec = get_dataset_spec(dataset)
    if subsample_classes < 0 or subsample_classes > spec.num_classes:
        raise UserError(f"--subsample-classes {subsample_classes} is out of range for {dataset} "
                        f"({spec.num_classes} classes)")
    return subsample_classes or spec.num_classes, spec.in_channels, UPSCALE_SIZE if upscale else spec.image_size


def _check_agrees(name: str, given, stored, path: Path) -> None:
    if given is not None and stored is not None and given != stored:
        raise UserError(f"--{name} {given} disagrees with snapshot {path} ({stored}); drop the flag or fix it")


def load_snapshot_model(
    path: str | Path,
    *,
    arch: str | None = None,
    dataset: str | None = None,
    subsample_classes: int | None = None,
    upscale: bool = False,
    seed: int | None = None,
    like: Subject | None = None,
    device: torch.device | str = "cpu",
) -> Subject:
    """Load ``path`` into a freshly built model (see the module docstring).

    ``like``: a plain file is rebuilt in that model's shape (its architecture, dataset, classes and
    input size): an initialization or checkpoint compared with it.
    """
    if like is not None:
        arch, dataset = arch or like.arch, dataset or like.dataset
    path = Path(path)
    checkpoint = load_checkpoint(path)
    if not is_reference_file(checkpoint):
        stored_args = checkpoint.get("args") or {}
        _check_agrees("arch", arch, checkpoint["arch"], path)
        _check_agrees("dataset", dataset, checkpoint.get("dataset"), path)
        if subsample_classes:
            _check_agrees("subsample-classes", subsample_classes, stored_args.get("subsample_classes"), path)
        arch, dataset = checkpoint["arch"], checkpoint["dataset"]
        shape = (checkpoint["num_classes"], checkpoint["in_channels"], checkpoint["image_size"])
        epoch, seed, args = checkpoint.get("epoch"), checkpoint.get("seed", seed), stored_args
        data_facts, reference = checkpoint.get("data") or {}, False
    else:
        if arch is None or dataset is None:
            raise UserError(f"{path} holds plain weights without a description; pass --arch and --dataset")
        shape = (like.num_classes, like.in_channels, like.image_size) if like is not None else \
            model_shape(dataset, subsample_classes=subsample_classes or 0, upscale=upscale)
        epoch, args, data_facts, reference = reference_epoch(path), {}, {}, True
    model = get_model(arch, shape[0], shape[1], image_size=shape[2], check_input=False,
                      options=model_options(args or (like.args if like is not None else {})))  # a convnet's shape
    load_model_state(model, checkpoint["model_state_dict"], source=str(path))
    device = torch.device(device)
    metrics = {} if reference else checkpoint.get("metrics") or {}
    return Subject(model.to(device).eval(), arch, dataset, *shape, epoch, seed, source=SNAPSHOT, path=path, args=args,
                   data_facts=data_facts, metrics=metrics, reference=reference, device=device)


def fresh_model(
    arch: str,
    dataset: str,
    *,
    pretrained: bool = False,
    seed: int | None = None,
    subsample_classes: int = 0,
    upscale: bool = False,
    download: bool = False,
    check_input: bool = True,
    device: torch.device | str = "cpu",
) -> Subject:
    """The zoo's pretrained weights (epoch -1) or one random initialization seeded by ``seed`` (epoch 0)."""
    num_classes, in_channels, image_size = model_shape(dataset, subsample_classes=subsample_classes, upscale=upscale)
    if seed is not None:
        torch.manual_seed(seed)
    model = get_model(arch, num_classes, in_channels, pretrained, image_size=image_size, download=download,
                      check_input=check_input)
    epoch, source = (PRETRAINED_EPOCH, PRETRAINED) if pretrained else (0, INIT)
    device = torch.device(device)
    return Subject(model.to(device).eval(), arch, dataset, num_classes, in_channels, image_size, epoch, seed,
                   source=source, device=device)


# -- the initialization ----------------------------------------------------------------------------
class Initializations:
    """The initialization each model is compared with, each file loaded once.

    An explicit ``--init-from`` that does not fit is an error; the run's own epoch-0 snapshot (the
    default) that does not fit is skipped with a warning.
    """

    def __init__(self, settings: InitSettings, device: torch.device) -> None:
        self.settings, self.device = settings, device
        self._cache: dict[Path, Subject | None] = {}

    def __call__(self, subject: Subject) -> tuple[Path | None, Subject | None]:
        path, explicit = self._path_for(subject)
        if path is None:
            return None, None
        if path not in self._cache:
            try:
                self._cache[path] = self._load(path, subject)
            except UserError as err:
                if explicit:
                    raise
                logger.warning("not comparing with %s: %s (pass --init-from or --no-init)", path, err)
                self._cache[path] = None
        return (path, self._cache[path]) if self._cache[path] is not None else (None, None)

    def _path_for(self, subject: Subject) -> tuple[Path | None, bool]:
        """``(path, explicit)``: --init-from (a file, or a run directory's epoch-0 snapshot), else the
        snapshot's own run's epoch-0 snapshot when there is one; nothing with --no-init."""
        if self.settings.no_init:
            return None, False
        if not self.settings.init_from:
            return (run_init_snapshot(subject.path.parent, subject.arch) if subject.path is not None else None), False
        given = Path(self.settings.init_from)
        if not given.is_dir():
            return given, True
        found = run_init_snapshot(given, subject.arch)
        if found is None:
            raise UserError(f"--init-from {given} is a folder without an epoch-0 snapshot; give the snapshot file")
        return found, True

    def _load(self, path: Path, subject: Subject) -> Subject:
        """The initialization at ``path``; a plain file is built like ``subject`` (classes, input size)."""
        init = load_snapshot_model(path, like=subject, device=self.device)
        logger.info("initialization: %s (epoch %s)", path, init.epoch)
        return init


def run_init_snapshot(run_dir: Path, arch: str) -> Path | None:
    """The epoch-0 snapshot of a run directory (``<arch>_epoch0000.pt`` or the reference's
    ``*_init*``), preferring names that start with the architecture."""
    try:
        snapshots = resolve_snapshots(run_dir)
    except UserError:
        return None
    initial = [path for path in snapshots if snapshot_sort_epoch(path) == 0]
    initial.sort(key=lambda path: not path.name.startswith(f"{arch}_"))
    return initial[0] if initial else None
