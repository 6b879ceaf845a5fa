"""Diffusion Spectral Entropy DSE(Z), DSMI(Z; Y) with the labels and CSE(Z) of a representation.

Z is, by default, the penultimate representation (the input of the last linear layer; ``layer``
names any module, whose output is used), measured on the fixed probe set (``analyses.probe``).
Definitions and defaults match the ``dse-dsmi`` package (math: ``metrics/dse.py``). The summary
holds every result file of the folder measured with the same settings, because train.py adds one
file per snapshot as training goes.
"""
from __future__ import annotations

import argparse
import math
import re
import time
from dataclasses import dataclass

import numpy as np
import torch

import schema
from analyses.base import SUMMARY_OF_FOLDER, Analysis, logger, or_nan
from analyses.probe import probe_record
from analyses.registry import Declaration
from analyses.snapshots import SnapshotAnalysis
from analyses.subject import Subject
from metrics.dse import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from metrics.embeddings import collect_embeddings
from metrics.hsic import median_bandwidth, squared_distances
from utils.errors import require

VALUES = ("dse", "dsmi_y", "cse")  # DSE(Z), DSMI(Z; Y), CSE(Z), in bits
DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 0
DEFAULT_SIGMA = 10.0
DEFAULT_T = 1.0
MAX_N = 10000  # the reference's cap; probes above it are subsampled by its seeded draw
AUTO = "auto"  # sigma: the median pairwise distance of the probe's representation, per measurement
SUMMARY = schema.SummarySpec(
    "dse_summary", constants=("settings", "layer", "hook", "feature_dim", ("probe", ("split", "size", "seed")),
                              "log2_size"), values=(*VALUES, "sigma_used"))


def sigma_value(text: str) -> float | str:
    """``--dse-sigma``: a bandwidth, or ``auto``."""
    if text == AUTO:
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid sigma {text!r}: give a positive number or auto") from None


def auto_sigma(features: torch.Tensor) -> float:
    """The median distance between the probe's representations (nonzero pairs; metrics.hsic's median)."""
    return median_bandwidth(squared_distances(features))


@dataclass(frozen=True)
class DSESettings:
    """How DSE is measured; stored in every result file and compared when summaries are built."""

    samples: int = DEFAULT_SAMPLES
    seed: int = DEFAULT_SEED  # seeds the probe draw and the metrics' own draws (DSMI subsets)
    sigma: float | str = DEFAULT_SIGMA  # or "auto"
    t: float = DEFAULT_T
    layer: str | None = None  # None: the input of the last nn.Linear
    max_n: int = MAX_N
    batch_size: int = 256

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """compute_dse.py's flags (``--batch-size`` is the CLI's own)."""
        parser.add_argument("--layer", default=None, help="Module whose (flattened) output is the representation, e.g. classifier.3 [default = the input of the last linear layer, the penultimate representation].")
        parser.add_argument("--dse-samples", type=int, default=DEFAULT_SAMPLES, help=f"Number of probe samples, drawn from the validation split, else the test split [default = {DEFAULT_SAMPLES}].")
        parser.add_argument("--dse-seed", type=int, default=DEFAULT_SEED, help=f"Seed of the probe draw and of DSMI's random subsets (train.py uses the same) [default = {DEFAULT_SEED}].")
        parser.add_argument("--sigma", "--dse-sigma", type=sigma_value, default=DEFAULT_SIGMA, help=f"Gaussian kernel bandwidth, or auto: the median pairwise distance of the probe's representation, so that runs of different scale compare [default = {DEFAULT_SIGMA:g}, as dse-dsmi].")
        parser.add_argument("--t", "--dse-t", type=float, default=DEFAULT_T, help=f"Diffusion time: power of the eigenvalues [default = {DEFAULT_T:g}].")
        parser.add_argument("--max-n", type=int, default=MAX_N, help=f"Probes larger than this are subsampled with dse-dsmi's seeded draw [default = {MAX_N}].")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DSESettings:
        return cls(samples=args.dse_samples, seed=args.dse_seed, sigma=args.sigma, t=args.t, layer=args.layer,
                   max_n=args.max_n, batch_size=args.batch_size)

    @staticmethod
    def add_train_arguments(parser: argparse.ArgumentParser) -> None:
        """train.py's flags: DSE of the penultimate representation at every snapshot."""
        parser.add_argument("--dse-samples", type=int, default=DEFAULT_SAMPLES, help=f"Probe samples for DSE/DSMI/CSE at every snapshot, drawn once from the validation split (else the test set) [default = {DEFAULT_SAMPLES}].")
        parser.add_argument("--dse-seed", type=int, default=DEFAULT_SEED, help=f"Seed of the DSE probe draw and of DSMI's random subsets [default = {DEFAULT_SEED}].")
        parser.add_argument("--dse-sigma", type=sigma_value, default=DEFAULT_SIGMA, help=f"Gaussian kernel bandwidth of DSE, or auto: the median pairwise distance of the probe's representation [default = {DEFAULT_SIGMA:g}].")
        parser.add_argument("--dse-t", type=float, default=DEFAULT_T, help=f"Diffusion time t of DSE (power of the eigenvalues) [default = {DEFAULT_T:g}].")
        parser.add_argument("--no-dse", action="store_true", help="Do not compute DSE/DSMI/CSE at each snapshot [default = computed].")

    @classmethod
    def from_train_args(cls, args: argparse.Namespace) -> DSESettings:
        return cls(samples=args.dse_samples, seed=args.dse_seed, sigma=args.dse_sigma, t=args.dse_t,
                   batch_size=getattr(args, "batch_size", 256))

    def validate(self) -> None:
        checks = [(self.samples >= 2, f"--dse-samples {self.samples} must be at least 2"),
                  (self.sigma == AUTO or self.sigma > 0,
                   f"the DSE sigma (--sigma/--dse-sigma) {self.sigma} must be positive (or auto)"),
                  (self.t > 0, f"the DSE diffusion time (--t/--dse-t) {self.t} must be positive"),
                  (self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1"),
                  (self.max_n >= 2, f"--max-n {self.max_n} must be at least 2")]
        require(checks)

    def record(self) -> dict:
        """What identifies comparable measurements (the batch size does not change results)."""
        sigma = AUTO if self.sigma == AUTO else float(self.sigma)
        return {"samples": self.samples, "seed": self.seed, "sigma": sigma, "t": float(self.t),
                "layer": self.layer, "max_n": self.max_n}

    def train_args(self) -> dict:
        """The ``args`` of the documents train.py writes."""
        return {f"dse_{key}": value for key, value in self.record().items()}


def measure_embeddings(model: torch.nn.Module, probe, settings: DSESettings, *, device: torch.device) -> dict:
    """``{"dse", "dsmi_y", "cse", "layer", "hook", "feature_dim", "seconds"}`` of ``model`` on ``probe`` (a Split)."""
    start = time.perf_counter()
    embeddings = collect_embeddings(model, probe.batches(settings.batch_size, device=device, shuffle=False),
                                    layer=settings.layer)
    features, labels = embeddings.features, np.asarray(probe.targets, dtype=np.int64)
    values, sigma = dict.fromkeys(VALUES, math.nan), None
    if bool(torch.isfinite(features).all()):
        sigma = auto_sigma(features) if settings.sigma == AUTO else float(settings.sigma)
        common = {"sigma": sigma, "t": settings.t, "max_n": settings.max_n, "seed": settings.seed}
        values = {
            "dse": diffusion_spectral_entropy(features, **common),
            "dsmi_y": diffusion_spectral_mutual_information(features, labels, reference_discrete=True, **common),
            "cse": diffusion_spectral_entropy(features, classic_shannon=True, max_n=settings.max_n, seed=settings.seed),
        }
    else:
        logger.warning("embeddings at %s contain NaN or inf; DSE, DSMI and CSE are recorded as null", embeddings.layer)
    return values | {"layer": embeddings.layer, "hook": embeddings.hook, "feature_dim": embeddings.feature_dim,
                     "sigma_used": sigma, "seconds": time.perf_counter() - start}


class DSE(Analysis):
    name = kind = "dse"
    summary = SUMMARY
    summary_scope = SUMMARY_OF_FOLDER
    needs_data = True

    @property
    def file_prefix(self) -> str:
        """``dse`` for the default representation, ``dse_layer-<module>`` for a named module."""
        layer = self.settings.layer
        return "dse" if layer is None else f"dse_layer-{re.sub(r'[^A-Za-z0-9]+', '-', layer)}"

    def measure(self, subject: Subject) -> dict:
        probe = subject.probe(self.settings.samples, self.settings.seed)
        return measure_embeddings(subject.model, probe, self.settings, device=subject.device) | {"probe": probe}

    def document(self, measured: dict, subject: Subject, args: dict) -> dict:
        """``dse_<stem>.json``: header, what was measured on which samples, the three values and,
        when the subject's data were decided from data settings, their conventions."""
        probe = measured["probe"]
        return subject.header(self.kind, args) | {
            "source": subject.source,
            "snapshot": str(subject.path) if subject.path is not None else None,
            "settings": self.settings.record(),
            "layer": measured["layer"],
            "hook": measured["hook"],
            "feature_dim": measured["feature_dim"],
            "num_classes": subject.num_classes,
            "probe": probe_record(probe, self.settings.seed),
            "log2_size": math.log2(len(probe)),  # the largest possible DSE and CSE on this probe
            **{key: measured[key] for key in VALUES},
            "sigma_used": measured["sigma_used"],  # the bandwidth of the kernel (settings.sigma, or auto's)
            "seconds": measured["seconds"],
        } | subject.conventions_record()

    def summary_match(self, document: dict) -> dict:
        return {"settings": document["settings"], "arch": document["arch"]}

    def log(self, document: dict, path) -> None:
        logger.info("%s (epoch %s, %s of %s, %d samples of %s): DSE(Z) %.4f  DSMI(Z;Y) %.4f  CSE(Z) %.4f bits "
                    "(max %.2f, %.2fs) -> %s", document["snapshot"] or document["source"], document["epoch"],
                    document["hook"], document["layer"], document["probe"]["size"], document["probe"]["split"],
                    or_nan(document["dse"]), or_nan(document["dsmi_y"]), or_nan(document["cse"]), document["log2_size"],
                    document["seconds"], path)

    def scalars(self, document: dict) -> dict:
        return {key: document[key] for key in VALUES}


# -- what the rest of the suite knows about this analysis -----------------------------------------------
def table_rows(run) -> list[tuple]:
    """DSE of the default representation (``settings.layer`` None), per snapshot, else from its summary."""
    default = [d for d in run.of_kind("dse") if d.get("epoch") is not None and (d.get("settings") or {}).get("layer") is None]
    rows = [(d["epoch"], "", m, d[m]) for d in default for m in VALUES if schema.finite(d.get(m))]
    summary = next((d for d in run.documents.get("dse_summary") or [] if (d.get("settings") or {}).get("layer") is None),
                   None)
    if rows or not summary:
        return rows
    return [(epoch, "", m, v) for m in VALUES for epoch, v in zip(summary["epochs"], summary.get(m) or [])
            if schema.finite(v)]


DECLARATION = Declaration(
    "dse", kinds=("dse", "dse_summary"), cli="compute_dse.py", table_rows=table_rows, metrics=VALUES,
    train_arguments=DSESettings.add_train_arguments,
    train_analyzer=lambda args: None if args.no_dse else SnapshotAnalysis(DSE(DSESettings.from_train_args(args))),
    compared_as="DSE")
