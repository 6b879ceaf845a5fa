"""The snapshot-analyzer hook: analyses that run on every snapshot without touching the loop.

An analyzer is any object with a ``name`` and ``analyze(subject) -> dict``, where ``subject`` is
the :class:`analyses.subject.Subject` of the snapshot (``model`` in eval mode, ``epoch``, ``path``,
``data``, ``device``, ``results_dir``, ``arch``, ``seed``, ...); returned floats are logged as
TensorBoard scalars ``<name>/<key>`` (tensors as histograms) and stored in run.json. Analyzers may
write their own result files under ``subject.results_dir``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from analyses.registry import declarations
from analyses.subject import TRAINING, Subject


class SnapshotAnalyzer(Protocol):
    name: str

    def analyze(self, subject: Subject) -> dict: ...


def snapshot_subject(model: nn.Module, *, epoch: int, path: Path, data, device: torch.device, results_dir: Path,
                     identity: dict, probes: dict) -> Subject:
    """The training model right after its snapshot ``path`` was written, as the analyses see a model:
    ``data`` the run's ``datasets.DataBundle``, ``identity`` what the snapshot says about itself
    (arch, seed, args, data facts), ``probes`` the run's probe sets (drawn once per run)."""
    return Subject(model, identity["arch"], data.spec.name, data.num_classes, data.in_channels, data.image_size, epoch,
                   identity["seed"], source=TRAINING, path=Path(path), args=identity.get("args") or {},
                   data_facts=identity.get("data") or {}, device=device, results_dir=Path(results_dir),
                   data_bundle=data, probes=probes)


def run_analyzers(analyzers, subject: Subject) -> dict[str, dict]:
    """Run every analyzer with the model in eval mode; restore its mode afterwards."""
    results = {}
    was_training = subject.model.training
    subject.model.eval()
    try:
        for analyzer in analyzers:
            results[analyzer.name] = analyzer.analyze(subject) or {}
    finally:
        subject.model.train(was_training)
    return results


def add_analyzer_arguments(parser) -> None:
    """train.py's flags of every analysis that runs at each snapshot (its declaration's)."""
    for found in declarations():
        if found.train_arguments is not None:
            found.train_arguments(parser)


def analyzers_from_args(args) -> list:
    """The analyzers the parsed train.py arguments turn on, in the registry's order."""
    built = (found.train_analyzer(args) for found in declarations() if found.train_analyzer is not None)
    return [analyzer for analyzer in built if analyzer is not None]
