"""Snapshot analyzer: per-layer projection statistics logged by ``train.py`` at every snapshot.

For each analysed layer it returns the mean normalized projection and ``mass = P(p <= 0)`` as
floats (TensorBoard scalars ``projections/<module>/mean`` and ``.../mass``, also stored in
run.json) and the projections themselves as a tensor (a TensorBoard histogram
``projections/<module>/histogram``), plus the pooled ``net/mean`` and ``net/mass``. Projections
are normalized (cosines in [-1, 1]) so layers of different fan-in share one scale; for the raw
projections, distances from init and tests, run ``compute_projections.py`` on the snapshots.
"""
from __future__ import annotations

import argparse

import torch

from metrics.layers import enumerate_layers
from metrics.projections import filter_projections, projection_mass


class ProjectionAnalyzer:
    """Implements ``training.analyzers.SnapshotAnalyzer``."""

    name = "projections"

    def __init__(self, *, normalize: bool = True, include_1x1: bool = False, with_linear: bool = False) -> None:
        self.normalize, self.include_1x1, self.with_linear = normalize, include_1x1, with_linear

    def analyze(self, context) -> dict:
        """``{"<module>/mean": float, "<module>/mass": float, "<module>/histogram": (n_filters,) tensor,
        "net/mean", "net/mass"}`` for the model of ``context`` (a ``SnapshotContext``)."""
        data = context.data
        input_shape = (data.in_channels, data.image_size, data.image_size)
        layers = enumerate_layers(context.model, input_shape, include_1x1=self.include_1x1,
                                  with_linear=self.with_linear)
        results, pooled = {}, []
        for layer in layers:
            projections = filter_projections(layer.filters(), normalize=self.normalize, layer=layer.name)
            results[f"{layer.name}/mean"] = float(projections.mean())
            results[f"{layer.name}/mass"] = projection_mass(projections)
            results[f"{layer.name}/histogram"] = projections.float().cpu()
            pooled.append(projections)
        if pooled:
            net = torch.cat(pooled)
            results["net/mean"], results["net/mass"] = float(net.mean()), projection_mass(net)
        return results


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-projection-logging", action="store_true",
                        help="Do not log per-layer projection mean/mass/histograms at each snapshot "
                             "[default = logged].")


def analyzer_from_args(args: argparse.Namespace) -> ProjectionAnalyzer | None:
    return None if getattr(args, "no_projection_logging", False) else ProjectionAnalyzer()
