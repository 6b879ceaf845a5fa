"""Layer re-initialization robustness (Zhang, Bengio, Singer 2019, "Are All Layers Created Equal?").

    python reinit_layers.py --load-from models/digits/lenet/0/lenet_epoch0012.pt \\
        --inits-from models/digits/lenet/0 --rand

For a trained snapshot, each layer in turn gets its parameters from an earlier checkpoint
(re-initialization) or from a fresh random initialization (``--rand``, re-randomization) while
every other layer stays trained, and the test accuracy is measured. The test data are the
snapshot's own (class subset, upscaling, normalization from the training run). Writes
``reinit_<snapshot stem>.json`` under ``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``
and the heatmap (PNG and PDF) under the same layout in ``--plots``.
"""
from __future__ import annotations

import argparse
import glob
import logging
import statistics
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from datasets import DataBundle, DataOptions, build_data
from metrics.layers import LayerInfo, enumerate_layers
from metrics.reinit import (DEFAULT_CACHE_BYTES, METHODS, ResetRow, SweepResult, following_batchnorms,
                            reinit_sweep)
from models.loading import LoadedModel, load_snapshot_model
from models.registry import get_model
from plotting.common import save_figure, style
from plotting.reinit import RAND_KEY, reinit_heatmap
from utils.checkpoints import resolve_snapshots, snapshot_sort_epoch
from utils.choices import add_device_args, print_missing_choice
from utils.cli import run_main, setup_logging
from utils.devices import resolve_device
from utils.errors import UserError
from utils.progress import progress
from utils.paths import check_log_folder, check_output_folder, log_path
from utils.results import result_header, results_dir, write_result

logger = logging.getLogger("reinit_layers")

RESULT_KIND = "reinit"
# Which layers are reset. 1x1 convolutions are always included: Zhang et al. reset every layer.
LAYER_SELECTIONS = {"conv": {"with_linear": False}, "conv+linear": {"with_linear": True}}
SNAPSHOT_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt")
RAND_STREAM = 190201996  # arXiv 1902.01996: keeps re-randomizations apart from the run's own init
# Data options a snapshot's training run fixed, with the reference's defaults for plain weight files.
DATA_DEFAULTS = {"subsample_classes": 0, "class_sample_seed": 42, "upscale": False, "upscale_padding": False,
                 "unnormalize": False}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Reinit network weights and compute drop in performance.")
    p.add_argument("--arch", default=None, help="Network architecture. Run without this option to see a list of all available archs. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--dataset", default=None, help="Dataset used to train the model. Used to specify the number of classes of the prediction layer of the model. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--upscale", action="store_true", help="Upscale image data to 224x224 pixels (plain weight files; snapshots know, and the flag must agree) [default = the snapshot's].")
    p.add_argument("--upscale-padding", action="store_true", help="Upscale image data to 112x112 pixels and then zero-pad to 224x224 (plain weight files; must agree with snapshots) [default = the snapshot's].")
    p.add_argument("--subsample-classes", type=int, default=None, help="Subsample only SUBSAMPLE_CLASSES classes from DATASET. If set to 0 all classes of DATASET are used [default = the snapshot's, else 0].")
    p.add_argument("--class-sample-seed", type=int, default=None, help="Numpy random seed used for sampling classes [default = the snapshot's, else 42].")
    p.add_argument("--load-from", default="", help="Load trained network from file (a run directory means its latest epoch snapshot).")
    p.add_argument("--inits-from", default="", help="Weights to reinitialize from: a plain-text list of snapshot paths (one per line, blank lines ignored), a run directory (its snapshots up to the loaded epoch), a snapshot file or a glob [default = none].")
    p.add_argument("--skip-missing", action="store_true", help="Skip snapshots named by --inits-from that do not exist (with a warning) instead of stopping [default = off].")
    add_device_args(p)
    p.add_argument("--results", default="./results", help="Path to store results [default = './results'].")
    p.add_argument("--plots", default="./plots", help="Path to store plots [default = './plots'].")
    p.add_argument("--log", default="reinit_weights.log", help="Logfile name, inside the results folder unless it has a folder [default = 'reinit_weights.log'].")
    p.add_argument("--seed", type=int, default=None, help="Pytorch seed. (Optional) If using --load-from, specify the seed the model was trained with (snapshots know it; the flag must agree). It also seeds the --rand initializations [default = the snapshot's, else 0].")
    p.add_argument("--workers", "-j", type=int, default=1, help="Number of parallel data processing jobs (image-folder datasets) [default = 1].")
    p.add_argument("--data-path", default=None, help="Path to local dataset folder [default = the training run's, else './data'].")
    p.add_argument("--batch-size", type=int, default=128, help="The minibatch size for evaluation [default = 128].")
    p.add_argument("--rand", action="store_true", help="Perform weight randomization test: also reset each layer to a fresh random initialization [default = off].")
    p.add_argument("--rand-repeats", type=int, default=1, help="With --rand: number of independent random initializations; the rand row is their mean (std in the JSON) [default = 1].")
    p.add_argument("--layers", choices=sorted(LAYER_SELECTIONS), default="conv", help="Layers to reset, one at a time; 1x1 convolutions included [default = conv].")
    p.add_argument("--with-bn", action="store_true", help="Also reset the BatchNorm that directly follows a reset layer (affine parameters and running statistics) [default = off, as in the reference].")
    p.add_argument("--method", choices=METHODS, default="auto", help="auto: prefix caching (recompute only from the reset layer on) where the model allows it, else naive; naive: a full forward pass per cell (slow, for checking) [default = auto].")
    p.add_argument("--cache-mb", type=int, default=DEFAULT_CACHE_BYTES // 2**20, help=f"Memory for cached activations; the test set is processed in chunks of this size [default = {DEFAULT_CACHE_BYTES // 2**20}].")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not args.load_from and print_missing_choice(args):
        return 0
    check_args(args)
    setup_logging(None)
    device = resolve_device(cuda=args.cuda, device=args.device)
    loaded = load_trained(args, device)
    out_dir = run_folder(args.results, loaded, args)
    layers = select_layers(loaded, args)
    batchnorms = following_bn(loaded, layers, args)
    keep = {layer.name for layer in layers} | {bn for bn in batchnorms.values() if bn}
    rows = init_rows(args, loaded, keep) + rand_rows(args, loaded, keep)
    data = evaluation_data(args, loaded)
    result = run_sweep(loaded, layers, rows, data, batchnorms, args, device)
    document = reinit_document(args, loaded, layers, batchnorms, rows, result, data)
    setup_logging(str(log_path(args.log, out_dir)))  # the log file appears with the result, not on bad input
    path = write_result(out_dir / f"reinit_{loaded.stem}.json", document)
    with style():
        figures = save_figure(reinit_heatmap(document), run_folder(args.plots, loaded, args) / f"reinit_{loaded.stem}")
    log_table(document)
    logger.info("results -> %s; heatmap -> %s", path, ", ".join(str(f) for f in figures))
    return 0


def check_args(args: argparse.Namespace) -> None:
    if not args.load_from:
        raise UserError("--load-from is required: the trained snapshot whose layers are reset")
    if not args.inits_from and not args.rand:
        raise UserError("nothing to reset from: pass --inits-from (checkpoints, e.g. the run directory) and/or --rand")
    if args.rand_repeats < 1 or (args.rand_repeats > 1 and not args.rand):
        raise UserError(f"--rand-repeats {args.rand_repeats} needs --rand and a count of at least 1")
    if args.batch_size < 1 or args.cache_mb < 1:
        raise UserError("--batch-size and --cache-mb must be at least 1")
    check_output_folder(args.results, "--results")
    check_output_folder(args.plots, "--plots")
    check_log_folder(args.log)


# -- the trained model ---------------------------------------------------------------------------
def load_trained(args: argparse.Namespace, device: torch.device) -> LoadedModel:
    path = trained_path(args.load_from)
    upscale = args.upscale or args.upscale_padding
    loaded = load_snapshot_model(path, arch=args.arch, dataset=args.dataset, subsample_classes=args.subsample_classes,
                                 upscale=upscale, seed=args.seed, device=device)
    if args.seed is not None and loaded.seed is not None and loaded.seed != args.seed:
        raise UserError(f"--seed {args.seed} disagrees with snapshot {path} (seed {loaded.seed}); "
                        "drop the flag or fix it")
    return loaded


def trained_path(spec: str) -> Path:
    """--load-from: a file, a run directory (its latest epoch snapshot) or a glob matching one file."""
    snapshots = resolve_snapshots(spec)
    if Path(spec).is_dir():
        return snapshots[-1]
    if len(snapshots) > 1:
        raise UserError(f"--load-from {spec} matches {len(snapshots)} snapshots; give one file")
    return snapshots[0]


def run_folder(root: str, loaded: LoadedModel, args: argparse.Namespace) -> Path:
    """The run's folder under ``root``; class subset and label noise come from the snapshot when it knows them."""
    subsample = data_option(loaded, args, "subsample_classes")
    return results_dir(root, dataset=loaded.dataset, arch=loaded.arch, seed=loaded.seed,
                       subsample_classes=subsample or 0, noise=loaded.args.get("noise") or 0.0)


def select_layers(loaded: LoadedModel, args: argparse.Namespace) -> list[LayerInfo]:
    layers = enumerate_layers(loaded.model, loaded.input_shape, include_1x1=True, **LAYER_SELECTIONS[args.layers])
    if not layers:
        raise UserError(f"{loaded.arch} has no {args.layers} layers to reset; try --layers conv+linear")
    return layers


def following_bn(loaded: LoadedModel, layers: list[LayerInfo], args: argparse.Namespace) -> dict[str, str | None]:
    if not args.with_bn:
        return {layer.name: None for layer in layers}
    found = following_batchnorms(loaded.model, loaded.input_shape, [layer.name for layer in layers])
    if not any(found.values()):
        logger.warning("--with-bn: no BatchNorm directly follows any reset layer of %s; nothing extra is reset",
                       loaded.arch)
    return found


# -- where the replacement weights come from -----------------------------------------------------
@dataclass(frozen=True)
class RowSource:
    """One heatmap row: its JSON key, its tensors and where they came from."""

    key: str
    source: str  # "snapshot" or "rand"
    row: ResetRow
    epoch: int | None = None
    path: Path | None = None
    seed: int | None = None


def init_rows(args: argparse.Namespace, loaded: LoadedModel, keep: set[str]) -> list[RowSource]:
    """One row per --inits-from snapshot, in epoch order, keeping the tensors of the ``keep`` modules."""
    if not args.inits_from:
        return []
    paths = init_paths(args.inits_from, loaded, skip_missing=args.skip_missing)
    rows = [snapshot_row(path, loaded, args, keep) for path in paths]
    rows.sort(key=lambda row: (row.epoch is None, row.epoch if row.epoch is not None else 0))
    return unique_keys(rows)


def init_paths(spec: str, loaded: LoadedModel, *, skip_missing: bool) -> list[Path]:
    """The snapshots --inits-from names (see its help); missing files are one error listing them all."""
    path = Path(spec)
    if path.is_dir():
        return run_snapshots(path, loaded)
    if path.is_file():
        return [path] if is_snapshot_file(path) else listed_paths(path, skip_missing=skip_missing)
    if glob.has_magic(spec):
        return resolve_snapshots(spec)
    raise UserError(f"--inits-from {spec} does not exist; give a list file, a run directory, a snapshot or a glob")


def run_snapshots(run_dir: Path, loaded: LoadedModel) -> list[Path]:
    snapshots = resolve_snapshots(run_dir)
    if loaded.epoch is None:
        logger.warning("the loaded snapshot's epoch is unknown: using every snapshot of %s", run_dir)
        return snapshots
    kept = [path for path in snapshots if snapshot_sort_epoch(path) <= loaded.epoch]
    if not kept:
        raise UserError(f"{run_dir} has no snapshot up to epoch {loaded.epoch}; give another --inits-from")
    return kept


def is_snapshot_file(path: Path) -> bool:
    """A snapshot (zip or pickle) rather than the reference's plain-text list of paths."""
    if path.suffix in SNAPSHOT_SUFFIXES or zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80"  # legacy torch.save pickle


def parse_inits_list(text: str) -> list[str]:
    """The reference's list format: one path per line; blank lines (and ``#`` comments) ignored."""
    entries = (line.strip() for line in text.splitlines())
    return [entry for entry in entries if entry and not entry.startswith("#")]


def listed_paths(list_file: Path, *, skip_missing: bool) -> list[Path]:
    """Paths of a list file, as given or relative to the list's folder."""
    try:
        entries = parse_inits_list(list_file.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read the list of snapshots {list_file}: {err}") from err
    found, missing = [], []
    for entry in entries:
        candidates = [Path(entry), list_file.parent / entry]
        existing = next((c for c in candidates if c.is_file()), None)
        (found if existing else missing).append(existing or Path(entry))
    if missing and not skip_missing:
        raise UserError(f"{len(missing)} snapshot(s) listed in {list_file} do not exist: "
                        f"{', '.join(map(str, missing))}; fix the list or pass --skip-missing")
    if missing:
        logger.warning("skipping %d missing snapshot(s) listed in %s: %s", len(missing), list_file,
                       ", ".join(map(str, missing)))
    if not found:
        raise UserError(f"{list_file} lists no existing snapshot")
    return found


def snapshot_row(path: Path, loaded: LoadedModel, args: argparse.Namespace, keep: set[str]) -> RowSource:
    init = load_snapshot_model(path, arch=loaded.arch, dataset=loaded.dataset,
                               subsample_classes=data_option(loaded, args, "subsample_classes") or None,
                               upscale=bool(data_option(loaded, args, "upscale")
                                            or data_option(loaded, args, "upscale_padding")))
    if init.seed is not None and loaded.seed is not None and init.seed != loaded.seed:
        logger.warning("%s comes from another run (seed %s, the trained model has seed %s)", path, init.seed,
                       loaded.seed)
    if init.epoch is not None and loaded.epoch is not None and init.epoch > loaded.epoch:
        logger.warning("%s is from epoch %s, after the trained snapshot's epoch %s", path, init.epoch, loaded.epoch)
    key = str(init.epoch) if init.epoch is not None else path.stem
    return RowSource(key, "snapshot", ResetRow(str(path), kept_state(init.model, keep)), init.epoch, path, init.seed)


def kept_state(model: torch.nn.Module, keep: set[str]) -> dict[str, torch.Tensor]:
    """The tensors of the ``keep`` modules only (a row of VGG19 need not hold its 100M-weight classifier)."""
    return {key: value for key, value in model.state_dict().items() if key.rpartition(".")[0] in keep}


def unique_keys(rows: list[RowSource]) -> list[RowSource]:
    """Rows sharing an epoch are keyed by their file stems instead."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.key] = counts.get(row.key, 0) + 1
    return [row if counts[row.key] == 1 or row.path is None else
            RowSource(row.path.stem, row.source, row.row, row.epoch, row.path, row.seed) for row in rows]


def rand_rows(args: argparse.Namespace, loaded: LoadedModel, keep: set[str]) -> list[RowSource]:
    """--rand: ``--rand-repeats`` fresh initializations of the architecture, reproducible from the seed."""
    if not args.rand:
        return []
    base = args.seed if args.seed is not None else (loaded.seed if loaded.seed is not None else 0)
    rows = []
    for repeat in range(args.rand_repeats):
        seed = rand_seed(base, repeat)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = get_model(loaded.arch, loaded.num_classes, loaded.in_channels, image_size=loaded.image_size,
                              check_input=False)
        rows.append(RowSource(RAND_KEY, RAND_KEY, ResetRow(f"random init (seed {seed})", kept_state(model, keep)),
                              seed=seed))
    return rows


def rand_seed(base: int, repeat: int) -> int:
    """The torch seed of re-randomization ``repeat``: derived from ``base`` on a stream of its own,
    so that it never coincides with the run's own initialization (seeded by ``base``)."""
    state = np.random.SeedSequence([RAND_STREAM, base, repeat]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


# -- the data and the sweep ----------------------------------------------------------------------
def data_option(loaded: LoadedModel, args: argparse.Namespace, name: str):
    """The training run's value of a data option; a flag given on the command line must agree."""
    given = getattr(args, name, None)
    given = None if given is False else given
    if name in loaded.args:
        stored = loaded.args[name]
        if given is not None and given != stored:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} {given} disagrees with snapshot {loaded.path}, trained with {name}={stored}; "
                            "drop the flag (the snapshot knows its data)")
        return stored
    return given if given is not None else DATA_DEFAULTS[name]


def evaluation_data(args: argparse.Namespace, loaded: LoadedModel) -> DataBundle:
    """The test split of the snapshot's dataset with the training run's class subset, upscaling and normalization."""
    options = DataOptions(
        data_path=args.data_path or loaded.args.get("data_path") or "./data",
        **{name: data_option(loaded, args, name) for name in DATA_DEFAULTS},
    )
    bundle = build_data(loaded.dataset, options)
    shape = (bundle.num_classes, bundle.in_channels, bundle.image_size)
    expected = (loaded.num_classes, loaded.in_channels, loaded.image_size)
    if shape != expected:
        raise UserError(f"the test data ({describe_shape(*shape)}) do not fit the model ({describe_shape(*expected)}); "
                        "check --subsample-classes and --upscale")
    return bundle


def describe_shape(num_classes: int, channels: int, size: int) -> str:
    return f"{num_classes} classes, {channels}x{size}x{size} inputs"


def run_sweep(loaded: LoadedModel, layers: list[LayerInfo], rows: list[RowSource], data: DataBundle,
              batchnorms: dict[str, str | None], args: argparse.Namespace, device: torch.device) -> SweepResult:
    batches = data.test.batches(args.batch_size, device=device, workers=args.workers)
    total = len(batches) * (1 + len(rows) * len(layers))
    logger.info("trained model: %s (%s on %s, epoch %s, seed %s)", loaded.path, loaded.arch, loaded.dataset,
                loaded.epoch, loaded.seed)
    logger.info("resetting %d layers from %d rows (%d cells) on %d test samples of %s", len(layers), len(rows),
                len(rows) * len(layers), len(data.test), loaded.dataset)
    bar = progress([], total=total, desc="reinit", unit="batch")
    try:
        result = reinit_sweep(loaded.model, [layer.name for layer in layers], [row.row for row in rows], batches,
                              num_classes=loaded.num_classes, with_bn=batchnorms, method=args.method,
                              cache_bytes=args.cache_mb * 2**20, on_step=bar.update)
    finally:
        bar.close()
    logger.info("evaluated with %s (%d cell(s) equal to the trained network reused)",
                "prefix caching" if result.method == "prefix" else "a full forward pass per cell", result.reused_cells)
    return result


# -- the result document -------------------------------------------------------------------------
def reinit_document(args, loaded: LoadedModel, layers: list[LayerInfo], batchnorms: dict[str, str | None],
                    rows: list[RowSource], result: SweepResult, data: DataBundle) -> dict:
    """``reinit_<stem>.json``: the reference's keys plus layers, per-cell metrics and drops."""
    top1 = result.reference.top1
    document = result_header(RESULT_KIND, arch=loaded.arch, dataset=loaded.dataset, seed=loaded.seed,
                             epoch=loaded.epoch, args=vars(args))
    merged = merge_rows(rows, result, top1)
    document |= {
        "snapshot": str(loaded.path), "stem": loaded.stem, "num_classes": loaded.num_classes,
        "input_shape": list(loaded.input_shape), "test_samples": result.reference.samples,
        "classes": data.classes.tolist(), "layer_selection": args.layers, "with_bn": args.with_bn,
        "method": result.method,
        "top1_test": top1, "top5_test": result.reference.top5, "loss_test": result.reference.loss,
        "chance_top1": 100.0 / loaded.num_classes,
        "chance_top5": 100.0 * 5 / loaded.num_classes if loaded.num_classes >= 5 else None,
        "layer_names": [layer.name for layer in layers],
        "layers": [layer_record(layer, batchnorms.get(layer.name)) for layer in layers],
        "init_from_epoch": {row["key"]: row["top1"] for row in merged},
        "rows": merged,
    }
    return document


def layer_record(layer: LayerInfo, batchnorm: str | None) -> dict:
    return {"name": layer.name, "kind": layer.kind, "stage": layer.stage, "block": layer.block, "index": layer.index,
            "out_units": layer.out_units, "fan_in": layer.fan_in, "is_1x1": layer.is_1x1, "batchnorm": batchnorm}


def merge_rows(rows: list[RowSource], result: SweepResult, top1: float) -> list[dict]:
    """One record per key: snapshot rows as they are, the rand repeats as their mean (and std)."""
    records = [row_record(row, scores, top1) for row, scores in zip(rows, result.cells)]
    plain = [record for record, row in zip(records, rows) if row.source != RAND_KEY]
    repeats = [record for record, row in zip(records, rows) if row.source == RAND_KEY]
    return plain + ([mean_record(repeats, top1)] if repeats else [])


def row_record(row: RowSource, scores, top1: float) -> dict:
    accuracies = [score.top1 for score in scores]
    return {
        "key": row.key, "source": row.source, "epoch": row.epoch,
        "snapshot": str(row.path) if row.path is not None else None, "seed": row.seed,
        "top1": accuracies, "top5": [score.top5 for score in scores], "loss": [score.loss for score in scores],
        "drop": [top1 - acc for acc in accuracies],
        "relative_drop": [(top1 - acc) / top1 if top1 else None for acc in accuracies],
    }


def mean_record(repeats: list[dict], top1: float) -> dict:
    def mean(name):
        columns = zip(*(record[name] for record in repeats))
        return [None if None in column else statistics.fmean(column) for column in columns]

    accuracies = mean("top1")
    spread = [statistics.pstdev(column) for column in zip(*(record["top1"] for record in repeats))]
    return {
        "key": RAND_KEY, "source": RAND_KEY, "epoch": None, "snapshot": None, "seed": repeats[0]["seed"],
        "top1": accuracies, "top1_std": spread, "top5": mean("top5"), "loss": mean("loss"),
        "drop": [top1 - acc for acc in accuracies],
        "relative_drop": [(top1 - acc) / top1 if top1 else None for acc in accuracies],
        "repeats": [{"seed": r["seed"], "top1": r["top1"], "top5": r["top5"], "loss": r["loss"]} for r in repeats],
    }


def log_table(document: dict) -> None:
    """Top-1 (%) per row and layer, the numbers a user looks at first."""
    names = document["layer_names"]
    logger.info("trained: top-1 %.2f%%, top-5 %s, loss %.4f (chance %.3g%%)", document["top1_test"],
                "-" if document["top5_test"] is None else f"{document['top5_test']:.2f}%", document["loss_test"],
                document["chance_top1"])
    width = 7
    logger.info("  %-12s %s", "top-1 from", " ".join(f"{i:>{width}d}" for i in range(len(names))))
    for row in document["rows"]:
        logger.info("  %-12s %s", row["key"], " ".join(f"{acc:>{width}.2f}" for acc in row["top1"]))
    logger.info("  layers: %s", ", ".join(f"{i}={name}" for i, name in enumerate(names)))


if __name__ == "__main__":
    sys.exit(run_main(main))
