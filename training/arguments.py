"""train.py's flags and the checks made before any work.

The parser lives here, not in train.py, so that ``sweep.py`` checks every member of a family with
train.py's own parser and checks before anything starts.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from datasets import get_dataset_spec
from datasets.data import PIPELINES
from datasets.options import PIXEL_SHUFFLE_MODES, DataOptions, flag_of
from datasets.reference import SNAPSHOT, add_convention_arguments
from models import CONV_INITS, DEFAULT_CONV_STD, check_model_options, default_options, model_options
from training.analyzers import add_analyzer_arguments
from training.optim import OPTIMIZERS, SCHEDULES
from training.performance import AMP_DTYPES
from utils.devices import add_device_args
from utils.errors import UserError, require
from utils.notices import notice
from utils.paths import check_log_folder, check_output_folder


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Model training/finetuning.")
    data = p.add_argument_group("data", "The dataset and what is done to it.")
    data.add_argument("--dataset", default=None, help="Dataset to train the network on. Run without this option to see a list of supported datasets.")
    data.add_argument("--data-path", default="./data", help="Path to the local dataset files [default = './data'].")
    data.add_argument("--download", action="store_true", help="Allow downloading datasets or pretrained weights [default = off: offline].")
    data.add_argument("--subsample-classes", type=int, default=0, help="Subsample only SUBSAMPLE_CLASSES classes from DATASET. If set to 0 (default) all classes of DATASET are used.")
    data.add_argument("--class-sample-seed", type=int, default=42, help="Numpy random seed used for sampling classes [default = 42].")
    data.add_argument("--noise", type=float, default=0.0, help="Ratio of corrupted labels, in [0., 1.]. Set to -1 to enable pixel shuffle in place of label noise [default = 0].")
    data.add_argument("--noise-seed", type=int, default=12345, help="Numpy seed for corrupting labels or shuffling pixels [default = 12345].")
    data.add_argument("--pixel-shuffle", choices=PIXEL_SHUFFLE_MODES, default="per_image", help="With --noise -1: one permutation per image, or one shared by all images [default = per_image].")
    data.add_argument("--augmentation", action="store_true", help="Enable data augmentation (random crop; horizontal flip where it makes sense) [default = off].")
    data.add_argument("--upscale", action="store_true", help="Upscale image data to 224x224 pixels [default = off].")
    data.add_argument("--upscale-padding", action="store_true", help="Upscale image data to 112x112 pixels, then pad with zeros to get a final resolution of 224x224 [default = off].")
    data.add_argument("--unnormalize", action="store_true", help="Disable data normalization and represent instead pixel values in [0,1]. [Default = False].")
    data.add_argument("--split", type=float, default=0.0, help="Validation split size, a fraction in [0, 1) of the training set [default = 0].")
    data.add_argument("--stratified", action="store_true", help="Validation split with equal balance of samples per class [default = off].")
    data.add_argument("--split-seed", type=int, default=42, help="Seed used for shuffling the data before making the validation split [default = 42].")
    data.add_argument("--shuffle", action="store_true", help="Shuffle the training data before making the validation split [default = off]. Training batches are always shuffled.")
    add_convention_arguments(data)
    data.add_argument("--data-pipeline", choices=PIPELINES, default="fast", help="fast: in-memory images cut and augmented in batches on the device; dataloader: per-sample PIL transforms in a DataLoader with --workers processes, as the reference tool (image folders always use it) [default = fast].")
    data.add_argument("--workers", "-j", type=int, default=1, help="Number of parallel data processing jobs (image-folder datasets) [default = 1].")
    model = p.add_argument_group("model", "The network.")
    model.add_argument("--arch", default=None, help="Network architecture to be trained. Run without this option to see a list of all supported archs.")
    model.add_argument("--conv-init", choices=CONV_INITS, default="default", help="Initialization of the convolutions' weights: default = the architecture's own; normal = N(0, --conv-init-std), as the DSE paper's utility study (0.1 starts with a high DSE, 0.01 with a low one). Recorded in the snapshot; a resumed run keeps it [default = default].")
    model.add_argument("--conv-init-std", type=float, default=DEFAULT_CONV_STD, help=f"Standard deviation of --conv-init normal [default = {DEFAULT_CONV_STD:g}].")
    model.add_argument("--pretrained", action="store_true", help="Load pretrained architecture on ImageNet from the local model-zoo cache [default = off].")
    model.add_argument("--depth", type=int, default=None, help="Convolutions of --arch convnet, in up to three stages (other architectures refuse it) [default = 4].")
    model.add_argument("--width", type=int, default=None, help="Channels of the first stage of --arch convnet, doubled at each downsampling (other architectures refuse it) [default = 16].")
    model.add_argument("--dropout", type=float, default=None, help="Dropout probability after each stage of --arch convnet (other architectures refuse it) [default = 0].")
    optimization = p.add_argument_group("optimization", "How it is trained.")
    optimization.add_argument("--epochs", type=int, default=20, help="The number of epochs used for training [default = 20].")
    optimization.add_argument("--batch-size", type=int, default=128, help="The minibatch size for training (global, across processes) [default = 128].")
    optimization.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd", help="Supported optimizers: sgd, adam, adamw [default = sgd].")
    optimization.add_argument("--lr", type=float, default=0.001, help="The base learning rate [default = 0.001].")
    optimization.add_argument("--lr-step", type=int, default=0, help="The step size, in epochs, of the learning rate decay [default = off].")
    optimization.add_argument("--lr-decay", type=float, default=0.0, help="The decay factor of the learning rate decay [default = off].")
    optimization.add_argument("--lr-schedule", choices=sorted(SCHEDULES), default="step", help="step (uses --lr-step/--lr-decay), cosine (to 0 over --epochs) or none [default = step].")
    optimization.add_argument("--weight-decay", type=float, default=1e-4, help="The weight decay coefficient [default = 1e-4].")
    optimization.add_argument("--momentum", type=float, default=0.9, help="The momentum coefficient for SGD [default = 0.9].")
    optimization.add_argument("--seed", type=int, default=None, help="PyTorch PRNG seed [default = a random seed, recorded in run.json].")
    optimization.add_argument("--deterministic", action="store_true", help="Use deterministic algorithms (bit-exact resumes on the CPU) [default = off].")
    optimization.add_argument("--kill-plateaus", action="store_true", help="Quit training if the model validation accuracy plateaus in the first 10 epochs.")
    optimization.add_argument("--plateau-patience", type=int, default=3, help="Epochs without improvement that count as a plateau [default = 3].")
    optimization.add_argument("--train-acc", action="store_true", help="(Optional) compute train accuracy and report it during training.")
    optimization.add_argument("--stop-train-loss", type=float, default=None, help="Stop once the cross-entropy on the whole training set (eval mode, no augmentation) is at most this after an epoch; --epochs stays the cap (Jiang et al.'s protocol: 0.01) [default = off].")
    optimization.add_argument("--stop-train-acc", type=float, default=None, help="Stop once the top-1 accuracy (%%) on the whole training set (eval mode, no augmentation) is at least this after an epoch; --epochs stays the cap [default = off].")
    snapshots = p.add_argument_group("snapshots", "Snapshots, resuming and where files go.")
    snapshots.add_argument("--snapshot-every", type=int, default=0, help="Snapshot the model state every E epochs [default = 0: only the first and last].")
    snapshots.add_argument("--snapshot-all-until", type=int, default=0, help="Optional. Snapshot every epoch until the specified one, then snapshot according to the --snapshot-every argument.")
    snapshots.add_argument("--models-path", default="./runs", help="The dirname where to store/load models (the reference tool's: ./models) [default = './runs'].")
    snapshots.add_argument("--results", default="./results", help="Where per-snapshot analyses are written [default = './results'].")
    snapshots.add_argument("--tb-logdir", default="./tensorboard", help="The tensorboard log folder [default = './tensorboard'].")
    snapshots.add_argument("--log", default="train.log", help="Logfile name, inside the run directory unless it has a folder [default = 'train.log'].")
    snapshots.add_argument("--resume-from", default="", help="Path to a model snapshot (e.g. <run>/last.pt) [default = None].")
    snapshots.add_argument("--start-epoch", type=int, default=0, help="Completed epochs of the --resume-from file when it is the reference tool's (it overrides the epoch read from the file: a .tar's stored epoch + 1, a <arch>_<E>.pt's E); this suite's snapshots restore their own [default = 0].")
    snapshots.add_argument("--override", action="store_true", help="When resuming from a snapshot with different hyperparameters, overrides the values restored from the snapshot with the command line arguments.")
    snapshots.add_argument("--evaluate", action="store_true", help="Evaluate the --resume-from model on the test (and validation) set and exit.")
    snapshots.add_argument("--evaluate-train", action="store_true", help="Evaluate the --resume-from model on the training set and exit.")
    snapshots.add_argument("--eval-regularization-loss", action="store_true", help="Print the regularization loss wd/2 * sum ||W||^2 of the model and quit. The WEIGHT_DECAY option should be set as well.")
    snapshots.add_argument("--no-progress", action="store_true", help="Disable the progress of each epoch [default: a bar on terminals, a log line every few seconds otherwise].")
    devices = p.add_argument_group("devices", "Devices and speed.")
    add_device_args(devices)
    devices.add_argument("--channels-last", action="store_true", help="Use the channels-last memory format (faster convolutions on recent GPUs) [default = off].")
    devices.add_argument("--amp", choices=sorted(AMP_DTYPES), default="off", help="Automatic mixed precision on CUDA: bf16 or fp16 (with loss scaling) [default = off].")
    devices.add_argument("--compile", action="store_true", help="torch.compile the model (first epoch slower) [default = off].")
    add_analyzer_arguments(p.add_argument_group("analyses", "Analyses of every snapshot, during training."))
    return p
def explicit_flags(argv: Sequence[str] | None) -> set[str]:
    """The destinations the user actually typed (defaults suppressed)."""
    parser = get_args_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def evaluation_only(args: argparse.Namespace) -> bool:
    """--evaluate, --evaluate-train or --eval-regularization-loss: report on a model and exit (nothing is written)."""
    return bool(args.evaluate or args.evaluate_train or args.eval_regularization_loss)


def validate_args(args: argparse.Namespace) -> None:
    """Every check of train.py's flags that needs no file (sweep.py runs it on each member); fills in
    the defaults of the architecture's shape options (``--depth``...), so that snapshots record them."""
    stop_loss, stop_acc = args.stop_train_loss, args.stop_train_acc
    checks = [
        (args.epochs >= 1, f"--epochs {args.epochs} must be at least 1"),
        (args.batch_size >= 1, f"--batch-size {args.batch_size} must be at least 1"),
        (args.lr >= 0, f"--lr {args.lr} must not be negative"),
        (args.weight_decay >= 0, f"--weight-decay {args.weight_decay} must not be negative"),
        (args.momentum >= 0, f"--momentum {args.momentum} must not be negative"),
        (args.snapshot_every >= 0, f"--snapshot-every {args.snapshot_every} must not be negative"),
        (args.workers >= 0, f"--workers {args.workers} must not be negative"),
        (args.start_epoch >= 0, f"--start-epoch {args.start_epoch} must not be negative"),
        (args.conv_init_std > 0, f"--conv-init-std {args.conv_init_std} must be positive"),
        (args.conv_init == "default" or not args.pretrained,
         "--conv-init normal redraws the convolutions, which --pretrained loads; choose one"),
        (args.resume_from or args.start_epoch < args.epochs or evaluation_only(args),
         f"--start-epoch {args.start_epoch} must be in [0, --epochs)"),
        (stop_loss is None or stop_loss > 0, f"--stop-train-loss {stop_loss} must be positive (Jiang et al.: 0.01)"),
        (stop_acc is None or 0 < stop_acc <= 100, f"--stop-train-acc {stop_acc} must be a percentage in (0, 100]"),
        (stop_loss is None or stop_acc is None, "--stop-train-loss and --stop-train-acc exclude each other; choose one"),
    ]
    require(checks)
    if args.arch is not None:
        check_model_options(args.arch, model_options(vars(args)))
        vars(args).update(default_options(args.arch) | model_options(vars(args)))


def stop_criterion(args: argparse.Namespace) -> dict | None:
    """run.json's ``stopping.criterion``: ``{"train_loss": X}``, ``{"train_top1": P}``, or None."""
    if args.stop_train_loss is not None:
        return {"train_loss": args.stop_train_loss}
    if args.stop_train_acc is not None:
        return {"train_top1": args.stop_train_acc}
    return None


def check_resumed_epoch(args: argparse.Namespace, checkpoint: dict | None) -> None:
    """A full snapshot continues after its epoch: refuse, before any work, one already at --epochs."""
    if not evaluation_only(args) and checkpoint is not None and ("optimizer_state_dict" in checkpoint or checkpoint.get("reference")):
        epoch = args.start_epoch if checkpoint.get("reference") else int(checkpoint.get("epoch") or 0)
        if epoch >= args.epochs:
            raise UserError(f"the snapshot is at epoch {epoch}, already at --epochs {args.epochs}; raise --epochs")


def check_output_folders(args: argparse.Namespace) -> None:
    """Training writes snapshots, analyses, TensorBoard events and a log: fail before any work
    when one of those folders cannot be written (the evaluation modes write nothing)."""
    if evaluation_only(args):
        return
    for folder, flag in ((args.models_path, "--models-path"), (args.results, "--results"),
                         (args.tb_logdir, "--tb-logdir")):
        check_output_folder(folder, flag)
    check_log_folder(args.log)


def data_options(args: argparse.Namespace) -> DataOptions:
    """The data options of train.py's arguments (one flag per field of :class:`DataOptions`)."""
    values = {option.name: getattr(args, flag_of(option.name)) for option in dataclasses.fields(DataOptions)}
    # "snapshot" is resolved against --resume-from by training.resume; a new run's is ours
    values["normalization"] = "dataset" if args.normalization == SNAPSHOT else args.normalization
    values["class_order"] = "sorted" if args.class_order == SNAPSHOT else args.class_order
    return DataOptions(**values)


def notice_reference_differences(args: argparse.Namespace) -> None:
    """One notice per flag whose meaning here differs on purpose from the reference tool's (the
    README's "Differences from the reference tool" table); called once the data and model are built."""
    training = not evaluation_only(args)
    schedule = args.lr_schedule == "cosine" or (args.lr_schedule == "step" and args.lr_step > 0 and args.lr_decay > 0)
    if training and args.optimizer == "adam" and (args.weight_decay > 0 or schedule):
        applied = [f"--weight-decay {args.weight_decay:g}"] * (args.weight_decay > 0) + ["the learning-rate schedule"] * schedule
        notice("adam", "--optimizer adam applies %s; the reference's Adam used no weight decay and no schedule "
               "(pass --weight-decay 0 --lr-schedule none to match it)", " and ".join(applied))
    if training and args.kill_plateaus:
        notice("kill-plateaus", "--kill-plateaus stops when validation top-1 has not improved for "
               "--plateau-patience (%d) epochs within the first 10; the reference stopped on two equal "
               "snapshot accuracies (and then crashed)", args.plateau_patience)
    if args.eval_regularization_loss:
        notice("regularization-loss", "--eval-regularization-loss prints wd/2 * sum ||W||^2 over every parameter "
               "(what SGD's weight decay penalizes); the reference printed wd * sum ||W||_2 over weights only")
    if training and args.augmentation and (args.upscale or args.upscale_padding):
        size = get_dataset_spec(args.dataset).image_size
        padding = max(1, round(size / 8))
        scale = (112 if args.upscale_padding else 224) / size
        notice("upscaled-augmentation", "--augmentation crops +-%d px at the native %dx%d before upscaling (+-%.0f "
               "px after it); the reference cropped +-4 px after upscaling", padding, size, size, padding * scale)
    if training and args.noise < 0:
        notice("pixel-shuffle", "--noise -1: each image's pixel permutation is drawn from (--noise-seed, its index) "
               "(--pixel-shuffle %s), not from the reference's one stream of draws, so the permutations differ "
               "from the reference's for the same seed", args.pixel_shuffle)
