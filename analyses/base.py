"""What every analysis offers the runner, and what the runner hands it for one model.

An analysis module defines a settings dataclass (``add_arguments(parser)`` / ``from_args(args)``)
and a subclass of :class:`Analysis`: ``measure(inputs)`` returns plain results, ``document(measured,
inputs)`` the JSON document (built on :func:`schema.header`), ``summarize(documents, files, args)``
the run's summary, ``log(document, path)`` the lines a user reads first. The pure math lives in
``metrics/``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

import schema
from analyses.loading import PRETRAINED_EPOCH, LoadedModel
from analyses.probe import probe_split

logger = logging.getLogger(__name__)

SUMMARY_OF_ANALYSED = "analysed"  # the snapshots this process analysed (when more than one)
SUMMARY_OF_FOLDER = "folder"  # every matching result file in the folder (train.py adds one per snapshot)


def source_kind(loaded: LoadedModel) -> str:
    """``snapshot``, ``pretrained`` (zoo weights) or ``init`` (a seeded random initialization)."""
    if loaded.path is not None:
        return "snapshot"
    return "pretrained" if loaded.epoch == PRETRAINED_EPOCH else "init"


@dataclass
class Inputs:
    """One model and what an analysis of it may ask for; the lookups are the runner's (cached)."""

    loaded: LoadedModel
    device: torch.device
    source: str  # snapshot | pretrained | init | training
    args: dict  # recorded in each document's header
    init_lookup: Callable[[LoadedModel], tuple[Path | None, LoadedModel | None]] = lambda loaded: (None, None)
    data_lookup: Callable[[LoadedModel], object] | None = None  # -> datasets.DataBundle
    probes: dict = field(default_factory=dict)  # (samples, seed) -> probe Split, shared by the analyses

    @property
    def name(self) -> str:
        """How log lines and errors name the model."""
        return f"snapshot {self.loaded.path}" if self.loaded.path is not None else self.loaded.stem

    def init(self) -> tuple[Path | None, LoadedModel | None]:
        """``(path, model)`` of the initialization to compare with, or ``(None, None)``."""
        return self.init_lookup(self.loaded)

    def data(self):
        """The data of the run that trained the model (a ``datasets.DataBundle``)."""
        if self.data_lookup is None:
            raise RuntimeError("this analysis needs data, and the runner was given none")
        return self.data_lookup(self.loaded)

    def probe(self, samples: int, seed: int):
        """The fixed probe set: ``samples`` samples of the validation split, else of the test split."""
        data = self.data()
        key = (id(data), samples, seed)
        if key not in self.probes:
            self.probes[key] = probe_split(data, samples, seed)
        return self.probes[key]

    def header(self, kind: str) -> dict:
        loaded = self.loaded
        return schema.header(kind, arch=loaded.arch, dataset=loaded.dataset, seed=loaded.seed, epoch=loaded.epoch,
                             args=self.args)


class Analysis:
    """Base of the analyses; see the module docstring."""

    name: str = ""  # registry name, also the default file prefix
    kind: str = ""  # the documents' kind
    summary: schema.SummarySpec | None = None
    summary_scope: str = SUMMARY_OF_ANALYSED
    summary_needs_epoch: bool = False  # leave documents without an epoch out of the summary

    def __init__(self, settings) -> None:
        if hasattr(settings, "validate"):
            settings.validate()
        self.settings = settings

    @property
    def file_prefix(self) -> str:
        """Files are ``<prefix>_<snapshot stem>.json`` and ``<prefix>_summary.json``."""
        return self.name

    def measure(self, inputs: Inputs):
        raise NotImplementedError

    def document(self, measured, inputs: Inputs) -> dict:
        raise NotImplementedError

    def summarize(self, documents: list[dict], files: list[str], args: dict) -> dict:
        return schema.summarize(self.summary, documents, files, args=args)

    def summary_match(self, document: dict) -> dict:
        """Keys a folder's documents must share with ``document`` to be summarized together."""
        return {"arch": document["arch"]}

    def log(self, document: dict, path: Path) -> None:
        logger.info("%s (epoch %s) -> %s", document.get("snapshot") or document.get("source"), document["epoch"], path)

    def reference_document(self, document: dict, *, stem: str, subsample_classes: int) -> tuple[str, dict]:
        """``(file name, document)`` as the reference tool writes them (``--layout reference``)."""
        from utils.errors import UserError

        raise UserError(f"the reference tool writes no {self.name} files; drop --layout reference")

    def scalars(self, document: dict) -> dict:
        """What train.py logs to TensorBoard and run.json at a snapshot."""
        return {}


def or_nan(value) -> float:
    """A value for a ``%f`` log field: NaN when undefined (``null`` in the JSON)."""
    return float("nan") if value is None else value


def fmt(value, spec: str = ".3g") -> str:
    """A value for a log table: ``-`` when undefined."""
    return "-" if value is None else format(value, spec)


def log_table(columns: list[tuple[str, str]], rows: list[list]) -> None:
    """One log line per row, under a header: ``columns`` are ``(title, format)`` pairs, the format
    applied to the header as to the values (e.g. ``%-22s``, ``%7s``); values are strings."""
    logger.info("  " + " ".join(fmt_spec % title for title, fmt_spec in columns))
    for row in rows:
        logger.info("  " + " ".join(fmt_spec % value for (_, fmt_spec), value in zip(columns, row)))
