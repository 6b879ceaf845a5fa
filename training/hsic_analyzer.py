"""Snapshot analyzer: the HSIC information plane of every conv and linear layer on the DSE probe set.

For each conv/linear module (``metrics.layers.enumerate_layers``, forward order, 1x1 convs
included) its flattened output ``T`` on the probe set (the DSE probe: ``--dse-samples`` samples of
the validation split, else the test split, drawn with ``--dse-seed``) gives ``HSIC(T, X)`` with the
flattened inputs and ``HSIC(T, Y)`` with one-hot labels, and both normalized (``metrics.hsic``).
``train.py --hsic`` runs it at every snapshot (opt-in: one forward pass over the probe per layer and
an ``m x m`` kernel per layer), writing ``hsic_<stem>.json`` and refreshing ``hsic_summary.json``;
``compute_dse.py --hsic`` writes the same files for existing snapshots.

Memory: one layer's outputs ``(m, features)`` at a time (plus three ``m x m`` float64 matrices).
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metrics.embeddings import collect_embeddings
from metrics.hsic import KernelReference, information_plane, one_hot
from metrics.layers import enumerate_layers
from training.dse_analyzer import DEFAULT_SAMPLES, DEFAULT_SEED, ProbeAnalyzer, probe_record
from utils.errors import UserError
from utils.results import layers_by_epoch, matching_results, result_header, write_result

logger = logging.getLogger(__name__)

RESULT_KIND = "hsic"
SUMMARY_KIND = "hsic_summary"
FILE_PREFIX = "hsic"
LAYER_VALUES = ("hsic_x", "hsic_y", "nhsic_x", "nhsic_y", "sigma")
LAYER_FIELDS = ("name", "kind", "stage", "block", "index")


@dataclass(frozen=True)
class HSICSettings:
    """How HSIC is measured; stored in every result file and compared when summaries are built."""

    samples: int = DEFAULT_SAMPLES  # the DSE probe
    seed: int = DEFAULT_SEED
    sigma: float | None = None  # None: the median heuristic, per kernel
    normalized: bool = False  # which pair train.py logs and plot_results draws
    batch_size: int = 256

    def validate(self) -> None:
        checks = [(self.samples >= 2, f"--dse-samples {self.samples} must be at least 2 for HSIC"),
                  (self.sigma is None or self.sigma > 0, f"--hsic-sigma {self.sigma} must be positive"),
                  (self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1")]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def record(self) -> dict:
        return {"samples": self.samples, "seed": self.seed,
                "sigma": float(self.sigma) if self.sigma is not None else None, "normalized": self.normalized}

    @property
    def plane_keys(self) -> tuple[str, str]:
        """The (x, y) values of the information plane: normalized or not."""
        return ("nhsic_x", "nhsic_y") if self.normalized else ("hsic_x", "hsic_y")


# -- the measurement -------------------------------------------------------------------------------
def measure(model: torch.nn.Module, probe, settings: HSICSettings, *, device: torch.device,
            input_shape: tuple[int, ...], num_classes: int) -> dict:
    """``{"layers": [per-layer record], "sigma_x", "sigma_y", "seconds"}`` of ``model`` on ``probe`` (a Split)."""
    start = time.perf_counter()

    def batches():
        return probe.batches(settings.batch_size, device=device, shuffle=False)

    inputs = torch.cat([batch for batch, _ in batches()])
    labels = one_hot(torch.as_tensor(np.asarray(probe.targets, dtype=np.int64), device=inputs.device), num_classes)
    reference_x = KernelReference.of(inputs, settings.sigma)
    reference_y = KernelReference.of(labels, settings.sigma)
    records = []
    for layer in enumerate_layers(model, input_shape, include_1x1=True, with_linear=True):
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


# -- result documents ------------------------------------------------------------------------------
def result_document(measured: dict, probe, settings: HSICSettings, *, arch: str, dataset: str, seed, epoch,
                    snapshot: Path | None, source: str, num_classes: int, args: dict) -> dict:
    """``hsic_<stem>.json``: header, the probe, the bandwidths of X and Y, one record per layer."""
    document = result_header(RESULT_KIND, arch=arch, dataset=dataset, seed=seed, epoch=epoch, args=args)
    document |= {
        "source": source,
        "snapshot": str(snapshot) if snapshot is not None else None,
        "settings": settings.record(),
        "num_classes": num_classes,
        "probe": probe_record(probe, settings.seed),
        "sigma_x": measured["sigma_x"],
        "sigma_y": measured["sigma_y"],
        "layers": measured["layers"],
        "seconds": measured["seconds"],
    }
    return document


def result_path(out_dir: Path, stem: str) -> Path:
    return Path(out_dir) / f"{FILE_PREFIX}_{stem}.json"


def write_summary(out_dir: Path, settings: HSICSettings, *, arch: str, args: dict) -> Path | None:
    """``hsic_summary.json`` from every ``hsic_*.json`` in ``out_dir`` measured like ``settings``, by epoch."""
    rows = [(path, document) for path, document in matching_results(
        out_dir, FILE_PREFIX, kind=RESULT_KIND, settings=settings.record(), arch=arch) if document["epoch"] is not None]
    if not rows:
        return None
    return write_result(Path(out_dir) / f"{FILE_PREFIX}_summary.json",
                        summary_document([document for _, document in rows], [p.name for p, _ in rows], args))


def summary_document(documents: list[dict], files: list[str], args: dict) -> dict:
    """``metrics[<value>][layer][epoch]`` matrices (null where a snapshot lacks the layer) in epoch order."""
    first = documents[0]
    layers, matrices = layers_by_epoch([document["layers"] for document in documents], (*LAYER_FIELDS, "feature_dim"),
                                       LAYER_VALUES)
    summary = result_header(SUMMARY_KIND, arch=first["arch"], dataset=first["dataset"], seed=first["seed"],
                            epoch=None, args=args)
    summary |= {
        "settings": first["settings"],
        "probe": {key: first["probe"][key] for key in ("split", "size", "seed")},
        "epochs": [document["epoch"] for document in documents],
        "files": files,
        "snapshots": [document["snapshot"] for document in documents],
        "sigma_x": [document["sigma_x"] for document in documents],
        "sigma_y": [document["sigma_y"] for document in documents],
        "layers": layers,
        "metrics": matrices,
    }
    return summary


# -- the train.py hook -----------------------------------------------------------------------------
class HSICAnalyzer(ProbeAnalyzer):
    """Implements ``training.analyzers.SnapshotAnalyzer``; the probe is the DSE analyzer's, drawn once per run."""

    name = "hsic"

    def __init__(self, settings: HSICSettings | None = None) -> None:
        super().__init__(settings or HSICSettings())

    def analyze(self, context) -> dict:
        """Measure ``context.model``, write ``hsic_<stem>.json`` and the summary; return
        ``{"<module>/x": HSIC(T, X), "<module>/y": HSIC(T, Y)}`` (normalized with ``normalized``)."""
        data = context.data
        probe = self.probe(data)
        measured = measure(context.model, probe, self.settings, device=context.device,
                           input_shape=(data.in_channels, data.image_size, data.image_size),
                           num_classes=data.num_classes)
        document = result_document(measured, probe, self.settings, arch=context.arch, dataset=data.spec.name,
                                   seed=context.seed, epoch=context.epoch, snapshot=Path(context.snapshot_path),
                                   source="training", num_classes=data.num_classes, args=self.args())
        write_result(result_path(context.results_dir, Path(context.snapshot_path).stem), document)
        write_summary(context.results_dir, self.settings, arch=context.arch, args=self.args())
        logger.info("HSIC information plane of %d layers at epoch %s (%d samples, %.2fs)", len(measured["layers"]),
                    context.epoch, len(probe), measured["seconds"])
        key_x, key_y = self.settings.plane_keys
        values = {}
        for layer in measured["layers"]:
            values[f"{layer['name']}/x"], values[f"{layer['name']}/y"] = layer[key_x], layer[key_y]
        return values

    def args(self) -> dict:
        return {f"hsic_{key}": value for key, value in self.settings.record().items()}


def add_hsic_arguments(parser: argparse.ArgumentParser) -> None:
    """``--hsic``, ``--hsic-sigma``, ``--hsic-normalized`` (train.py and compute_dse.py)."""
    parser.add_argument("--hsic", action="store_true", help="Also compute the HSIC information plane (HSIC(T, X), HSIC(T, Y)) of every conv and linear layer's output on the DSE probe set [default = off].")
    parser.add_argument("--hsic-sigma", type=float, default=None, help="Bandwidth of the Gaussian kernels of HSIC (inputs, labels and layers) [default = the median heuristic, per kernel].")
    parser.add_argument("--hsic-normalized", action="store_true", help="Log and plot normalized HSIC, HSIC(A,B)/sqrt(HSIC(A,A) HSIC(B,B)) (both are stored) [default = off: the biased estimator].")


def settings_from_args(args: argparse.Namespace, *, samples: int, seed: int) -> HSICSettings:
    settings = HSICSettings(samples=samples, seed=seed, sigma=args.hsic_sigma, normalized=args.hsic_normalized,
                            batch_size=getattr(args, "batch_size", 256))
    settings.validate()
    return settings


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_hsic_arguments(parser)


def analyzer_from_args(args: argparse.Namespace) -> HSICAnalyzer | None:
    if not getattr(args, "hsic", False):
        return None
    return HSICAnalyzer(settings_from_args(args, samples=args.dse_samples, seed=args.dse_seed))
