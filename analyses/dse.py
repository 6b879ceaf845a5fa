"""Diffusion Spectral Entropy DSE(Z), DSMI(Z; Y) with the labels, DSMI(Z; X) with the inputs and CSE(Z)
of a representation, and, on request, dse-dsmi's other estimators (``--dse-variants``).

Z is, by default, the penultimate representation (the input of the last linear layer; ``layer``
names any module, whose output is used), measured on the fixed probe set (``analyses.probe``).
Definitions and defaults match the ``dse-dsmi`` package (math: ``metrics/dse.py``). The summary
holds every result file of the folder measured with the same settings, because train.py adds one
file per snapshot as training goes.

DSMI(Z; X) takes as X the cluster ids of the probe's inputs (the images as the model reads them,
flattened), grouped as dse-dsmi groups them (``metrics/input_clusters.py``: spectral clustering into
``--dsmi-x-clusters`` clusters). The probe is the same at every snapshot, so the ids are computed once
per probe and recorded in every document (``input_clusters``).
"""
from __future__ import annotations

import argparse
import logging
import math
import re
import time
from dataclasses import dataclass

import numpy as np
import torch

import schema
from analyses.base import SUMMARY_OF_FOLDER, Analysis, log_written, model_label, or_nan
from analyses.probe import probe_record
from analyses.registry import HELD_OUT, Declaration, Measure, ZooUse
from analyses.snapshots import SnapshotAnalysis
from analyses.subject import Subject
from metrics.dse import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from metrics.dse_variants import VARIANT_NAMES, dse_variants, resolve_variants
from metrics.embeddings import collect_embeddings
from metrics.hsic import median_bandwidth, squared_distances
from metrics.input_clusters import DEFAULT_CLUSTERS, input_cluster_ids, minimum_samples
from utils.errors import UserError, require

logger = logging.getLogger(__name__)

VALUES = ("dse", "dsmi_y", "dsmi_x", "cse")  # DSE(Z), DSMI(Z; Y), DSMI(Z; X), CSE(Z), in bits
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
    dsmi_x_clusters: int | None = DEFAULT_CLUSTERS  # None: DSMI(Z; X) is not computed (--no-dsmi-x)
    variants: tuple[str, ...] = ()  # dse-dsmi's other estimators (metrics.dse_variants), by name

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """compute_dse.py's flags (``--batch-size`` is the CLI's own)."""
        parser.add_argument("--layer", default=None, help="Module whose (flattened) output is the representation, e.g. classifier.3 [default = the input of the last linear layer, the penultimate representation].")
        parser.add_argument("--dse-samples", type=int, default=DEFAULT_SAMPLES, help=f"Number of probe samples, drawn from the validation split, else the test split [default = {DEFAULT_SAMPLES}].")
        parser.add_argument("--dse-seed", type=int, default=DEFAULT_SEED, help=f"Seed of the probe draw and of DSMI's random subsets (train.py uses the same) [default = {DEFAULT_SEED}].")
        parser.add_argument("--sigma", "--dse-sigma", type=sigma_value, default=DEFAULT_SIGMA, help=f"Gaussian kernel bandwidth, or auto: the median pairwise distance of the probe's representation, so that runs of different scale compare [default = {DEFAULT_SIGMA:g}, as dse-dsmi].")
        parser.add_argument("--t", "--dse-t", type=float, default=DEFAULT_T, help=f"Diffusion time: power of the eigenvalues [default = {DEFAULT_T:g}].")
        parser.add_argument("--max-n", type=int, default=MAX_N, help=f"Probes larger than this are subsampled with dse-dsmi's seeded draw [default = {MAX_N}].")
        DSESettings.add_shared_arguments(parser)

    @staticmethod
    def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
        """The flags of DSMI(Z; X) and of the variants, the same in compute_dse.py and train.py."""
        parser.add_argument("--dsmi-x-clusters", type=int, default=DEFAULT_CLUSTERS, help=f"Clusters of the probe's inputs, the X of DSMI(Z; X) (dse-dsmi's spectral clustering) [default = {DEFAULT_CLUSTERS}, as dse-dsmi].")
        parser.add_argument("--no-dsmi-x", action="store_true", help="Do not compute DSMI(Z; X) (it clusters the probe's inputs once per probe) [default = computed].")
        parser.add_argument("--dse-variants", nargs="+", default=[], metavar="NAME", help=f"dse-dsmi's other estimators, each stored under its own key: {', '.join(VARIANT_NAMES)} [default = none].")

    @staticmethod
    def _shared(args: argparse.Namespace) -> dict:
        return {"dsmi_x_clusters": None if args.no_dsmi_x else args.dsmi_x_clusters,
                "variants": tuple(args.dse_variants)}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DSESettings:
        return cls(samples=args.dse_samples, seed=args.dse_seed, sigma=args.sigma, t=args.t, layer=args.layer,
                   max_n=args.max_n, batch_size=args.batch_size, **cls._shared(args))

    @staticmethod
    def add_train_arguments(parser: argparse.ArgumentParser) -> None:
        """train.py's flags: DSE of the penultimate representation at every snapshot."""
        parser.add_argument("--dse-samples", type=int, default=DEFAULT_SAMPLES, help=f"Probe samples for DSE/DSMI/CSE at every snapshot, drawn once from the validation split (else the test set) [default = {DEFAULT_SAMPLES}].")
        parser.add_argument("--dse-seed", type=int, default=DEFAULT_SEED, help=f"Seed of the DSE probe draw and of DSMI's random subsets [default = {DEFAULT_SEED}].")
        parser.add_argument("--dse-sigma", type=sigma_value, default=DEFAULT_SIGMA, help=f"Gaussian kernel bandwidth of DSE, or auto: the median pairwise distance of the probe's representation [default = {DEFAULT_SIGMA:g}].")
        parser.add_argument("--dse-t", type=float, default=DEFAULT_T, help=f"Diffusion time t of DSE (power of the eigenvalues) [default = {DEFAULT_T:g}].")
        parser.add_argument("--no-dse", action="store_true", help="Do not compute DSE/DSMI/CSE at each snapshot [default = computed].")
        DSESettings.add_shared_arguments(parser)

    @classmethod
    def from_train_args(cls, args: argparse.Namespace) -> DSESettings:
        return cls(samples=args.dse_samples, seed=args.dse_seed, sigma=args.dse_sigma, t=args.dse_t,
                   batch_size=getattr(args, "batch_size", 256), **cls._shared(args))

    def validate(self) -> None:
        checks = [(self.samples >= 2, f"--dse-samples {self.samples} must be at least 2"),
                  (self.sigma == AUTO or self.sigma > 0,
                   f"the DSE sigma (--sigma/--dse-sigma) {self.sigma} must be positive (or auto)"),
                  (self.t > 0, f"the DSE diffusion time (--t/--dse-t) {self.t} must be positive"),
                  (self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1"),
                  (self.max_n >= 2, f"--max-n {self.max_n} must be at least 2")]
        clusters = self.dsmi_x_clusters
        if clusters is not None:
            checks += [(clusters >= 2, f"--dsmi-x-clusters {clusters} must be at least 2 (or give --no-dsmi-x)"),
                       (clusters < 2 or self.samples >= minimum_samples(clusters),
                        f"--dse-samples {self.samples} is too few to cluster the inputs into {clusters} clusters for "
                        f"DSMI(Z; X): give at least {minimum_samples(max(clusters, 2))} samples, fewer "
                        f"--dsmi-x-clusters, or --no-dsmi-x")]
        require(checks)
        resolve_variants(self.variants)  # an unknown name is one line

    def record(self) -> dict:
        """What identifies comparable measurements (the batch size does not change results)."""
        sigma = AUTO if self.sigma == AUTO else float(self.sigma)
        return {"samples": self.samples, "seed": self.seed, "sigma": sigma, "t": float(self.t),
                "layer": self.layer, "max_n": self.max_n, "dsmi_x_clusters": self.dsmi_x_clusters,
                "variants": list(self.variants)}

    def train_args(self) -> dict:
        """The ``args`` of the documents train.py writes."""
        return {f"dse_{key}": value for key, value in self.record().items()}


def probe_cluster_ids(probe, settings: DSESettings) -> np.ndarray | None:
    """The cluster ids of ``probe``'s inputs (flattened as the model reads them), the X of DSMI(Z; X);
    None with ``--no-dsmi-x``."""
    if settings.dsmi_x_clusters is None:
        return None
    inputs = torch.cat([images.flatten(1) for images, _ in probe.batches(settings.batch_size, shuffle=False)])
    try:
        return input_cluster_ids(inputs, settings.dsmi_x_clusters)
    except UserError as err:
        raise UserError(f"{err} (the probe is {len(probe)} samples of the {probe.name} split)") from err


def measure_embeddings(model: torch.nn.Module, probe, settings: DSESettings, *, device: torch.device,
                       input_ids: np.ndarray | None = None) -> dict:
    """``{"dse", "dsmi_y", "dsmi_x", "cse", "variants", "layer", "hook", "feature_dim", "seconds"}`` of ``model``
    on ``probe`` (a Split); ``input_ids`` are the probe's input cluster ids (:func:`probe_cluster_ids`; None:
    ``dsmi_x`` is null)."""
    start = time.perf_counter()
    embeddings = collect_embeddings(model, probe.batches(settings.batch_size, device=device, shuffle=False),
                                    layer=settings.layer)
    features, labels = embeddings.features, np.asarray(probe.targets, dtype=np.int64)
    values, sigma, variants = dict.fromkeys(VALUES, math.nan), None, {}
    if input_ids is None:
        values["dsmi_x"] = None
    if bool(torch.isfinite(features).all()):
        sigma = auto_sigma(features) if settings.sigma == AUTO else float(settings.sigma)
        common = {"sigma": sigma, "t": settings.t, "max_n": settings.max_n, "seed": settings.seed}
        values = {
            "dse": diffusion_spectral_entropy(features, **common),
            "dsmi_y": diffusion_spectral_mutual_information(features, labels, reference_discrete=True, **common),
            "dsmi_x": None if input_ids is None else
            diffusion_spectral_mutual_information(features, input_ids, reference_discrete=True, **common),
            "cse": diffusion_spectral_entropy(features, classic_shannon=True, max_n=settings.max_n, seed=settings.seed),
        }
        if settings.variants:
            variants = dse_variants(features, settings.variants, labels, input_ids, **common)
    else:
        logger.warning("embeddings at %s contain NaN or inf; DSE, DSMI and CSE are recorded as null", embeddings.layer)
    return values | {"variants": variants, "layer": embeddings.layer, "hook": embeddings.hook, "feature_dim": embeddings.feature_dim,
                     "sigma_used": sigma, "seconds": time.perf_counter() - start}


class DSE(Analysis):
    name = kind = "dse"
    summary = SUMMARY
    summary_scope = SUMMARY_OF_FOLDER
    needs_data = True

    def __init__(self, settings: DSESettings):
        super().__init__(settings)
        self._input_ids: dict[tuple, np.ndarray | None] = {}  # per probe (train.py measures one at every snapshot)

    def input_ids(self, probe) -> np.ndarray | None:
        """The probe's input cluster ids, computed once per probe (its split, samples, source and pixel shuffle)."""
        key = (probe.name, np.asarray(probe.indices).tobytes(), id(probe.source), probe.shuffle_seed,
               probe.shuffle_shared)
        if key not in self._input_ids:
            self._input_ids[key] = probe_cluster_ids(probe, self.settings)
        return self._input_ids[key]

    @property
    def file_prefix(self) -> str:
        """``dse`` for the default representation, ``dse_layer-<module>`` for a named module."""
        layer = self.settings.layer
        return "dse" if layer is None else f"dse_layer-{re.sub(r'[^A-Za-z0-9]+', '-', layer)}"

    def measure(self, subject: Subject) -> dict:
        probe = subject.probe(self.settings.samples, self.settings.seed)
        input_ids = self.input_ids(probe)
        return measure_embeddings(subject.model, probe, self.settings, device=subject.device,
                                  input_ids=input_ids) | {"probe": probe, "input_ids": input_ids}

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
            "input_clusters": input_clusters_record(measured["input_ids"]),  # the X of DSMI(Z; X)
            "log2_size": math.log2(len(probe)),  # the largest possible DSE and CSE on this probe
            **{key: measured[key] for key in VALUES},
            "variants": measured["variants"],  # --dse-variants, by key (metrics.dse_variants)
            "sigma_used": measured["sigma_used"],  # the bandwidth of the kernel (settings.sigma, or auto's)
            "seconds": measured["seconds"],
        } | subject.conventions_record()

    def summary_match(self, document: dict) -> dict:
        return {"settings": document["settings"], "arch": document["arch"]}

    def log(self, document: dict, path) -> None:
        logger.info("%s (epoch %s): DSE(Z) %.4f  DSMI(Z;Y) %.4f  DSMI(Z;X) %.4f  CSE(Z) %.4f bits",
                    model_label(document), document["epoch"], or_nan(document["dse"]), or_nan(document["dsmi_y"]),
                    or_nan(document["dsmi_x"]), or_nan(document["cse"]))
        log_written(logger, f"  {document['hook']} of {document['layer']}, {document['probe']['size']} samples of "
                    f"{document['probe']['split']}, max {document['log2_size']:.2f} bits, {document['seconds']:.2f}s",
                    path)
        for key, value in (document.get("variants") or {}).items():
            logger.info("  %s %.4f bits", key, or_nan(value))

    def scalars(self, document: dict) -> dict:
        return {key: document[key] for key in VALUES if document.get(key) is not None} | (document.get("variants") or {})


def input_clusters_record(input_ids: np.ndarray | None) -> dict:
    """The X of DSMI(Z; X): the number of clusters and each probe sample's id (None with ``--no-dsmi-x``)."""
    if input_ids is None:
        return None
    return {"n_clusters": int(len(np.unique(input_ids))), "ids": [int(i) for i in input_ids],
            "method": "dse-dsmi's SpectralClustering of the flattened inputs"}


# -- what the rest of the suite knows about this analysis -----------------------------------------------
def table_rows(run) -> list[tuple]:
    """DSE of the default representation (``settings.layer`` None), per snapshot, else from its summary."""
    default = [d for d in run.of_kind("dse") if d.get("epoch") is not None and (d.get("settings") or {}).get("layer") is None]
    rows = [(d["epoch"], "", m, d[m]) for d in default for m in VALUES if schema.finite(d.get(m))]
    rows += [(d["epoch"], "", key, value) for d in default for key, value in (d.get("variants") or {}).items()
             if key not in VALUES and schema.finite(value)]
    summary = next((d for d in run.documents.get("dse_summary") or [] if (d.get("settings") or {}).get("layer") is None),
                   None)
    if rows or not summary:
        return rows
    return [(epoch, "", m, v) for m in VALUES for epoch, v in zip(summary["epochs"], summary.get(m) or [])
            if schema.finite(v)]


# For the ranking of measures (comparison/measures.py): what each measure is, and its expected sign. The
# probe is drawn from the validation split, else the test split: images the model was not trained on.
MEASURES = {
    "dse": Measure(0, "DSE(Z) of the penultimate representation on the probe (bits)",
                   "DSE paper: it rises in generalizing and in memorizing training", reads=HELD_OUT),
    "dsmi_y": Measure(+1, "DSMI(Z; Y) of the penultimate representation with the labels (bits)",
                      "DSE paper: rises with generalization, flat when memorizing; tracks ImageNet accuracy",
                      reads=HELD_OUT),
    "dsmi_x": Measure(0, "DSMI(Z; X) of the penultimate representation with the inputs (bits)",
                      "DSE paper: its trend depends on the dataset", reads=HELD_OUT),
    "cse": Measure(0, "classic Shannon entropy of the penultimate representation (bits)", "no agreed sign",
                   reads=HELD_OUT),
}


def zoo_dse(probe) -> DSE:
    """DSE of a zoo model on the probe dataset's images (``rank_measures.py --probe-dataset``)."""
    return DSE(DSESettings(samples=probe.samples, seed=probe.seed, sigma=probe.sigma, batch_size=probe.batch_size))


DECLARATION = Declaration(
    "dse", kinds=("dse", "dse_summary"), cli="compute_dse.py", table_rows=table_rows, metrics=VALUES,
    train_arguments=DSESettings.add_train_arguments,
    train_analyzer=lambda args: None if args.no_dse else SnapshotAnalysis(DSE(DSESettings.from_train_args(args))),
    compared_as="DSE", measures=MEASURES, zoo=ZooUse(build=zoo_dse, probe=True, optional=True))
