"""train.py's snapshot analyzers: thin adapters over ``analyses/`` (see ``training/analyzers.py``).

Each contributes its train.py flags and, from the parsed arguments, an analyzer (or None when
turned off). DSE and HSIC write the same files ``compute_dse.py`` writes for existing snapshots,
through the same analyses and the same runner call.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from analyses import runner
from analyses.base import Inputs
from analyses.dse import DSE, DSESettings
from analyses.hsic import HSIC, HSICSettings
from analyses.loading import LoadedModel
from analyses.projections import ProjectionSettings, snapshot_scalars


def loaded_model(context) -> LoadedModel:
    """The training model at a snapshot, described as the analyses see a loaded snapshot."""
    data = context.data
    return LoadedModel(context.model, context.arch, data.spec.name, data.num_classes, data.in_channels,
                       data.image_size, context.epoch, context.seed, Path(context.snapshot_path))


class ProjectionLogging:
    """Per-layer normalized projection mean, mass and histogram (TensorBoard ``projections/...``)."""

    name = "projections"
    settings = ProjectionSettings(normalize=True)

    @staticmethod
    def add_train_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--no-projection-logging", action="store_true", help="Do not log per-layer projection mean/mass/histograms at each snapshot [default = logged].")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ProjectionLogging | None":
        return None if getattr(args, "no_projection_logging", False) else cls()

    def analyze(self, context) -> dict:
        data = context.data
        return snapshot_scalars(context.model, (data.in_channels, data.image_size, data.image_size), self.settings)


class ProbeAnalyzer:
    """DSE or HSIC at a snapshot: the probe is drawn once per run; the document and the folder's
    summary go to the run's results folder; the scalars go to TensorBoard and run.json."""

    def __init__(self, analysis) -> None:
        self.analysis, self.name, self._probes = analysis, analysis.name, {}

    @property
    def settings(self):
        return self.analysis.settings

    def analyze(self, context) -> dict:
        inputs = Inputs(loaded_model(context), context.device, "training", self.analysis.settings.train_args(),
                        data_lookup=lambda loaded: context.data, probes=self._probes)
        return self.analysis.scalars(runner.record(self.analysis, inputs, context.results_dir))


class DSEAnalyzer(ProbeAnalyzer):
    add_train_arguments = staticmethod(DSESettings.add_train_arguments)

    def __init__(self, settings: DSESettings | None = None) -> None:
        super().__init__(DSE(settings or DSESettings()))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DSEAnalyzer | None":
        return None if getattr(args, "no_dse", False) else cls(DSESettings.from_train_args(args))


class HSICAnalyzer(ProbeAnalyzer):
    add_train_arguments = staticmethod(HSICSettings.add_arguments)

    def __init__(self, settings: HSICSettings | None = None) -> None:
        super().__init__(HSIC(settings or HSICSettings()))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "HSICAnalyzer | None":
        return cls(HSICSettings.from_args(args)) if getattr(args, "hsic", False) else None


# The analyzers train.py offers, in the order they run at a snapshot.
ADAPTERS = (ProjectionLogging, DSEAnalyzer, HSICAnalyzer)
