"""One training run from parsed train.py arguments: build its parts, run the loop, record how it ended."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
from pathlib import Path

import torch

import datasets
import models
from training import rng
from training.arguments import data_options, evaluation_only, notice_reference_differences, stop_criterion
from training.distributed import wrap_model
from training.evaluate import evaluate
from training.loop import NonFiniteLoss, StopRequested
from training.optim import build_optimizer, build_schedule, regularization_loss
from training.performance import SpeedOptions, compiled, prepare_model
from training.resume import apply_override, restore_training_state
from training.run_record import RunRecord
from training.trainer import Trainer, TrainSettings
from utils.checkpoints import LAST_CHECKPOINT, load_model_state, snapshot_sort_epoch
from utils.errors import UserError
from utils.fileio import remove_stale_temp_files
from utils.paths import run_subdir

logger = logging.getLogger(__name__)

# How a run that raised ends, by exception (first match): the state run.json records.
ENDINGS = ((StopRequested, "interrupted"), (NonFiniteLoss, "non_finite"), (UserError, "failed"))


@contextlib.contextmanager
def stop_signals():
    """Turn SIGINT/SIGTERM into a stop request the loop checks between steps."""
    received: list[int] = []
    handler = lambda signum, frame: received.append(signum)  # noqa: E731
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def deterministic_mode(enabled: bool):
    previous = torch.are_deterministic_algorithms_enabled()
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def build_model(args: argparse.Namespace, data: datasets.DataBundle, device: torch.device, checkpoint: dict | None):
    model = models.get_model(
        args.arch, data.num_classes, data.in_channels, args.pretrained,
        image_size=data.image_size, download=args.download, options=models.model_options(vars(args)),
    )
    if checkpoint is not None:
        load_model_state(model, checkpoint["model_state_dict"], source=args.resume_from)
    else:  # a new run: its initialization (the weights are then saved as epoch 0)
        models.apply_conv_init(model, args.conv_init, args.conv_init_std)
    return model.to(device)


def run_evaluation(args, model, data, device) -> int:
    """--evaluate / --evaluate-train / --eval-regularization-loss: report and exit."""
    if args.eval_regularization_loss:
        print(f"regularization loss (wd/2 * sum ||W||^2, wd={args.weight_decay}): "
              f"{regularization_loss(model, args.weight_decay):.6f}")
        return 0
    splits = [data.train] if args.evaluate_train else [s for s in (data.val, data.test) if s is not None]
    for split in splits:
        result = evaluate(model, split.batches(args.batch_size, device=device), num_classes=data.num_classes)
        top5 = f"  top5 {result.top5:.2f}%" if result.top5 is not None else ""
        print(f"{split.name}: loss {result.loss:.4f}  top1 {result.top1:.2f}%{top5}  ({result.samples} samples)")
    return 0


def prepare_run(args, is_main: bool, open_log=None) -> tuple[Path, Path, Path]:
    """The run, results and TensorBoard folders; on rank 0, ``open_log(path)`` of the run's log
    file (train.py's: the library never configures logging)."""
    sub = run_subdir(dataset=args.dataset, arch=args.arch, seed=args.seed,
                     subsample_classes=args.subsample_classes, noise=args.noise)
    run_dir, results_dir, tb_dir = Path(args.models_path) / sub, Path(args.results) / sub, Path(args.tb_logdir) / sub
    if is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the run directory {run_dir}: {err.strerror}; check --models-path") from err
        log_file = args.log if os.path.dirname(args.log) else run_dir / args.log
        if open_log is not None:
            open_log(log_file)
        for stale in remove_stale_temp_files(run_dir):  # left by a run killed mid-write
            logger.info("removed %s, a temp file of an interrupted write", stale)
    return run_dir, results_dir, tb_dir


def make_writer(tb_dir: Path, args: argparse.Namespace):
    from torch.utils.tensorboard import SummaryWriter

    try:
        writer = SummaryWriter(log_dir=str(tb_dir))
    except OSError as err:
        raise UserError(f"cannot write TensorBoard events to {tb_dir}: {err.strerror}; check --tb-logdir") from err
    writer.add_text("args", "  \n".join(f"{k}: {v}" for k, v in sorted(vars(args).items())), 0)
    return writer


def train(args, checkpoint, ctx, device, stop, analyzers, open_log=None) -> int:
    """The run ``args`` describe (``checkpoint``: the snapshot resumed, or None); returns the exit code.
    ``open_log(path)`` is called with the run's log file once its folder exists."""
    rng.seed_everything(args.seed)
    data = datasets.build_data(args.dataset, data_options(args))
    model = build_model(args, data, device, checkpoint)
    if ctx.is_main:  # the run is valid: now say where it differs from the reference's
        notice_reference_differences(args)
    if evaluation_only(args):
        return run_evaluation(args, model, data, device)
    run_dir, results_dir, tb_dir = prepare_run(args, ctx.is_main, open_log)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer, scheduler, start_epoch = optimization(args, model, checkpoint, generator)
    facts = data.facts()
    record = run_record(args, model, facts, run_dir, checkpoint, start_epoch, enabled=ctx.is_main)
    writer = make_writer(tb_dir, args) if ctx.is_main else None
    speed = SpeedOptions(args.channels_last, args.amp, args.compile)
    trainer = Trainer(
        model=compiled(wrap_model(prepare_model(model, speed), ctx, device), speed), speed=speed,
        scaler=speed.grad_scaler(device), optimizer=optimizer, scheduler=scheduler, data=data,
        settings=train_settings(args), run_dir=run_dir, results_dir=results_dir, record=record,
        identity=identity(args, data, facts), device=device, generator=generator, ctx=ctx, writer=writer,
        analyzers=analyzers, stop_signal=stop,
    )
    if ctx.is_main:
        logger.info("run directory %s (seed %d, %d train / %d %s samples, %d classes, device %s)",
                    run_dir, args.seed, len(data.train), len(trainer.eval_split), trainer.eval_split.name,
                    data.num_classes, device)
        if data.val is None:
            logger.info("no validation split (--split 0): reporting the TEST set every epoch")
    try:
        return finish(trainer, start_epoch, run_dir)
    finally:
        if writer is not None:
            writer.close()


def optimization(args, model, checkpoint, generator) -> tuple:
    """``(optimizer, scheduler, start epoch)``, restored from a full snapshot (``--override``: with the
    command line's hyperparameters and a schedule restarted at the resumed epoch)."""
    def schedule(optimizer):
        return build_schedule(args.lr_schedule, optimizer, epochs=args.epochs, lr_step=args.lr_step,
                              lr_decay=args.lr_decay)

    optimizer = build_optimizer(args.optimizer, model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    scheduler = schedule(optimizer)
    resumed_epoch = restore_training_state(checkpoint, optimizer, scheduler, generator, args.start_epoch)
    if resumed_epoch is not None and args.override:
        apply_override(args, optimizer)
        scheduler = schedule(optimizer)
    start_epoch = resumed_epoch if resumed_epoch is not None else args.start_epoch  # < --epochs: checked in main
    return optimizer, scheduler, start_epoch


def run_record(args, model, facts: dict, run_dir: Path, checkpoint, start_epoch: int, *, enabled: bool) -> RunRecord:
    """run.json; a resumed run keeps its history and lists the snapshots a killed update missed."""
    record = RunRecord(run_dir / "run.json", args=dict(vars(args)), data=facts,
                       model={"arch": args.arch, "parameters": sum(p.numel() for p in model.parameters())},
                       criterion=stop_criterion(args), enabled=enabled)
    if start_epoch:
        record.resume_from(start_epoch, history=(checkpoint or {}).get("history"))
        on_disk = {snapshot_sort_epoch(path): path.name for path in run_dir.glob(f"{args.arch}_epoch*.pt")}
        for name in record.recover_snapshots(on_disk, start_epoch):
            logger.info("run.json did not list %s (the run was killed while updating it); added", name)
    return record


def identity(args, data, facts: dict) -> dict:
    """What every snapshot says about itself (besides its epoch, metrics and state)."""
    return {
        "kind": "snapshot", "arch": args.arch, "num_classes": data.num_classes, "in_channels": data.in_channels,
        "image_size": data.image_size, "dataset": args.dataset, "seed": args.seed, "args": dict(vars(args)),
        "data": {k: v for k, v in facts.items() if k != "corrupted_indices"},
    }


def train_settings(args) -> TrainSettings:
    return TrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, snapshot_every=args.snapshot_every,
        snapshot_all_until=args.snapshot_all_until, kill_plateaus=args.kill_plateaus,
        plateau_patience=args.plateau_patience, train_acc=args.train_acc, criterion=stop_criterion(args),
        show_progress=not args.no_progress, workers=args.workers,  # a bar on a terminal, else lines
        pipeline=args.data_pipeline,
    )


def stopping_outcome(outcome) -> str:
    """run.json's ``stopping.outcome`` of a run that ended normally."""
    return "converged" if outcome.converged else "plateau" if outcome.state == "plateau" else "cap reached"


def finish(trainer: Trainer, start_epoch: int, run_dir: Path) -> int:
    """Run the loop and record how it ended (:data:`ENDINGS`); interruptions leave a resumable last.pt."""
    record = trainer.record
    try:
        outcome = trainer.fit(start_epoch)
    except tuple(kind for kind, _ in ENDINGS) as err:
        state = next(state for kind, state in ENDINGS if isinstance(err, kind))
        epoch = record.epochs[-1]["epoch"] if record.epochs else start_epoch
        name = signal.Signals(err.signum).name if isinstance(err, StopRequested) else None
        record.set_status(state, f"{name} during epoch {epoch + 1}" if name else str(err), epoch)
        with contextlib.suppress(UserError):
            record.save()  # best effort: the disk may be full
        if name is None:
            raise
        logger.warning("stopped by %s during epoch %d; resume with: python train.py --resume-from %s",
                       name, epoch + 1, run_dir / LAST_CHECKPOINT)
        return 128 + err.signum
    record.set_status(outcome.state, outcome.reason, outcome.last_epoch)
    record.set_stopping(stopping_outcome(outcome), outcome.last_epoch)
    test = trainer.evaluate(trainer.data.test) if trainer.data.val is not None else None
    if test is not None:
        record.data["test"] = test.to_dict()
    record.save()
    if outcome.converged:
        logger.info("%s at epoch %d", outcome.reason, outcome.last_epoch)
    elif outcome.reason:
        logger.info("stopped early at epoch %d: %s", outcome.last_epoch, outcome.reason)
    elif record.data["stopping"] is not None and trainer.ctx.is_main:
        logger.warning("the stopping criterion was not met by epoch %d (--epochs, the cap); raise --epochs or "
                       "resume to go on", outcome.last_epoch)
    summary = f"; test top1 {test.top1:.2f}%" if test is not None else ""
    if trainer.ctx.is_main:
        logger.info("done: snapshots and run.json in %s%s", run_dir, summary)
    return 0
