"""The epoch loop: train, evaluate, snapshot, analyze, record. Entry scripts assemble its parts."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from training import rng
from training.analyzers import run_analyzers, snapshot_subject
from training.distributed import DistContext, barrier, unwrap
from training.evaluate import EvalResult, evaluate
from training.loop import train_one_epoch
from training.optim import current_lr
from training.performance import SpeedOptions
from training.run_record import RunRecord
from utils.checkpoints import LAST_CHECKPOINT, save_snapshot, snapshot_filename

logger = logging.getLogger(__name__)

PLATEAU_WINDOW = 10  # --kill-plateaus only looks at the first epochs, as in the reference


def should_snapshot(epoch: int, *, every: int, all_until: int, last_epoch: int) -> bool:
    """Every epoch up to ``all_until``, then every ``every`` epochs, and always the last epoch."""
    return epoch <= all_until or (every > 0 and epoch % every == 0) or epoch == last_epoch


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    snapshot_every: int = 0
    snapshot_all_until: int = 0
    kill_plateaus: bool = False
    plateau_patience: int = 3
    train_acc: bool = False
    show_progress: bool = True
    workers: int = 0
    pipeline: str = "fast"  # datasets.data.PIPELINES


@dataclass
class Outcome:
    state: str  # finished | plateau
    last_epoch: int
    reason: str | None = None


@dataclass
class Trainer:
    """Owns one run's moving parts; :meth:`fit` trains from ``start_epoch`` to ``settings.epochs``."""

    model: nn.Module  # possibly DDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: object
    data: object  # datasets.DataBundle
    settings: TrainSettings
    run_dir: Path
    results_dir: Path
    record: RunRecord
    identity: dict  # arch, num_classes, in_channels, image_size, dataset, seed, args, data facts
    device: torch.device
    generator: torch.Generator
    ctx: DistContext = field(default_factory=DistContext)
    writer: object = None  # SummaryWriter on rank 0
    analyzers: list = field(default_factory=list)
    probes: dict = field(default_factory=dict)  # the snapshot analyses' probe sets, drawn once per run
    stop_signal: object = lambda: None
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    scaler: object = None

    @property
    def eval_split(self):
        return self.data.val if self.data.val is not None else self.data.test

    def _batches(self, split, *, shuffle: bool):
        return split.batches(
            self.settings.batch_size,
            shuffle=shuffle,
            device=self.device,
            generator=self.generator,
            workers=self.settings.workers,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            pipeline=self.settings.pipeline,
        )

    def evaluate(self, split) -> EvalResult:
        return evaluate(
            self.model,
            self._batches(split, shuffle=False),
            num_classes=self.data.num_classes,
            distributed=self.ctx.enabled,
            speed=self.speed,
        )

    # -- snapshots -----------------------------------------------------------------------------
    def _payload(self, epoch: int, metrics: dict) -> dict:
        return {
            **self.identity,
            "epoch": epoch,
            "metrics": metrics,
            "history": list(self.record.epochs),
            "model_state_dict": unwrap(self.model).state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.scheduler.state_dict() if self.scheduler else None,
            "rng_state": rng.capture(self.generator),
        }

    def _checkpoint(self, epoch: int, metrics: dict, *, snapshot: bool) -> None:
        """Write the epoch's snapshot (if due) and refresh last.pt; run analyzers on the snapshot."""
        if self.ctx.is_main:
            payload = self._payload(epoch, metrics)
            if snapshot:
                path = save_snapshot(self.run_dir / snapshot_filename(self.identity["arch"], epoch), payload)
                self.record.add_snapshot(epoch, path, self._analyze(epoch, path, payload["rng_state"]))
            save_snapshot(self.run_dir / LAST_CHECKPOINT, payload)
            self.record.save()
        barrier(self.ctx)

    def _analyze(self, epoch: int, path: Path, rng_state: dict) -> dict:
        if not self.analyzers:
            return {}
        subject = snapshot_subject(unwrap(self.model), epoch=epoch, path=path, data=self.data, device=self.device,
                                   results_dir=self.results_dir, identity=self.identity, probes=self.probes)
        try:
            results = run_analyzers(self.analyzers, subject)
        finally:
            rng.restore(rng_state, self.generator)  # analyses never perturb training
        self._log_analyses(epoch, results)
        return {name: {k: v for k, v in values.items() if isinstance(v, (int, float))} for name, values in results.items()}

    def _log_analyses(self, epoch: int, results: dict) -> None:
        if self.writer is None:
            return
        for name, values in results.items():
            for key, value in values.items():
                if isinstance(value, torch.Tensor):
                    self.writer.add_histogram(f"{name}/{key}", value, epoch)
                elif isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{name}/{key}", value, epoch)

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, start_epoch: int) -> Outcome:
        if start_epoch == 0:
            self._checkpoint(0, {}, snapshot=True)
        best, since_best = max([row.get("val_top1", 0.0) for row in self.record.epochs] or [0.0]), 0
        epoch = start_epoch
        for epoch in range(start_epoch + 1, self.settings.epochs + 1):
            row = self._run_epoch(epoch)
            improved = row["val_top1"] > best
            best, since_best = (row["val_top1"], 0) if improved else (best, since_best + 1)
            plateau = (
                self.settings.kill_plateaus
                and epoch <= PLATEAU_WINDOW
                and since_best >= self.settings.plateau_patience
            )
            last = plateau or epoch == self.settings.epochs
            due = should_snapshot(
                epoch,
                every=self.settings.snapshot_every,
                all_until=self.settings.snapshot_all_until,
                last_epoch=self.settings.epochs,
            )
            self.record.add_epoch(row)
            self._checkpoint(epoch, row, snapshot=due or last)
            if plateau:
                reason = (
                    f"validation top-1 did not improve for {since_best} epochs "
                    f"(best {best:.2f}%) within the first {PLATEAU_WINDOW} epochs"
                )
                return Outcome("plateau", epoch, reason)
        return Outcome("finished", epoch)

    def _run_epoch(self, epoch: int) -> dict:
        start = time.perf_counter()
        lr = current_lr(self.optimizer)
        train_loss = train_one_epoch(
            self.model,
            self._batches(self.data.train, shuffle=True),
            self.optimizer,
            epoch=epoch,
            world_size=self.ctx.world_size,
            stop_signal=self.stop_signal,
            show_progress=self.settings.show_progress and self.ctx.is_main,
            speed=self.speed,
            scaler=self.scaler,
        )
        if self.scheduler is not None:
            self.scheduler.step()
        val = self.evaluate(self.eval_split)
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": train_loss,
            "val_loss": val.loss,
            "val_top1": val.top1,
            "val_top5": val.top5,
            "eval_split": self.eval_split.name,
        }
        if self.settings.train_acc:
            train_eval = self.evaluate(self.data.train)
            row |= {"train_top1": train_eval.top1, "train_top5": train_eval.top5}
        row["time_s"] = round(time.perf_counter() - start, 3)
        self._log_epoch(row)
        return row

    def _log_epoch(self, row: dict) -> None:
        if not self.ctx.is_main:
            return
        top5 = f"  top5 {row['val_top5']:6.2f}" if row["val_top5"] is not None else ""
        train_acc = f"  train top1 {row['train_top1']:6.2f}" if "train_top1" in row else ""
        logger.info(
            "epoch %3d/%d  train loss %.4f  %s loss %.4f  top1 %6.2f%s%s  lr %.3g  (%.1fs)",
            row["epoch"], self.settings.epochs, row["train_loss"], row["eval_split"], row["val_loss"],
            row["val_top1"], top5, train_acc, row["lr"], row["time_s"],
        )
        if self.writer is None:
            return
        step, split = row["epoch"], row["eval_split"]
        self.writer.add_scalar("Loss/train", row["train_loss"], step)
        self.writer.add_scalar(f"Loss/{split}", row["val_loss"], step)
        self.writer.add_scalar(f"Accuracy/{split}/top1", row["val_top1"], step)
        if row["val_top5"] is not None:
            self.writer.add_scalar(f"Accuracy/{split}/top5", row["val_top5"], step)
        if "train_top1" in row:
            self.writer.add_scalar("Accuracy/train/top1", row["train_top1"], step)
        self.writer.add_scalar("Lr", row["lr"], step)
        self.writer.flush()
