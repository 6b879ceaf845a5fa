"""The HSIC information plane of every conv, linear and attention layer on the DSE probe set.

For each conv/linear module and each ``nn.MultiheadAttention`` (one layer: its output, which is its
``out_proj``'s; forward order, 1x1 convs included) its flattened output ``T`` on the
probe gives ``HSIC(T, X)`` with the flattened inputs and ``HSIC(T, Y)`` with one-hot labels, and
both normalized (math: ``metrics/hsic.py``). Memory: one layer's outputs ``(m, features)`` at a time,
plus three ``m x m`` float64 matrices. Like DSE, the summary holds the folder's matching files.
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

import schema
from analyses.base import SUMMARY_OF_FOLDER, Analysis, log_written, model_label, or_nan
from analyses.dse import DEFAULT_SAMPLES, DEFAULT_SEED
from analyses.probe import probe_record
from analyses.registry import HELD_OUT, Declaration, Measure
from analyses.snapshots import SnapshotAnalysis
from analyses.subject import Subject
from metrics.embeddings import collect_embeddings
from metrics.hsic import CenteredKernel, information_plane, one_hot
from metrics.layers import enumerate_layers
from utils.errors import require

logger = logging.getLogger(__name__)

LAYER_VALUES = ("hsic_x", "hsic_y", "nhsic_x", "nhsic_y", "sigma")
LAYER_FIELDS = ("name", "kind", "stage", "block", "index")
SUMMARY = schema.SummarySpec(
    "hsic_summary", constants=("settings", ("probe", ("split", "size", "seed"))), values=("sigma_x", "sigma_y"),
    layer_fields=(*LAYER_FIELDS, "feature_dim"), layer_metrics=LAYER_VALUES)


@dataclass(frozen=True)
class HSICSettings:
    """How HSIC is measured; stored in every result file and compared when summaries are built."""

    samples: int = DEFAULT_SAMPLES  # the DSE probe
    seed: int = DEFAULT_SEED
    sigma: float | None = None  # None: the median heuristic, per kernel
    normalized: bool = False  # which pair train.py logs and plot_results draws
    batch_size: int = 256

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """``--hsic``, ``--hsic-sigma``, ``--hsic-normalized`` (train.py and compute_dse.py)."""
        parser.add_argument("--hsic", action="store_true", help="Also compute the HSIC information plane (HSIC(T, X), HSIC(T, Y)) of every conv, linear and attention layer's output on the DSE probe set [default = off].")
        parser.add_argument("--hsic-sigma", type=float, default=None, help="Bandwidth of the Gaussian kernels of HSIC (inputs, labels and layers) [default = the median heuristic, per kernel].")
        parser.add_argument("--hsic-normalized", action="store_true", help="Log and plot normalized HSIC, HSIC(A,B)/sqrt(HSIC(A,A) HSIC(B,B)) (both are stored) [default = off: the biased estimator].")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HSICSettings:
        """The probe is the DSE probe: ``--dse-samples`` drawn with ``--dse-seed``."""
        return cls(samples=args.dse_samples, seed=args.dse_seed, sigma=args.hsic_sigma, normalized=args.hsic_normalized,
                   batch_size=getattr(args, "batch_size", 256))

    def validate(self) -> None:
        checks = [(self.samples >= 2, f"--dse-samples {self.samples} must be at least 2 for HSIC"),
                  (self.sigma is None or self.sigma > 0, f"--hsic-sigma {self.sigma} must be positive"),
                  (self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1")]
        require(checks)

    def record(self) -> dict:
        return {"samples": self.samples, "seed": self.seed,
                "sigma": float(self.sigma) if self.sigma is not None else None, "normalized": self.normalized}

    def train_args(self) -> dict:
        """The ``args`` of the documents train.py writes."""
        return {f"hsic_{key}": value for key, value in self.record().items()}

    @property
    def plane_keys(self) -> tuple[str, str]:
        """The (x, y) values of the information plane: normalized or not."""
        return ("nhsic_x", "nhsic_y") if self.normalized else ("hsic_x", "hsic_y")


def measure_layers(model: torch.nn.Module, probe, settings: HSICSettings, *, device: torch.device,
                   input_shape: tuple[int, ...], num_classes: int) -> dict:
    """``{"layers": [per-layer record], "sigma_x", "sigma_y", "seconds"}`` of ``model`` on ``probe`` (a Split)."""
    start = time.perf_counter()

    def batches():
        return probe.batches(settings.batch_size, device=device, shuffle=False)

    inputs = torch.cat([batch for batch, _ in batches()])
    labels = one_hot(torch.as_tensor(np.asarray(probe.targets, dtype=np.int64), device=inputs.device), num_classes)
    reference_x = CenteredKernel.of(inputs, settings.sigma)
    reference_y = CenteredKernel.of(labels, settings.sigma)
    records = []
    for layer in enumerate_layers(model, input_shape, include_1x1=True, with_linear=True, with_attention=True):
        embeddings = collect_embeddings(model, batches(), layer=layer.name)
        values = dict.fromkeys(LAYER_VALUES)
        if bool(torch.isfinite(embeddings.features).all()):
            values = information_plane(embeddings.features, reference_x, reference_y, sigma=settings.sigma)
            values.pop("hsic_self")
        else:
            logger.warning("outputs of %s contain NaN or inf; its HSIC values are recorded as null", layer.name)
        records.append({key: getattr(layer, key) for key in LAYER_FIELDS}
                       | {"feature_dim": embeddings.feature_dim} | values)
    return {"layers": records, "sigma_x": reference_x.sigma, "sigma_y": reference_y.sigma,
            "seconds": time.perf_counter() - start}


class HSIC(Analysis):
    name = kind = "hsic"
    summary = SUMMARY
    summary_scope = SUMMARY_OF_FOLDER
    summary_needs_epoch = True
    needs_data = True

    def measure(self, subject: Subject) -> dict:
        probe = subject.probe(self.settings.samples, self.settings.seed)
        return measure_layers(subject.model, probe, self.settings, device=subject.device,
                              input_shape=subject.input_shape, num_classes=subject.num_classes) | {"probe": probe}

    def document(self, measured: dict, subject: Subject, args: dict) -> dict:
        """``hsic_<stem>.json``: header, the probe, the bandwidths of X and Y, one record per layer and,
        when the subject's data were decided from data settings, their conventions."""
        return subject.header(self.kind, args) | {
            "source": subject.source,
            "snapshot": str(subject.path) if subject.path is not None else None,
            "settings": self.settings.record(),
            "num_classes": subject.num_classes,
            "probe": probe_record(measured["probe"], self.settings.seed),
            "sigma_x": measured["sigma_x"],
            "sigma_y": measured["sigma_y"],
            "layers": measured["layers"],
            "seconds": measured["seconds"],
        } | subject.conventions_record()

    def summary_match(self, document: dict) -> dict:
        return {"settings": document["settings"], "arch": document["arch"]}

    def log(self, document: dict, path) -> None:
        key_x, key_y = self.settings.plane_keys
        log_written(logger, f"{model_label(document)} (epoch {document['epoch']}): HSIC information plane "
                    f"({key_x}, {key_y}) on {document['probe']['size']} samples ({document['seconds']:.2f}s)", path)
        for layer in document["layers"]:
            logger.info("  %-22s %8d features  x %.4g  y %.4g", layer["name"], layer["feature_dim"],
                        or_nan(layer[key_x]), or_nan(layer[key_y]))

    def scalars(self, document: dict) -> dict:
        """``{"<module>/x": HSIC(T, X), "<module>/y": HSIC(T, Y)}`` (normalized with ``normalized``)."""
        key_x, key_y = self.settings.plane_keys
        values = {}
        for layer in document["layers"]:
            values[f"{layer['name']}/x"], values[f"{layer['name']}/y"] = layer[key_x], layer[key_y]
        return values


# -- what the rest of the suite knows about this analysis -----------------------------------------------
TABLE_METRICS = ("hsic_x", "hsic_y")


def table_rows(run) -> list[tuple]:
    return schema.layered_rows(run.of_kind("hsic"), TABLE_METRICS, run.summary("hsic_summary"))


# For the ranking of measures (comparison/measures.py): what each measure is, and its expected sign (on the
# DSE probe: held-out images).
MEASURES = {
    "hsic_x": Measure(0, "mean over layers of HSIC(T, X)", "information bottleneck debate: no agreed sign",
                      reads=HELD_OUT),
    "hsic_y": Measure(+1, "mean over layers of HSIC(T, Y)", "HSIC bottleneck (Ma et al. 2020)", reads=HELD_OUT),
}


DECLARATION = Declaration(
    "hsic", kinds=("hsic", "hsic_summary"), cli="compute_dse.py", table_rows=table_rows, metrics=TABLE_METRICS,
    sweep_train_flags=("--hsic",),  # per snapshot, during training (like DSE)
    train_arguments=HSICSettings.add_arguments,
    train_analyzer=lambda args: SnapshotAnalysis(HSIC(HSICSettings.from_args(args))) if args.hsic else None,
    measures=MEASURES)
