"""What the field's generalization measures (norms, margin, sharpness, optimization) share: their
settings (the flags of ``compute_measures.py``), the fixed training subset they measure on, their
document, their rows in the tidy table and their done-check.

Each of them writes one ``<name>_<stem>.json`` per snapshot with a flat ``measures`` dict (one number
per model and measure; ``null`` where it is undefined) and the run-level rows ``(epoch, "", metric,
value)`` of the tidy table. A sweep runs them on a run's latest snapshot (``--latest``), the model
the ranking of measures reads. Definitions: docs/generalization-measures.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import schema
from analyses.base import Analysis, fmt, log_wrapped, log_written, model_label
from analyses.probe import probe_positions
from analyses.registry import SweepContext
from analyses.subject import Subject

logger = logging.getLogger(__name__)

CLI = "compute_measures.py"
# Why a zoo model has no training data: what the measures that read it name.
ZOO_MISSING = "the training data of a zoo model (its training split and labels) are not available"


# The defaults of the searches (metrics/flatness.py holds the same numbers; kept here so that building
# the parser imports no torch)
MC_SAMPLES, TARGET_RISE, KESKAR_RADIUS, SHARPNESS_SAMPLES = 10, 0.1, 5e-4, 128


@dataclass(frozen=True)
class FieldSettings:
    """The flags of the field's measures (compute_measures.py). ``measure_samples`` None: the whole
    training split."""

    measure_samples: int | None = None
    sharpness_samples: int = SHARPNESS_SAMPLES
    mc_samples: int = MC_SAMPLES
    target: float = TARGET_RISE
    radius: float = KESKAR_RADIUS
    ascent_steps: int = 3
    seed: int = 0
    batch_size: int = 500
    fit_loss: float = 0.1
    converged_loss: float = 0.01

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--measure-samples", "--margin-samples", dest="measure_samples", type=int, default=None, help="Training samples the margin and the PAC-Bayes flatness are measured on: a fixed draw of the run's training split with its labels (noisy ones included); the field's definitions read the whole split, and a smaller draw's size and Monte Carlo standard error are recorded (--margin-samples: its old name) [default = the whole training split].")
        parser.add_argument("--sharpness-samples", type=int, default=SHARPNESS_SAMPLES, help="Training samples the worst-case sharpness measures (gradient ascent) are measured on (a fixed draw, as --measure-samples) [default = 128].")
        parser.add_argument("--mc-samples", type=int, default=MC_SAMPLES, help="Monte Carlo draws of the Gaussian weight perturbation per sigma tried (PAC-Bayes flatness; the same draws at every sigma; the reference's 10) [default = 10].")
        parser.add_argument("--flatness-tolerance", type=float, default=TARGET_RISE, help="The rise of the 0-1 training error that sets the PAC-Bayes sigma and the sharpness boxes (Jiang et al.'s 0.1; the searches stop within 0.01 of it) [default = 0.1].")
        parser.add_argument("--sharpness-radius", type=float, default=KESKAR_RADIUS, help="Half-width alpha of the box |u_i| <= alpha (|w_i| + 1) of Keskar's sharpness (Keskar et al.'s 5e-4) [default = 0.0005].")
        parser.add_argument("--ascent-steps", type=int, default=3, help="Projected gradient-ascent steps of the worst-case sharpness measures [default = 3].")
        parser.add_argument("--measure-seed", type=int, default=0, help="Seed of the training subsets and of the Monte Carlo draws (recorded) [default = 0].")
        parser.add_argument("--fit-loss", type=float, default=0.1, help="The training cross-entropy whose first epoch the optimization measures report (Jiang et al.'s 0.1) [default = 0.1].")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FieldSettings:
        return cls(measure_samples=args.measure_samples, sharpness_samples=args.sharpness_samples,
                   mc_samples=args.mc_samples, target=args.flatness_tolerance, radius=args.sharpness_radius,
                   ascent_steps=args.ascent_steps, seed=args.measure_seed, fit_loss=args.fit_loss)

    def validate(self) -> None:
        from utils.errors import UserError

        for flag, value in (("--measure-samples", self.measure_samples), ("--sharpness-samples", self.sharpness_samples),
                            ("--mc-samples", self.mc_samples), ("--ascent-steps", self.ascent_steps)):
            if value is not None and value < 1:
                raise UserError(f"{flag} {value} must be at least 1")
        for flag, value in (("--flatness-tolerance", self.target), ("--sharpness-radius", self.radius),
                            ("--fit-loss", self.fit_loss)):
            if not value > 0:
                raise UserError(f"{flag} {value} must be positive")
        if not self.target < 1:
            raise UserError(f"--flatness-tolerance {self.target} must be below 1 (a rise of the 0-1 error)")


def training_subset(subject: Subject, samples: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``(inputs (N, C, H, W), labels (N,), record)``: a fixed draw of ``samples`` samples (None: all) of
    the run's training split, with the labels it trained on (label noise included) and its pixel
    shuffle, seen as at evaluation (no augmentation), on the subject's device. ``record``: split, size
    (``of`` the split's), seed."""
    split = subject.data.train
    positions = probe_positions(len(split), len(split) if samples is None else samples, seed)
    subset = dataclasses.replace(split, indices=split.indices[positions], targets=split.targets[positions],
                                 view=split.view.for_eval(), _device_images={})
    batches = list(subset.batches(max(1, len(subset)), device=subject.device))
    inputs, labels = (torch.cat(parts) for parts in zip(*batches))
    return inputs, labels, {"split": "train", "size": len(subset), "of": len(split), "seed": seed}


def folded(subject: Subject):
    """The subject's model with its batch norms folded into the layers that ran before them (a
    ``metrics.folding.Folded``), the network the field's measures are defined on; once per subject."""
    if "folded" not in subject.derived:
        from metrics.folding import fold_batchnorm

        subject.derived["folded"] = fold_batchnorm(subject.model, subject.input_shape)
    return subject.derived["folded"]


def fold_facts(subject: Subject) -> dict:
    """``{"batchnorm": what was folded and what stays, "notes": one line per kind left unfolded}``."""
    found = folded(subject)
    return {"batchnorm": found.record(), "notes": found.notes(subject.stem)}


def subject_facts(subject: Subject) -> dict:
    return {"source": subject.source, "snapshot": str(subject.path) if subject.path is not None else None,
            "num_classes": subject.num_classes, "input_shape": list(subject.input_shape)}


def clean(value) -> float | None:
    """A finite float, else None (``null`` in the JSON)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


class FieldMeasure(Analysis):
    """A measure of the field: ``measure`` returns ``{"measures": {...}, ...details}``."""

    metrics: tuple[str, ...] = ()
    uses_training_data = False  # margin and sharpness: measured on a draw of the run's training split

    def __init__(self, settings: FieldSettings | None = None, *, missing: str | None = None) -> None:
        super().__init__(settings or FieldSettings())
        self.missing = missing  # the data this model lacks (None: it has them)
        self.needs_data = self.uses_training_data and missing is None

    def document(self, measured: dict, subject: Subject, args: dict) -> dict:
        measures = {name: clean(measured["measures"].get(name)) for name in self.metrics}
        details = {key: value for key, value in measured.items() if key != "measures"}
        return subject.header(self.kind, args) | subject_facts(subject) | details | {"measures": measures} | (
            subject.conventions_record() if self.needs_data else {})

    def log(self, document: dict, path: Path) -> None:
        """``<snapshot> (epoch e) <name> -> <path>``, its measures, then its notes (warnings)."""
        log_written(logger, f"{model_label(document)} (epoch {document['epoch']}) {self.name}", path)
        log_wrapped(logger, "  " + "  ".join(f"{name} {fmt(value)}" for name, value in document["measures"].items()),
                    indent="    ")
        for note in document.get("notes") or []:
            log_wrapped(logger, note, level=logging.WARNING)


def missing_data(name: str, subject: Subject, missing: str, data_free: str) -> dict:
    """The ``notes`` of a model without its training data (one line, also logged)."""
    return {"notes": [f"{subject.stem}: no {name} measures: {missing}; {data_free}"], "training_subset": None}


# -- what the rest of the suite knows about them ------------------------------------------------------
def run_level_rows(kind: str) -> Callable:
    """The table rows of ``kind``'s documents: ``(epoch, "", measure, value)`` of each finite measure."""
    def rows(run) -> list[tuple]:
        return [(document["epoch"], "", name, value) for document in run.of_kind(kind)
                if document.get("epoch") is not None
                for name, value in (document.get("measures") or {}).items() if schema.finite(value)]

    return rows


def latest_covered(name: str) -> Callable[[Path, str, list[int]], bool]:
    """A done-check: a ``<name>_*.json`` of the run's latest snapshot epoch is in its results folder."""
    def done(results: Path, arch: str, epochs: list[int]) -> bool:
        documents = [_read(path) for path in Path(results).glob(f"{name}_*.json")] if epochs else []
        return any(document.get("kind") == name and document.get("epoch") == max(epochs)
                   for document in documents if document is not None)

    return done


def _read(path: Path) -> dict | None:
    """The document at ``path``, or None when it cannot be read."""
    from schema.documents import read_json
    from utils.errors import UserError

    try:
        document = read_json(path)
    except UserError:
        return None
    return document if isinstance(document, dict) else None


def sweep_arguments(name: str) -> Callable[[SweepContext], list[str]]:
    """A sweep's step: the measure on the run's latest snapshot."""
    return lambda at: sweep_together(at, (name,))


def sweep_together(at: SweepContext, names: tuple[str, ...]) -> list[str]:
    """A sweep's step for several measures: one compute_measures.py on the run's latest snapshot."""
    return ["--load-from", at.run, "--results", at.results, "--measures", *names, "--latest", *at.device]
