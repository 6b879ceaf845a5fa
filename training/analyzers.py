"""The snapshot-analyzer hook: analyses that run on every snapshot without touching the loop.

An analyzer is any object with a ``name`` and ``analyze(context) -> dict``; returned floats are
logged as TensorBoard scalars ``<name>/<key>`` (tensors as histograms) and stored in run.json.
Analyzers may write their own result files under ``context.results_dir``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn


@dataclass
class SnapshotContext:
    """What an analyzer sees: the model (eval mode) right after a snapshot was written."""

    model: nn.Module
    epoch: int
    snapshot_path: Path
    data: object  # datasets.DataBundle
    device: torch.device
    results_dir: Path
    arch: str
    seed: int


class SnapshotAnalyzer(Protocol):
    name: str

    def analyze(self, context: SnapshotContext) -> dict: ...


def run_analyzers(analyzers, context: SnapshotContext) -> dict[str, dict]:
    """Run every analyzer with the model in eval mode; restore its mode afterwards."""
    results = {}
    was_training = context.model.training
    context.model.eval()
    try:
        for analyzer in analyzers:
            results[analyzer.name] = analyzer.analyze(context) or {}
    finally:
        context.model.train(was_training)
    return results


# Modules that contribute train.py flags (``add_train_arguments(parser)``) and build their
# analyzer from the parsed arguments (``analyzer_from_args(args) -> analyzer | None``).
ANALYZER_PROVIDERS: tuple[str, ...] = ("training.projection_analyzer", "training.dse_analyzer",
                                       "training.hsic_analyzer")


def _providers():
    import importlib

    return [importlib.import_module(name) for name in ANALYZER_PROVIDERS]


def add_analyzer_arguments(parser) -> None:
    for provider in _providers():
        provider.add_train_arguments(parser)


def analyzers_from_args(args) -> list:
    built = (provider.analyzer_from_args(args) for provider in _providers())
    return [analyzer for analyzer in built if analyzer is not None]
