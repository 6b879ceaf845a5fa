"""Runs on disk: a run directory's run.json paired with its results folder, or a results folder on
its own (e.g. the reference tool's files), each with its documents and the factors of its design.

A run directory ``.../models/<layout>/`` pairs with ``.../results/<layout>/`` (the layout every CLI
and sweep.py use), else with the results folder its run.json names. Factors come from the run's
recorded arguments, else from the layout's folder names (``<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from datasets.options import DESIGN, PIXEL_SHUFFLE, data_flags
from schema.load import walk
from utils.paths import run_subdir, snapshot_root_index

# train.py arguments that define a run's design (the rest are paths, devices, logging...).
FACTORS = ("dataset", *data_flags(DESIGN), "arch", "depth", "width", "dropout", "optimizer", "lr", "lr_schedule",
           "lr_step", "lr_decay", "momentum", "weight_decay", "batch_size", "epochs", "stop_train_loss",
           "stop_train_acc", "pretrained", "conv_init", "conv_init_std", "dse_sigma")
_NOISE_FOLDER = re.compile(r"^noise_(\d+)$")


@dataclass
class Run:
    folder: Path  # the run directory (run.json's), or the results folder of a run without one
    record: dict | None = None  # run.json
    documents: dict[str, list[dict]] = field(default_factory=dict)  # by kind, normalized

    @classmethod
    def of_documents(cls, folder, documents: dict[str, list[dict]]) -> Run:
        """The run of ``documents`` by kind (as :func:`schema.collect` groups them): run.json, if
        there is one, is its record."""
        records = documents.get("run") or []
        return cls(Path(folder), records[0] if records else None, {k: v for k, v in documents.items() if k != "run"})

    def of_kind(self, kind: str) -> list[dict]:
        """Documents of ``kind`` in epoch order (those without an epoch last)."""
        documents = self.documents.get(kind) or []
        return sorted(documents, key=lambda d: (d.get("epoch") is None, d.get("epoch") or 0, d.get("_path", "")))

    def summary(self, kind: str, **match) -> dict | None:
        """The first document of ``kind`` (a summary: one per folder and settings) whose keys equal ``match``."""
        return next((d for d in self.documents.get(kind) or [] if all(d.get(k) == v for k, v in match.items())), None)

    def _first(self, key: str):
        if self.record is not None and self.record.get(key) is not None:
            return self.record[key]
        return next((d[key] for docs in self.documents.values() for d in docs if d.get(key) is not None), None)

    @property
    def arch(self):
        return self._first("arch")

    @property
    def dataset(self):
        return self._first("dataset")

    @property
    def seed(self):
        return self._first("seed")

    def factors(self) -> dict:
        """The design of the run: its recorded train.py arguments, else what its folders say."""
        if self.record is not None:
            args = self.record.get("args") or {}
            return {key: args[key] for key in FACTORS if key in args}
        found = {"dataset": self.dataset, "arch": self.arch, "noise": 0.0}
        for part in self.folder.parts:
            match = _NOISE_FOLDER.match(part)
            if match:
                found["noise"] = int(match.group(1)) / 100
            elif part == "pixel_shuffle":
                found["noise"] = PIXEL_SHUFFLE
        match = re.fullmatch(r"(.+)_(\d+)", str(found["dataset"] or ""))
        if match:  # the reference's projection files name a class subset "<dataset>_<k>"
            found |= {"dataset": match.group(1), "subsample_classes": int(match.group(2))}
        return found


def _documents_by_folder(inputs) -> tuple[dict[Path, dict[str, list[dict]]], list[dict]]:
    """Every result document under ``inputs`` by (resolved) folder and kind, and the sweep manifests."""
    folders: dict[Path, dict[str, list[dict]]] = {}
    manifests = []
    for _, path, kind, document in walk(inputs, what="run, results or sweep folders", unreadable=[]):
        if kind == "sweep":
            manifests.append(document)
        else:
            folders.setdefault(path.parent.resolve(), {}).setdefault(kind, []).append(document)
    return folders, manifests


def _results_folders(run_dir: Path, record: dict) -> list[Path]:
    """Where a run's results are: the mirror of its folder under ``results``, or its --results."""
    candidates = []
    parts = run_dir.parts
    at = snapshot_root_index(parts)
    if at is not None:
        candidates.append(Path(*parts[:at], "results", *parts[at + 1:]))
    args = record.get("args") or {}
    if args.get("results") and args.get("dataset") and args.get("arch"):
        sub = run_subdir(dataset=args["dataset"], arch=args["arch"], seed=args.get("seed"),
                         subsample_classes=args.get("subsample_classes") or 0, noise=args.get("noise") or 0.0)
        candidates.append((Path(args["results"]) / sub).resolve())
    return candidates


def find_runs(inputs) -> tuple[list[Run], list[dict]]:
    """Every run under ``inputs`` (see the module docstring), and the sweep manifests found there."""
    folders, manifests = _documents_by_folder(inputs)
    runs, claimed = [], set()
    for folder, kinds in sorted(folders.items()):
        if "run" not in kinds:
            continue
        run = Run(folder, kinds["run"][0], {k: v for k, v in kinds.items() if k != "run"})
        for results in _results_folders(folder, run.record):
            if results in folders and results not in claimed and "run" not in folders[results]:
                for kind, documents in folders[results].items():
                    run.documents.setdefault(kind, []).extend(documents)
                claimed.add(results)
                break
        runs.append(run)
    runs += [Run(folder, None, kinds) for folder, kinds in sorted(folders.items())
             if "run" not in kinds and folder not in claimed]
    return runs, manifests


def relative(path: Path) -> str:
    """A folder as the user would type it: relative to the working directory when inside it."""
    here = Path.cwd().resolve()
    path = Path(path).resolve()
    return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)
