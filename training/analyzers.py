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

from training.adapters import ADAPTERS


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


def add_analyzer_arguments(parser) -> None:
    """train.py's flags of every analyzer in ``training.adapters.ADAPTERS``."""
    for adapter in ADAPTERS:
        adapter.add_train_arguments(parser)


def analyzers_from_args(args) -> list:
    """The analyzers the parsed train.py arguments turn on."""
    built = (adapter.from_args(args) for adapter in ADAPTERS)
    return [analyzer for analyzer in built if analyzer is not None]
