"""Snapshot analyzer: DSE(Z), DSMI(Z; Y) and CSE(Z) of a representation on a fixed probe set.

At every snapshot (epoch 0 included) ``train.py`` embeds the probe set (``--dse-samples`` samples
of the validation split, or of the test split when there is none, drawn once with ``--dse-seed``:
the same samples for every snapshot, and for ``compute_dse.py`` on the same run), computes
``metrics.dse`` on the penultimate representation Z with the true labels Y, writes
``dse_<snapshot-stem>.json`` into the run's results folder, refreshes ``dse_summary.json`` (values
per epoch) and returns ``{"dse", "dsmi_y", "cse"}`` (TensorBoard ``dse/<key>``, run.json).

The probe, the measurement and the result documents live here so that ``compute_dse.py``
produces the same numbers and files for existing snapshots.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metrics.dse import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from metrics.embeddings import collect_embeddings
from utils.errors import UserError
from utils.results import matching_results, result_header, write_result

logger = logging.getLogger(__name__)

RESULT_KIND = "dse"
SUMMARY_KIND = "dse_summary"
VALUES = ("dse", "dsmi_y", "cse")  # DSE(Z), DSMI(Z; Y), CSE(Z), in bits
DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_SIGMA = 10.0
DEFAULT_T = 1.0
MAX_N = 10000  # the reference's cap; probes above it are subsampled by its seeded draw


@dataclass(frozen=True)
class DSESettings:
    """How DSE is measured; stored in every result file and compared when summaries are built."""

    samples: int = DEFAULT_SAMPLES
    seed: int = DEFAULT_SEED  # seeds the probe draw and the metrics' own draws (DSMI subsets)
    sigma: float = DEFAULT_SIGMA
    t: float = DEFAULT_T
    layer: str | None = None  # None: the input of the last nn.Linear
    max_n: int = MAX_N
    batch_size: int = 256

    def validate(self) -> None:
        checks = [(self.samples >= 2, f"--dse-samples {self.samples} must be at least 2"),
                  (self.sigma > 0, f"the DSE sigma (--sigma/--dse-sigma) {self.sigma} must be positive"),
                  (self.t > 0, f"the DSE diffusion time (--t/--dse-t) {self.t} must be positive"),
                  (self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1"),
                  (self.max_n >= 2, f"--max-n {self.max_n} must be at least 2")]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def record(self) -> dict:
        """What identifies comparable measurements (the batch size does not change results)."""
        return {"samples": self.samples, "seed": self.seed, "sigma": float(self.sigma), "t": float(self.t),
                "layer": self.layer, "max_n": self.max_n}

    @property
    def file_prefix(self) -> str:
        """``dse`` for the default representation, ``dse_layer-<module>`` for a named module."""
        return "dse" if self.layer is None else f"dse_layer-{re.sub(r'[^A-Za-z0-9]+', '-', self.layer)}"


# -- the probe set ---------------------------------------------------------------------------------
def probe_positions(size: int, samples: int, seed: int) -> np.ndarray:
    """Positions (ascending) of ``samples`` of ``size`` drawn without replacement by ``default_rng(seed)``;
    every position when ``samples >= size``."""
    if samples >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, size=samples, replace=False))


def probe_split(data, samples: int, seed: int):
    """The probe: a fixed subset of ``data.val`` (a ``datasets.DataBundle``), else of ``data.test``."""
    split = data.val if data.val is not None else data.test
    if len(split) < 2:
        raise UserError(f"the {split.name} split has {len(split)} sample(s); DSE needs at least 2")
    positions = probe_positions(len(split), samples, seed)
    return dataclasses.replace(split, indices=split.indices[positions], targets=split.targets[positions],
                               _device_images={})


# -- the measurement -------------------------------------------------------------------------------
def measure(model: torch.nn.Module, probe, settings: DSESettings, *, device: torch.device) -> dict:
    """``{"dse", "dsmi_y", "cse", "layer", "hook", "feature_dim", "seconds"}`` of ``model`` on ``probe`` (a Split)."""
    start = time.perf_counter()
    embeddings = collect_embeddings(model, probe.batches(settings.batch_size, device=device, shuffle=False),
                                    layer=settings.layer)
    features, labels = embeddings.features, np.asarray(probe.targets, dtype=np.int64)
    values = dict.fromkeys(VALUES, math.nan)
    if bool(torch.isfinite(features).all()):
        common = {"sigma": settings.sigma, "t": settings.t, "max_n": settings.max_n, "seed": settings.seed}
        values = {
            "dse": diffusion_spectral_entropy(features, **common),
            "dsmi_y": diffusion_spectral_mutual_information(features, labels, reference_discrete=True, **common),
            "cse": diffusion_spectral_entropy(features, classic_shannon=True, max_n=settings.max_n, seed=settings.seed),
        }
    else:
        logger.warning("embeddings at %s contain NaN or inf; DSE, DSMI and CSE are recorded as null", embeddings.layer)
    return values | {"layer": embeddings.layer, "hook": embeddings.hook, "feature_dim": embeddings.feature_dim,
                     "seconds": time.perf_counter() - start}


# -- result documents ------------------------------------------------------------------------------
def probe_record(probe, seed: int) -> dict:
    """Which samples were measured: the split, their number, the seed of the draw and their indices
    into the dataset (summaries keep all but the indices)."""
    return {"split": probe.name, "size": len(probe), "seed": seed, "indices": [int(i) for i in probe.indices]}


def result_document(measured: dict, probe, settings: DSESettings, *, arch: str, dataset: str, seed, epoch,
                    snapshot: Path | None, source: str, num_classes: int, args: dict) -> dict:
    """``dse_<stem>.json``: header, what was measured on which samples, and the three values."""
    document = result_header(RESULT_KIND, arch=arch, dataset=dataset, seed=seed, epoch=epoch, args=args)
    document |= {
        "source": source,
        "snapshot": str(snapshot) if snapshot is not None else None,
        "settings": settings.record(),
        "layer": measured["layer"],
        "hook": measured["hook"],
        "feature_dim": measured["feature_dim"],
        "num_classes": num_classes,
        "probe": probe_record(probe, settings.seed),
        "log2_size": math.log2(len(probe)),  # the largest possible DSE and CSE on this probe
        **{key: measured[key] for key in VALUES},
        "seconds": measured["seconds"],
    }
    return document


def result_path(out_dir: Path, settings: DSESettings, stem: str) -> Path:
    return Path(out_dir) / f"{settings.file_prefix}_{stem}.json"


def write_summary(out_dir: Path, settings: DSESettings, *, arch: str, args: dict) -> Path | None:
    """``<prefix>_summary.json`` from every result file in ``out_dir`` measured like ``settings``, by epoch."""
    rows = matching_results(out_dir, settings.file_prefix, kind=RESULT_KIND, settings=settings.record(), arch=arch)
    if not rows:
        return None
    return write_result(Path(out_dir) / f"{settings.file_prefix}_summary.json",
                        summary_document([document for _, document in rows], [p.name for p, _ in rows], args))


def summary_document(documents: list[dict], files: list[str], args: dict) -> dict:
    """Values per snapshot, in epoch order: ``epochs``, ``dse``, ``dsmi_y``, ``cse`` are parallel lists."""
    first = documents[0]
    summary = result_header(SUMMARY_KIND, arch=first["arch"], dataset=first["dataset"], seed=first["seed"],
                            epoch=None, args=args)
    summary |= {
        "settings": first["settings"],
        "layer": first["layer"],
        "hook": first["hook"],
        "feature_dim": first["feature_dim"],
        "probe": {key: first["probe"][key] for key in ("split", "size", "seed")},
        "log2_size": first["log2_size"],
        "epochs": [document["epoch"] for document in documents],
        "files": files,
        "snapshots": [document["snapshot"] for document in documents],
        **{key: [document[key] for document in documents] for key in VALUES},
    }
    return summary


# -- the train.py hook -----------------------------------------------------------------------------
class ProbeAnalyzer:
    """Base of the snapshot analyzers that measure a fixed probe of the data: ``settings.samples``
    samples drawn with ``settings.seed`` (see :func:`probe_split`), once per run."""

    def __init__(self, settings) -> None:
        settings.validate()
        self.settings = settings
        self._probe = None
        self._probe_of = None

    def probe(self, data):
        if self._probe_of is not data:
            self._probe, self._probe_of = probe_split(data, self.settings.samples, self.settings.seed), data
        return self._probe


class DSEAnalyzer(ProbeAnalyzer):
    """Implements ``training.analyzers.SnapshotAnalyzer``; the probe is drawn once per run."""

    name = "dse"

    def __init__(self, settings: DSESettings | None = None) -> None:
        super().__init__(settings or DSESettings())

    def analyze(self, context) -> dict:
        """Measure ``context.model``, write ``dse_<stem>.json`` and the summary; return the three values."""
        probe = self.probe(context.data)
        measured = measure(context.model, probe, self.settings, device=context.device)
        dataset = context.data.spec.name
        document = result_document(measured, probe, self.settings, arch=context.arch, dataset=dataset,
                                   seed=context.seed, epoch=context.epoch, snapshot=Path(context.snapshot_path),
                                   source="training", num_classes=context.data.num_classes, args=self.args())
        write_result(result_path(context.results_dir, self.settings, Path(context.snapshot_path).stem), document)
        write_summary(context.results_dir, self.settings, arch=context.arch, args=self.args())
        logger.info("DSE(Z) %.4f  DSMI(Z;Y) %.4f  CSE(Z) %.4f bits at epoch %s (%d samples, %s, %.2fs)",
                    measured["dse"], measured["dsmi_y"], measured["cse"], context.epoch, len(probe),
                    measured["layer"], measured["seconds"])
        return {key: measured[key] for key in VALUES}

    def args(self) -> dict:
        return {f"dse_{key}": value for key, value in self.settings.record().items()}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dse-samples", type=int, default=DEFAULT_SAMPLES, help=f"Probe samples for DSE/DSMI/CSE at every snapshot, drawn once from the validation split (else the test set) [default = {DEFAULT_SAMPLES}].")
    parser.add_argument("--dse-seed", type=int, default=DEFAULT_SEED, help=f"Seed of the DSE probe draw and of DSMI's random subsets [default = {DEFAULT_SEED}].")
    parser.add_argument("--dse-sigma", type=float, default=DEFAULT_SIGMA, help=f"Gaussian kernel bandwidth of DSE [default = {DEFAULT_SIGMA:g}].")
    parser.add_argument("--dse-t", type=float, default=DEFAULT_T, help=f"Diffusion time t of DSE (power of the eigenvalues) [default = {DEFAULT_T:g}].")
    parser.add_argument("--no-dse", action="store_true", help="Do not compute DSE/DSMI/CSE at each snapshot [default = computed].")


def analyzer_from_args(args: argparse.Namespace) -> DSEAnalyzer | None:
    if getattr(args, "no_dse", False):
        return None
    settings = DSESettings(samples=args.dse_samples, seed=args.dse_seed, sigma=args.dse_sigma, t=args.dse_t,
                           batch_size=getattr(args, "batch_size", 256))
    return DSEAnalyzer(settings)
