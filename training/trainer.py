"""The epoch loop: train, evaluate, snapshot, analyze, record. Entry scripts assemble its parts."""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from training import rng
from training.analyzers import run_analyzers, snapshot_subject
from training.distributed import DistContext, barrier, rank0_decides, unwrap
from training.evaluate import EvalResult, evaluate
from training.loop import train_one_epoch
from training.optim import current_lr
from training.performance import SpeedOptions
from training.run_record import RunRecord
from utils.checkpoints import LAST_CHECKPOINT, save_snapshot, snapshot_filename

logger = logging.getLogger(__name__)

PLATEAU_WINDOW = 10  # --kill-plateaus only looks at the first epochs, as in the reference
EVAL_PIXELS = 2**20  # pixels per channel of an evaluation batch: 1024 images of 32x32 (at 224x224: the training batch)
MAX_EVAL_BATCH = 4096


def eval_batch_size(batch_size: int, image_size: int, device: torch.device) -> int:
    """Evaluation needs no gradients: on a GPU, batches far larger than training's for small images
    (never smaller); on the CPU the training batch, which measured faster there (cache-sized)."""
    if device.type == "cpu":
        return batch_size
    return max(batch_size, min(MAX_EVAL_BATCH, EVAL_PIXELS // image_size**2))


def criterion_met(criterion: dict | None, row: dict) -> bool:
    """Whether an epoch's row (its ``train_eval_loss``/``train_eval_top1``) meets the stopping criterion
    (``{"train_loss": X}``: loss <= X; ``{"train_top1": P}``: top-1 >= P %); False without one."""
    if not criterion:
        return False
    if "train_loss" in criterion:
        return row.get("train_eval_loss") is not None and row["train_eval_loss"] <= criterion["train_loss"]
    return row.get("train_eval_top1") is not None and row["train_eval_top1"] >= criterion["train_top1"]


def describe_criterion(criterion: dict, row: dict) -> str:
    """``train loss 0.0087 <= 0.01`` or ``train top-1 100.00% >= 99.5%`` for a log line."""
    if "train_loss" in criterion:
        return f"train loss {row.get('train_eval_loss', float('nan')):.4g} <= {criterion['train_loss']:g}"
    return f"train top-1 {row.get('train_eval_top1', float('nan')):.2f}% >= {criterion['train_top1']:g}%"


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
    criterion: dict | None = None  # training.arguments.stop_criterion: stop once an epoch meets it
    show_progress: bool = True
    workers: int = 0
    pipeline: str = "fast"  # datasets.data.PIPELINES


@dataclass
class Outcome:
    state: str  # finished | plateau
    last_epoch: int
    reason: str | None = None
    converged: bool = False  # the stopping criterion was met at last_epoch


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

    @functools.cached_property
    def train_eval_split(self):
        """The training images and the labels the run trains on (noisy ones included), without augmentation."""
        train = self.data.train
        return dataclasses.replace(train, view=train.view.for_eval())

    def evaluate(self, split) -> EvalResult:
        batches = split.batches(
            eval_batch_size(self.settings.batch_size, self.data.image_size, self.device), device=self.device,
            generator=self.generator, workers=self.settings.workers, rank=self.ctx.rank,
            world_size=self.ctx.world_size, pipeline=self.settings.pipeline,
        )
        return evaluate(
            self.model,
            batches,
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
            converged = rank0_decides(criterion_met(self.settings.criterion, row), self.ctx)
            last = plateau or converged or epoch == self.settings.epochs
            due = should_snapshot(
                epoch,
                every=self.settings.snapshot_every,
                all_until=self.settings.snapshot_all_until,
                last_epoch=self.settings.epochs,
            )
            self.record.add_epoch(row)
            self._checkpoint(epoch, row, snapshot=due or last)
            if converged:
                reason = f"converged: {describe_criterion(self.settings.criterion, row)}"
                return Outcome("finished", epoch, reason, converged=True)
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
        if self.settings.train_acc or self.settings.criterion:
            train_eval = self.evaluate(self.train_eval_split)
            row |= {"train_eval_loss": train_eval.loss, "train_eval_top1": train_eval.top1}
            if self.settings.train_acc:
                row |= {"train_top1": train_eval.top1, "train_top5": train_eval.top5}
        row["time_s"] = round(time.perf_counter() - start, 3)
        self._log_epoch(row)
        return row

    def _log_epoch(self, row: dict) -> None:
        if not self.ctx.is_main:
            return
        top5 = f" top5 {row['val_top5']:.2f}" if row["val_top5"] is not None else ""
        train_eval = (f"  train-eval loss {row['train_eval_loss']:.4f} top1 {row['train_eval_top1']:.2f}"
                      if "train_eval_loss" in row else "")
        logger.info(
            "epoch %d/%d  train loss %.4f  %s loss %.4f top1 %.2f%s%s  lr %.3g (%.1fs)",
            row["epoch"], self.settings.epochs, row["train_loss"], row["eval_split"], row["val_loss"],
            row["val_top1"], top5, train_eval, row["lr"], row["time_s"],
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
        if "train_eval_loss" in row:  # the whole training set in eval mode (the stopping criterion's)
            self.writer.add_scalar("Loss/train_eval", row["train_eval_loss"], step)
            self.writer.add_scalar("Accuracy/train_eval/top1", row["train_eval_top1"], step)
        self.writer.add_scalar("Lr", row["lr"], step)
        self.writer.flush()
