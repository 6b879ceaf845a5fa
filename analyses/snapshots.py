"""train.py's snapshot analyzers: an analysis run on the training model at every snapshot.

An analyzer has a ``name`` and ``analyze(subject) -> dict``; returned floats are logged as
TensorBoard scalars ``<name>/<key>`` (tensors as histograms) and stored in run.json. The trainer
builds the :class:`analyses.subject.Subject` of each snapshot (source ``training``, with the run's
data and results folder), as ``analyses.loading`` builds those of the CLIs. Each analysis declares
its analyzer (``Declaration.train_analyzer``); DSE and HSIC write the same files ``compute_dse.py``
writes for existing snapshots, through the same runner call.
"""
from __future__ import annotations

from analyses import runner
from analyses.base import Analysis
from analyses.subject import Subject


class SnapshotAnalysis:
    """An analysis at every snapshot: the document and the folder's summary go to the run's results
    folder; the scalars go to TensorBoard and run.json. (The probe is drawn once per run: the
    trainer's subjects share their probe sets.)"""

    def __init__(self, analysis: Analysis, train_args: dict | None = None) -> None:
        self.analysis, self.name = analysis, analysis.name
        self.train_args = train_args if train_args is not None else analysis.settings.train_args()

    @property
    def settings(self):
        return self.analysis.settings

    def analyze(self, subject: Subject) -> dict:
        return self.analysis.scalars(runner.record(self.analysis, subject, self.train_args))
