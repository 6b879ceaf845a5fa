"""The one object an analysis runs on: a model and everything known about it.

A :class:`Subject` is built whole, once, by whoever has the model: ``analyses.loading`` for a
snapshot file, a run directory, a zoo model or a random init (one pass: facts, initialization, data
bundle and data conventions), and train.py's trainer at every snapshot. Analyses read its facts
and ask it for their data bundle, probe set and initialization; nothing is looked up afterwards.
"""
from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import torch
from torch import nn

import schema
from analyses.probe import probe_split
from metrics.chance import chance_verdict

SNAPSHOT, PRETRAINED, INIT, TRAINING = "snapshot", "pretrained", "init", "training"  # the source kinds
PRETRAINED_EPOCH = -1


@dataclass
class Subject:
    """A model ready for analysis (eval mode, on ``device``), its recorded facts and its lookups.

    ``initialization`` is ``(path, Subject)`` of the model it is compared with, or ``(None, None)``;
    ``data_conventions`` (normalization, statistics, class order, classes) are set when the
    subject was built with data settings for analyses that read data, and end those documents.
    """

    model: nn.Module
    arch: str
    dataset: str
    num_classes: int
    in_channels: int
    image_size: int
    epoch: int | None
    seed: int | None
    _: KW_ONLY
    source: str  # snapshot | pretrained | init | training
    path: Path | None = None
    args: dict = field(default_factory=dict)  # the training run's arguments, when known
    data_facts: dict = field(default_factory=dict)  # the training run's data facts (classes, view), when known
    metrics: dict = field(default_factory=dict)  # the snapshot's metrics (its held-out top-1...), when known
    reference: bool = False  # a file without our header: the reference tool's (its conventions apply)
    device: torch.device = torch.device("cpu")
    results_dir: Path | None = None  # train.py's run results folder (the runner decides for the CLIs)
    data_bundle: object = None  # datasets.DataBundle of the run that trained the model
    data_conventions: dict | None = None
    initialization: tuple[Path | None, Subject | None] = (None, None)
    probes: dict = field(default_factory=dict, repr=False, compare=False)  # shared by the subjects of one run
    # What several analyses derive from this model, computed once (the folded network of the field's measures)
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    @property
    def stem(self) -> str:
        """Name used for result files: the snapshot's file stem, or pretrained_/init_<arch>."""
        if self.path is not None:
            return self.path.stem
        return f"pretrained_{self.arch}" if self.source == PRETRAINED else f"init_{self.arch}"

    @property
    def name(self) -> str:
        """How log lines and errors name the model."""
        return f"snapshot {self.path}" if self.path is not None else self.stem

    @property
    def data(self):
        """The data of the run that trained the model (a ``datasets.DataBundle``)."""
        if self.data_bundle is None:
            raise RuntimeError(f"{self.name} was built without data: an analysis that reads data declares "
                               "needs_data = True")
        return self.data_bundle

    def probe(self, samples: int, seed: int):
        """The fixed probe set: ``samples`` samples of the validation split, else of the test split."""
        data = self.data
        key = (id(data), samples, seed)
        if key not in self.probes:
            self.probes[key] = probe_split(data, samples, seed)
        return self.probes[key]

    @property
    def chance(self) -> dict | None:
        """Is the model above chance? :func:`metrics.chance.chance_verdict` of the snapshot's held-out
        top-1 (its run's evaluation split: test, or val with ``--split``) as a dict; None when the
        snapshot does not record it (the init, a zoo model, a reference file)."""
        split = self.metrics.get("eval_split")
        top1 = self.metrics.get("val_top1")  # train.py's name for the top-1 on its evaluation split
        size = (self.data_facts.get("sizes") or {}).get(split)
        if top1 is None or not size or self.num_classes < 2:
            return None
        return chance_verdict(top1, n_test=size, num_classes=self.num_classes, split=split).as_dict()

    def header(self, kind: str, args: dict) -> dict:
        """The documents' header; ``args``: the arguments of the analysis run (the CLI's)."""
        return schema.header(kind, arch=self.arch, dataset=self.dataset, seed=self.seed, epoch=self.epoch, args=args)

    def conventions_record(self) -> dict:
        """``{"data_conventions": ...}`` when they were decided at build, else ``{}``: the last entry of
        the documents of analyses that read data."""
        return {} if self.data_conventions is None else {"data_conventions": self.data_conventions}
