"""``run.json``: arguments, versions, dataset facts, per-epoch metrics and how the run ended.

With a stopping criterion (``train.py --stop-train-loss/--stop-train-acc``) every epoch row holds
``train_eval_loss`` and ``train_eval_top1`` (the whole training set in eval mode), and the top-level
``stopping`` is ``{"criterion": {"train_loss": X} | {"train_top1": P}, "outcome": "converged" |
"cap reached" | "plateau" | null (still running, or stopped by an error), "epoch": E}``; without one,
``stopping`` is null.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import schema
from utils.version import TOOL_VERSION


def library_versions() -> dict:
    import torchvision  # the models and datasets import it when they need it; the record names its version

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "tool": TOOL_VERSION,
    }


class RunRecord:
    """The run's record, rewritten atomically after every change (rank 0 only)."""

    def __init__(self, path: Path, *, args: dict, data: dict, model: dict, criterion: dict | None = None,
                 enabled: bool = True) -> None:
        self.path, self.enabled = Path(path), enabled
        self.data = {
            "schema_version": schema.SCHEMA_VERSION,
            "kind": "run",
            "tool_version": TOOL_VERSION,
            "arch": args.get("arch"),
            "dataset": args.get("dataset"),
            "seed": args.get("seed"),
            "args": args,
            "versions": library_versions(),
            "data": data,
            "model": model,
            "epochs": [],
            "snapshots": [],
            "status": {"state": "running", "reason": None, "last_epoch": None},
            "stopping": None if criterion is None else {"criterion": criterion, "outcome": None, "epoch": None},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    def resume_from(self, epoch: int, *, history: list[dict] | None = None) -> None:
        """Keep the history of an earlier record up to ``epoch`` (a resumed run continues it).

        ``history``, the per-epoch rows stored in the resumed snapshot, wins over the old
        run.json's: a run killed between writing the snapshot and updating run.json loses no row.
        """
        if history is not None:
            self.data["epochs"] = [row for row in history if row["epoch"] <= epoch]
        if not self.path.is_file():
            return
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if history is None:
            self.data["epochs"] = [row for row in old.get("epochs", []) if row["epoch"] <= epoch]
        self.data["snapshots"] = [row for row in old.get("snapshots", []) if row["epoch"] <= epoch]
        self.data["started"] = old.get("started", self.data["started"])
        self.data["resumed_at_epoch"] = old.get("resumed_at_epoch", []) + [epoch]

    def recover_snapshots(self, files: dict[int, str], epoch: int) -> list[str]:
        """List snapshot files on disk (``{epoch: file name}``, up to ``epoch``) that the record lacks:
        a run killed between writing a snapshot and updating run.json. Their analyses are in the
        results folder's JSON files, not repeated here (``"analyses": null, "recovered": true``)."""
        listed = {row["epoch"] for row in self.data["snapshots"]}
        missing = {e: name for e, name in files.items() if e <= epoch and e not in listed}
        self.data["snapshots"] += [{"epoch": e, "file": name, "analyses": None, "recovered": True}
                                   for e, name in missing.items()]
        self.data["snapshots"].sort(key=lambda row: row["epoch"])
        return sorted(missing.values())

    @property
    def epochs(self) -> list[dict]:
        return self.data["epochs"]

    def add_epoch(self, row: dict) -> None:
        self.data["epochs"].append(row)

    def add_snapshot(self, epoch: int, path: Path, analyses: dict) -> None:
        self.data["snapshots"].append({"epoch": epoch, "file": path.name, "analyses": analyses})

    def set_status(self, state: str, reason: str | None, last_epoch: int | None) -> None:
        self.data["status"] = {"state": state, "reason": reason, "last_epoch": last_epoch}

    def set_stopping(self, outcome: str, epoch: int) -> None:
        """How a run with a stopping criterion ended: ``converged``, ``cap reached`` or ``plateau`` at ``epoch``."""
        if self.data["stopping"] is not None:
            self.data["stopping"] |= {"outcome": outcome, "epoch": epoch}

    def save(self) -> None:
        if self.enabled:
            self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            schema.write(self.path, self.data)
