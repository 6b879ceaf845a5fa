"""Train or fine-tune a ConvNet with self-describing snapshots (the reference's train.py, fixed).

    python train.py --arch lenet --dataset digits --epochs 3 --snapshot-every 1

Snapshots, run.json and the log go to ``<models-path>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``,
TensorBoard events to the same sub-path of ``--tb-logdir``. Runs under ``torchrun`` use DDP.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Sequence

import torch

import datasets
import models
from datasets.data import PIPELINES, PIXEL_SHUFFLE_MODES, DataOptions
from training import rng
from training.analyzers import add_analyzer_arguments, analyzers_from_args
from training.distributed import init_distributed, shutdown, wrap_model
from training.evaluate import evaluate
from training.loop import NonFiniteLoss, StopRequested
from training.performance import AMP_DTYPES, SpeedOptions, compiled, prepare_model
from training.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_schedule, regularization_loss
from training.resume import merge_resume_args
from training.run_record import RunRecord
from training.trainer import Trainer, TrainSettings
from utils.checkpoints import LAST_CHECKPOINT, load_checkpoint, load_model_state, snapshot_sort_epoch
from utils.choices import add_device_args, print_missing_choice
from utils.cli import run_main, setup_logging
from utils.devices import resolve_device
from utils.errors import UserError
from utils.fileio import remove_stale_temp_files
from utils.paths import check_log_folder, check_output_folder, run_subdir
from utils.progress import progress_enabled

logger = logging.getLogger("train")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Model training/finetuning.")
    p.add_argument("--arch", default=None, help="Network architecture to be trained. Run without this option to see a list of all supported archs.")
    p.add_argument("--dataset", default=None, help="Dataset to train the network on. Run without this option to see a list of supported datasets.")
    p.add_argument("--subsample-classes", type=int, default=0, help="Subsample only SUBSAMPLE_CLASSES classes from DATASET. If set to 0 (default) all classes of DATASET are used.")
    p.add_argument("--class-sample-seed", type=int, default=42, help="Numpy random seed used for sampling classes [default = 42].")
    p.add_argument("--noise", type=float, default=0.0, help="Ratio of corrupted labels, in [0., 1.]. Set to -1 to enable pixel shuffle in place of label noise [default = 0].")
    p.add_argument("--noise-seed", type=int, default=12345, help="Numpy seed for corrupting labels or shuffling pixels [default = 12345].")
    p.add_argument("--pixel-shuffle", choices=PIXEL_SHUFFLE_MODES, default="per_image", help="With --noise -1: one permutation per image, or one shared by all images [default = per_image].")
    p.add_argument("--augmentation", action="store_true", help="Enable data augmentation (random crop; horizontal flip where it makes sense) [default = off].")
    p.add_argument("--upscale", action="store_true", help="Upscale image data to 224x224 pixels [default = off].")
    p.add_argument("--upscale-padding", action="store_true", help="Upscale image data to 112x112 pixels, then pad with zeros to get a final resolution of 224x224 [default = off].")
    p.add_argument("--pretrained", action="store_true", help="Load pretrained architecture on ImageNet from the local model-zoo cache [default = off].")
    p.add_argument("--split", type=float, default=0.0, help="Validation split size, a fraction in [0, 1) of the training set [default = 0].")
    p.add_argument("--stratified", action="store_true", help="Validation split with equal balance of samples per class [default = off].")
    p.add_argument("--split-seed", type=int, default=42, help="Seed used for shuffling the data before making the validation split [default = 42].")
    p.add_argument("--shuffle", action="store_true", help="Shuffle the training data before making the validation split [default = off]. Training batches are always shuffled.")
    p.add_argument("--evaluate", action="store_true", help="Evaluate the --resume-from model on the test (and validation) set and exit.")
    p.add_argument("--evaluate-train", action="store_true", help="Evaluate the --resume-from model on the training set and exit.")
    p.add_argument("--eval-regularization-loss", action="store_true", help="Print the regularization loss wd/2 * sum ||W||^2 of the model and quit. The WEIGHT_DECAY option should be set as well.")
    add_device_args(p)
    p.add_argument("--workers", "-j", type=int, default=1, help="Number of parallel data processing jobs (image-folder datasets) [default = 1].")
    p.add_argument("--data-path", default="./data", help="Path to the local dataset files [default = './data'].")
    p.add_argument("--download", action="store_true", help="Allow downloading datasets or pretrained weights [default = off: offline].")
    p.add_argument("--epochs", type=int, default=20, help="The number of epochs used for training [default = 20].")
    p.add_argument("--start-epoch", type=int, default=0, help="Starting epoch when resuming from plain weights; full snapshots restore their own [default = 0].")
    p.add_argument("--batch-size", type=int, default=128, help="The minibatch size for training (global, across processes) [default = 128].")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd", help="Supported optimizers: sgd, adam, adamw [default = sgd].")
    p.add_argument("--lr", type=float, default=0.001, help="The base learning rate [default = 0.001].")
    p.add_argument("--lr-step", type=int, default=0, help="The step size, in epochs, of the learning rate decay [default = off].")
    p.add_argument("--lr-decay", type=float, default=0.0, help="The decay factor of the learning rate decay [default = off].")
    p.add_argument("--lr-schedule", choices=sorted(SCHEDULES), default="step", help="step (uses --lr-step/--lr-decay), cosine (to 0 over --epochs) or none [default = step].")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="The weight decay coefficient [default = 1e-4].")
    p.add_argument("--momentum", type=float, default=0.9, help="The momentum coefficient for SGD [default = 0.9].")
    p.add_argument("--override", action="store_true", help="When resuming from a snapshot with different hyperparameters, overrides the values restored from the snapshot with the command line arguments.")
    p.add_argument("--models-path", default="./models", help="The dirname where to store/load models [default = './models'].")
    p.add_argument("--results", default="./results", help="Where per-snapshot analyses are written [default = './results'].")
    p.add_argument("--seed", type=int, default=None, help="PyTorch PRNG seed [default = a random seed, recorded in run.json].")
    p.add_argument("--deterministic", action="store_true", help="Use deterministic algorithms (bit-exact resumes on the CPU) [default = off].")
    p.add_argument("--tb-logdir", default="./tensorboard", help="The tensorboard log folder [default = './tensorboard'].")
    p.add_argument("--snapshot-every", type=int, default=0, help="Snapshot the model state every E epochs [default = 0: only the first and last].")
    p.add_argument("--snapshot-all-until", type=int, default=0, help="Optional. Snapshot every epoch until the specified one, then snapshot according to the --snapshot-every argument.")
    p.add_argument("--resume-from", default="", help="Path to a model snapshot (e.g. <run>/last.pt) [default = None].")
    p.add_argument("--kill-plateaus", action="store_true", help="Quit training if the model validation accuracy plateaus in the first 10 epochs.")
    p.add_argument("--plateau-patience", type=int, default=3, help="Epochs without improvement that count as a plateau [default = 3].")
    p.add_argument("--train-acc", action="store_true", help="(Optional) compute train accuracy and report it during training.")
    p.add_argument("--unnormalize", action="store_true", help="Disable data normalization and represent instead pixel values in [0,1]. [Default = False].")
    p.add_argument("--data-pipeline", choices=PIPELINES, default="fast", help="fast: in-memory images cut and augmented in batches on the device; dataloader: per-sample PIL transforms in a DataLoader with --workers processes, as the reference tool (image folders always use it) [default = fast].")
    p.add_argument("--channels-last", action="store_true", help="Use the channels-last memory format (faster convolutions on recent GPUs) [default = off].")
    p.add_argument("--amp", choices=sorted(AMP_DTYPES), default="off", help="Automatic mixed precision on CUDA: bf16 or fp16 (with loss scaling) [default = off].")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (first epoch slower) [default = off].")
    p.add_argument("--no-progress", action="store_true", help="Disable the progress bar [default: shown on terminals].")
    p.add_argument("--log", default="train.log", help="Logfile name, inside the run directory unless it has a folder [default = 'train.log'].")
    add_analyzer_arguments(p)
    return p


def explicit_flags(argv: Sequence[str] | None) -> set[str]:
    """The destinations the user actually typed (defaults suppressed)."""
    parser = get_args_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def validate_args(args: argparse.Namespace) -> None:
    checks = [
        (args.epochs >= 1, f"--epochs {args.epochs} must be at least 1"),
        (args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1"),
        (args.lr >= 0, f"--lr {args.lr} must not be negative"),
        (args.weight_decay >= 0, f"--weight-decay {args.weight_decay} must not be negative"),
        (args.momentum >= 0, f"--momentum {args.momentum} must not be negative"),
        (args.snapshot_every >= 0, f"--snapshot-every {args.snapshot_every} must not be negative"),
        (args.workers >= 0, f"--workers {args.workers} must not be negative"),
        (0 <= args.start_epoch < args.epochs or args.evaluate or args.evaluate_train,
         f"--start-epoch {args.start_epoch} must be in [0, --epochs)"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def check_resumed_epoch(args: argparse.Namespace, checkpoint: dict | None) -> None:
    """A full snapshot continues after its epoch: refuse, before any work, one already at --epochs."""
    training = not (args.evaluate or args.evaluate_train or args.eval_regularization_loss)
    if training and checkpoint is not None and "optimizer_state_dict" in checkpoint:
        epoch = int(checkpoint.get("epoch") or 0)
        if epoch >= args.epochs:
            raise UserError(f"the snapshot is at epoch {epoch}, already at --epochs {args.epochs}; raise --epochs")


def check_output_folders(args: argparse.Namespace) -> None:
    """Training writes snapshots, analyses, TensorBoard events and a log: fail before any work
    when one of those folders cannot be written (the evaluation modes write nothing)."""
    if args.evaluate or args.evaluate_train or args.eval_regularization_loss:
        return
    for folder, flag in ((args.models_path, "--models-path"), (args.results, "--results"),
                         (args.tb_logdir, "--tb-logdir")):
        check_output_folder(folder, flag)
    check_log_folder(args.log)


def data_options(args: argparse.Namespace) -> DataOptions:
    return DataOptions(
        data_path=args.data_path, download=args.download, subsample_classes=args.subsample_classes,
        class_sample_seed=args.class_sample_seed, noise=args.noise, noise_seed=args.noise_seed,
        pixel_shuffle_mode=args.pixel_shuffle, split=args.split, stratified=args.stratified,
        split_seed=args.split_seed, shuffle=args.shuffle, augmentation=args.augmentation,
        upscale=args.upscale, upscale_padding=args.upscale_padding, unnormalize=args.unnormalize,
    )


def load_resume(args: argparse.Namespace, argv: Sequence[str] | None) -> dict | None:
    """Read --resume-from and merge its stored arguments into ``args`` (see training/resume.py)."""
    if not args.resume_from:
        return None
    checkpoint = load_checkpoint(args.resume_from)
    saved = checkpoint.get("args") or {}
    merged = merge_resume_args(vars(args), explicit_flags(argv), saved, override=args.override)
    vars(args).update(merged)
    if args.arch is None or args.dataset is None:
        raise UserError(f"{args.resume_from} holds plain weights; pass --arch and --dataset with it")
    return checkpoint


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
        image_size=data.image_size, download=args.download,
    )
    if checkpoint is not None:
        load_model_state(model, checkpoint["model_state_dict"], source=args.resume_from)
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


def prepare_run(args, is_main: bool) -> tuple[Path, Path, Path]:
    """The run, results and TensorBoard folders; logging to the run's log file on rank 0."""
    sub = run_subdir(dataset=args.dataset, arch=args.arch, seed=args.seed,
                     subsample_classes=args.subsample_classes, noise=args.noise)
    run_dir, results_dir, tb_dir = Path(args.models_path) / sub, Path(args.results) / sub, Path(args.tb_logdir) / sub
    if is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the run directory {run_dir}: {err.strerror}; check --models-path") from err
        log_file = args.log if os.path.dirname(args.log) else run_dir / args.log
        setup_logging(str(log_file))
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


def restore_training_state(checkpoint, optimizer, scheduler, generator) -> int:
    """Restore optimizer/scheduler/RNG from a full snapshot; return the epoch to continue after."""
    if checkpoint is None or "optimizer_state_dict" not in checkpoint:
        return None
    if checkpoint.get("args", {}).get("optimizer") == type(optimizer).__name__.lower():
        optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    if scheduler is not None and checkpoint.get("scheduler_state_dict"):
        scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
    if checkpoint.get("rng_state"):
        rng.restore(checkpoint["rng_state"], generator)
    return int(checkpoint["epoch"])


def apply_override(args, optimizer) -> None:
    """--override: the command line's hyperparameters replace the restored optimizer's."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = args.lr
        group["weight_decay"] = args.weight_decay
        if "momentum" in group:
            group["momentum"] = args.momentum


def main(argv: Sequence[str] | None = None, *, analyzers: list | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    checkpoint = load_resume(args, argv)
    if checkpoint is None and print_missing_choice(args):
        return 0
    validate_args(args)
    check_resumed_epoch(args, checkpoint)
    check_output_folders(args)
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    device = resolve_device(cuda=args.cuda, device=args.device)
    SpeedOptions(args.channels_last, args.amp, args.compile).validate(device)
    ctx, device = init_distributed(device)
    try:
        with deterministic_mode(args.deterministic), stop_signals() as stop:
            return train(args, checkpoint, ctx, device, stop, analyzers_from_args(args) + list(analyzers or []))
    finally:
        shutdown(ctx)


def train(args, checkpoint, ctx, device, stop, analyzers) -> int:
    rng.seed_everything(args.seed)
    data = datasets.build_data(args.dataset, data_options(args))
    model = build_model(args, data, device, checkpoint)
    if args.evaluate or args.evaluate_train or args.eval_regularization_loss:
        return run_evaluation(args, model, data, device)
    run_dir, results_dir, tb_dir = prepare_run(args, ctx.is_main)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = build_optimizer(args.optimizer, model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    scheduler = build_schedule(args.lr_schedule, optimizer, epochs=args.epochs, lr_step=args.lr_step,
                               lr_decay=args.lr_decay)
    resumed_epoch = restore_training_state(checkpoint, optimizer, scheduler, generator)
    if resumed_epoch is not None and args.override:
        apply_override(args, optimizer)
        scheduler = build_schedule(args.lr_schedule, optimizer, epochs=args.epochs, lr_step=args.lr_step,
                                   lr_decay=args.lr_decay)
    start_epoch = resumed_epoch if resumed_epoch is not None else args.start_epoch  # < --epochs: checked in main
    plain_args = {k: v for k, v in vars(args).items()}
    facts = data.facts()
    record = RunRecord(run_dir / "run.json", args=plain_args, data=facts,
                       model={"arch": args.arch, "parameters": sum(p.numel() for p in model.parameters())},
                       enabled=ctx.is_main)
    if start_epoch:
        record.resume_from(start_epoch, history=(checkpoint or {}).get("history"))
        on_disk = {snapshot_sort_epoch(path): path.name for path in run_dir.glob(f"{args.arch}_epoch*.pt")}
        for name in record.recover_snapshots(on_disk, start_epoch):
            logger.info("run.json did not list %s (the run was killed while updating it); added", name)
    identity = {
        "kind": "snapshot", "arch": args.arch, "num_classes": data.num_classes, "in_channels": data.in_channels,
        "image_size": data.image_size, "dataset": args.dataset, "seed": args.seed, "args": plain_args,
        "data": {k: v for k, v in facts.items() if k != "corrupted_indices"},
    }
    settings = TrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, snapshot_every=args.snapshot_every,
        snapshot_all_until=args.snapshot_all_until, kill_plateaus=args.kill_plateaus,
        plateau_patience=args.plateau_patience, train_acc=args.train_acc,
        show_progress=not args.no_progress and progress_enabled(), workers=args.workers,
        pipeline=args.data_pipeline,
    )
    writer = make_writer(tb_dir, args) if ctx.is_main else None
    speed = SpeedOptions(args.channels_last, args.amp, args.compile)
    trainer = Trainer(
        model=compiled(wrap_model(prepare_model(model, speed), ctx, device), speed), speed=speed,
        scaler=speed.grad_scaler(device), optimizer=optimizer, scheduler=scheduler, data=data,
        settings=settings, run_dir=run_dir, results_dir=results_dir, record=record, identity=identity,
        device=device, generator=generator, ctx=ctx, writer=writer, analyzers=analyzers, stop_signal=stop,
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


def finish(trainer: Trainer, start_epoch: int, run_dir: Path) -> int:
    """Run the loop and record how it ended; interruptions leave a resumable last.pt."""
    record, last = trainer.record, run_dir / LAST_CHECKPOINT
    try:
        outcome = trainer.fit(start_epoch)
    except StopRequested as stop:
        name = signal.Signals(stop.signum).name
        epoch = record.epochs[-1]["epoch"] if record.epochs else start_epoch
        record.set_status("interrupted", f"{name} during epoch {epoch + 1}", epoch)
        record.save()
        logger.warning("stopped by %s during epoch %d; resume with: python train.py --resume-from %s",
                       name, epoch + 1, last)
        return 128 + stop.signum
    except NonFiniteLoss as err:
        epoch = record.epochs[-1]["epoch"] if record.epochs else start_epoch
        record.set_status("non_finite", str(err), epoch)
        record.save()
        raise
    except UserError as err:  # e.g. a snapshot that could not be written (disk full)
        epoch = record.epochs[-1]["epoch"] if record.epochs else start_epoch
        record.set_status("failed", str(err), epoch)
        with contextlib.suppress(UserError):
            record.save()  # best effort: the disk may still be full
        raise
    record.set_status(outcome.state, outcome.reason, outcome.last_epoch)
    test = trainer.evaluate(trainer.data.test) if trainer.data.val is not None else None
    if test is not None:
        record.data["test"] = test.to_dict()
    record.save()
    if outcome.reason:
        logger.info("stopped early at epoch %d: %s", outcome.last_epoch, outcome.reason)
    summary = f"; test top1 {test.top1:.2f}%" if test is not None else ""
    if trainer.ctx.is_main:
        logger.info("done: snapshots and run.json in %s%s", run_dir, summary)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
