"""Projection statistics of oriented hyperplanes for snapshots, a run directory, a zoo model or a seed.

    python compute_projections.py --load-from models/digits/lenet/0 --normalize
    python compute_projections.py --arch alexnet --dataset imagenet --normalize --pretrained

For every conv layer (1x1 skipped unless ``--include-1x1``; linear layers with ``--with-linear``)
it reports the distribution of ``p(w) = <w, 1>`` over filters (``--normalize``: the cosine
``<w, 1> / (||w|| sqrt(d))``) and, given an initialization, the distance from it. One
``projections_<stem>.json`` per snapshot goes to
``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``, plus
``projections_summary.json`` (layers x epochs arrays) when a folder gets more than one snapshot.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from metrics.layers import LayerInfo, enumerate_layers
from metrics.projections import LayerWeights, network_statistics
from models.loading import PRETRAINED_EPOCH, LoadedModel, fresh_model, load_snapshot_model
from utils.checkpoints import resolve_snapshots, snapshot_sort_epoch
from utils.choices import add_device_args, print_missing_choice
from utils.cli import run_main, setup_logging
from utils.devices import resolve_device
from utils.errors import UserError
from utils.paths import check_log_folder, check_output_folder, log_path
from utils.results import layers_by_epoch, result_header, results_dir, write_result

logger = logging.getLogger("compute_projections")

RESULT_KIND = "projections"
SUMMARY_KIND = "projections_summary"
# Per-layer values that projections_summary.json lays out as layers x epochs matrices.
SUMMARY_METRICS = ("mean", "std", "median", "mass", "sign_test_p", "ks_stat", "ks_p", "l2_dist", "l_inf_dist",
                   "cosine", "init_mean", "init_mass")
LAYER_FIELDS = ("name", "kind", "stage", "block", "index", "input_shape", "out_units", "is_1x1")
SUMMARY_LAYER_FIELDS = ("name", "kind", "stage", "block", "fan_in", "n_filters")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Compute projection statistics.")
    p.add_argument("--arch", default=None, help="Network architecture. Run without this option (and without --load-from) to see a list of all available archs. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--subsample-classes", type=int, default=0, help="Number of classes in the prediction head of the network. Specify 0 (default) for using the standard number of classes of DATASET.")
    p.add_argument("--dataset", default=None, help="Dataset used to train the model. Used to specify the number of classes of the prediction layer of the model. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--load-from", default="", help="Load trained network(s) from a snapshot file, a run directory (every snapshot, in epoch order) or a glob [default = none: --pretrained or a random init].")
    p.add_argument("--init-from", default="", help="Network initialization: a snapshot (or a run directory, for its epoch-0 snapshot) to measure the distance from initialization of each layer [default = the run's epoch-0 snapshot when it has one].")
    p.add_argument("--no-init", action="store_true", help="Do not compare with any initialization, not even the run's epoch-0 snapshot [default = off].")
    p.add_argument("--pretrained", action="store_true", help="Load pretrained architecture on ImageNet from the local model-zoo cache [default=False].")
    p.add_argument("--download", action="store_true", help="Allow downloading the --pretrained weights [default = off: offline].")
    add_device_args(p)
    p.add_argument("--normalize", action="store_true", help="Normalize projections: <w,1> / (||w|| sqrt(d)), a cosine in [-1, 1] [default = off].")
    p.add_argument("--with-linear", action="store_true", help="Compute statistics also for fully connected layers [default = off].")
    p.add_argument("--include-1x1", action="store_true", help="Also analyse 1x1 convolutions [default = off, as in the paper].")
    p.add_argument("--upscale", action="store_true", help="The model was trained on images upscaled to 224x224 (plain reference files and random inits only; snapshots know) [default = off].")
    p.add_argument("--results", default="./results", help="Path to store results [default = './results'].")
    p.add_argument("--log", default="positive_orthant.log", help="Logfile name, inside the results folder unless it has a folder [default = 'positive_orthant.log'].")
    p.add_argument("--seed", type=int, default=None, help="Pytorch seed. (Optional) If using --load-from with plain reference files, specify the seed the model was trained with; without a snapshot it seeds the random init [default = none].")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not args.load_from and print_missing_choice(args):
        return 0
    return analyse_weights(args, WeightAnalysis(
        prefix="projections", weights_of=init_filters, analyse=analyse, log_document=log_document,
        summary_row=summary_row, summary_document=summary_document))


@dataclass(frozen=True)
class WeightAnalysis:
    """What a per-snapshot weight analysis CLI (this one, compute_spectra.py) plugs into :func:`analyse_weights`.

    ``weights_of(init, args)``: the initialization's tensors by layer name; ``analyse(loaded, args,
    init=, init_path=)``: the result document; ``summary_row(document, path)`` and
    ``summary_document(rows, args)``: the layers x epochs summary written when a folder gets more
    than one snapshot; files are ``<prefix>_<stem>.json`` and ``<prefix>_summary.json``.
    """

    prefix: str
    weights_of: Callable[[LoadedModel, argparse.Namespace], dict[str, torch.Tensor]]
    analyse: Callable[..., dict]
    log_document: Callable[[dict, Path], None]
    summary_row: Callable[[dict, Path], dict]
    summary_document: Callable[[list[dict], argparse.Namespace], dict]


def analyse_weights(args: argparse.Namespace, analysis: WeightAnalysis) -> int:
    """Every model of --load-from (or the zoo model / random init) against its initialization: one
    result file each, then a summary per results folder. Folders are checked before any work, and
    the log file appears with the first result, not on bad input."""
    setup_logging(None)
    check_output_folder(args.results, "--results")
    check_log_folder(args.log)
    device = resolve_device(cuda=args.cuda, device=args.device)
    init_cache: dict[Path, dict[str, torch.Tensor] | None] = {}
    written: dict[Path, list[dict]] = {}
    for loaded in iter_models(args, device):
        out_dir = output_dir(loaded, args)
        init_path, init = initialization(args, loaded, device, init_cache, analysis.weights_of)
        document = analysis.analyse(loaded, args, init=init, init_path=init_path)
        if not written:
            setup_logging(str(log_path(args.log, out_dir)))
        path = write_result(out_dir / f"{analysis.prefix}_{loaded.stem}.json", document)
        analysis.log_document(document, path)
        written.setdefault(out_dir, []).append(analysis.summary_row(document, path))
    for out_dir, rows in written.items():
        if len(rows) > 1:
            path = write_result(out_dir / f"{analysis.prefix}_summary.json", analysis.summary_document(rows, args))
            logger.info("summary of %d snapshots (layers x epochs) -> %s", len(rows), path)
    return 0


# -- what to analyse -----------------------------------------------------------------------------
def iter_models(args: argparse.Namespace, device: torch.device) -> Iterator[LoadedModel]:
    """Each snapshot of --load-from in epoch order (one at a time), else the zoo model or a seeded init."""
    if not args.load_from:
        loaded = fresh_model(args.arch, args.dataset, pretrained=args.pretrained, seed=args.seed,
                             subsample_classes=args.subsample_classes, upscale=args.upscale,
                             download=args.download, device=device)
        what = "pretrained weights from the model zoo" if args.pretrained else f"a random init (seed {args.seed})"
        logger.info("no --load-from: analysing %s of %s", what, args.arch)
        yield loaded
        return
    if args.pretrained:
        logger.warning("--pretrained is only used without --load-from; ignoring it")
    for path in resolve_snapshots(args.load_from):
        yield load_model(path, args, device)


def load_model(path: Path, args: argparse.Namespace, device: torch.device) -> LoadedModel:
    loaded = load_snapshot_model(path, arch=args.arch, dataset=args.dataset,
                                 subsample_classes=args.subsample_classes or None, upscale=args.upscale,
                                 seed=args.seed, device=device)
    if loaded.args and args.seed is not None and loaded.seed is not None and loaded.seed != args.seed:
        raise UserError(f"--seed {args.seed} disagrees with snapshot {path} (seed {loaded.seed}); "
                        "drop the flag or fix it")
    return loaded


def output_dir(loaded: LoadedModel, args: argparse.Namespace) -> Path:
    """The run's results folder; class subset and label noise come from the snapshot when it knows them."""
    subsample = loaded.args.get("subsample_classes", args.subsample_classes) or 0
    noise = loaded.args.get("noise") or 0.0
    return results_dir(args.results, dataset=loaded.dataset, arch=loaded.arch, seed=loaded.seed,
                       subsample_classes=subsample, noise=noise)


# -- the initialization --------------------------------------------------------------------------
def initialization(args: argparse.Namespace, loaded: LoadedModel, device: torch.device,
                   cache: dict[Path, dict[str, torch.Tensor] | None],
                   weights_of) -> tuple[Path | None, dict | None]:
    """``(path, weights_of(init) by layer name)`` of the initialization to compare ``loaded`` with,
    or ``(None, None)``.

    An explicit --init-from that does not fit is an error; the run's own epoch-0 snapshot (the
    default) that does not fit is skipped with a warning.
    """
    path, explicit = init_path_for(args, loaded)
    if path is None:
        return None, None
    if path not in cache:
        try:
            cache[path] = load_init(path, loaded, args, device, weights_of)
        except UserError as err:
            if explicit:
                raise
            logger.warning("not comparing with %s: %s (pass --init-from or --no-init)", path, err)
            cache[path] = None
    return (path, cache[path]) if cache[path] is not None else (None, None)


def init_path_for(args: argparse.Namespace, loaded: LoadedModel) -> tuple[Path | None, bool]:
    """``(path, explicit)``: --init-from (a file, or a run directory's epoch-0 snapshot), else the
    snapshot's own run's epoch-0 snapshot when there is one; nothing with --no-init."""
    if args.no_init:
        return None, False
    if not args.init_from:
        return (run_init_snapshot(loaded.path.parent, loaded.arch) if loaded.path is not None else None), False
    given = Path(args.init_from)
    if not given.is_dir():
        return given, True
    found = run_init_snapshot(given, loaded.arch)
    if found is None:
        raise UserError(f"--init-from {given} is a folder without an epoch-0 snapshot; give the snapshot file")
    return found, True


def run_init_snapshot(run_dir: Path, arch: str) -> Path | None:
    """The epoch-0 snapshot of a run directory (``<arch>_epoch0000.pt`` or the reference's
    ``*_init*``), preferring names that start with the architecture."""
    try:
        snapshots = resolve_snapshots(run_dir)
    except UserError:
        return None
    initial = [path for path in snapshots if snapshot_sort_epoch(path) == 0]
    initial.sort(key=lambda path: not path.name.startswith(f"{arch}_"))
    return initial[0] if initial else None


def load_init(path: Path, loaded: LoadedModel, args: argparse.Namespace, device: torch.device,
              weights_of) -> dict[str, torch.Tensor]:
    """``weights_of(init, args)`` of the initialization snapshot at ``path``, built like ``loaded``."""
    # A plain init file is rebuilt like the run's model: same class subset and input size.
    subsample = loaded.args.get("subsample_classes") if loaded.args else args.subsample_classes
    upscale = args.upscale or bool(loaded.args.get("upscale") or loaded.args.get("upscale_padding"))
    init = load_snapshot_model(path, arch=loaded.arch, dataset=loaded.dataset, subsample_classes=subsample or None,
                               upscale=upscale, device=device)
    logger.info("initialization: %s (epoch %s)", path, init.epoch)
    return weights_of(init, args)


def init_filters(init: LoadedModel, args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """Filters ``(out_units, fan_in)`` of the analysed layers, by module name."""
    return {layer.name: layer.filters() for layer in select_layers(init, args)}


def select_layers(loaded: LoadedModel, args: argparse.Namespace) -> list[LayerInfo]:
    return enumerate_layers(loaded.model, loaded.input_shape, include_1x1=args.include_1x1,
                            with_linear=args.with_linear)


# -- the result documents ------------------------------------------------------------------------
def analyse(loaded: LoadedModel, args: argparse.Namespace, *, init: dict[str, torch.Tensor] | None,
            init_path: Path | None) -> dict:
    """``projections_<stem>.json``: the reference's ``"<stage>": {"<block>": ...}`` nesting, ``net``,
    a flat ``layers`` list and the header."""
    layers = select_layers(loaded, args)
    weights = [LayerWeights(layer.name, layer.filters()) for layer in layers]
    source = f"snapshot {loaded.path}" if loaded.path is not None else loaded.stem
    try:
        records, net = network_statistics(weights, normalize=args.normalize, init=init)
    except UserError as err:
        raise UserError(f"{source}: {err}") from err
    document = result_header(RESULT_KIND, arch=loaded.arch, dataset=loaded.dataset, seed=loaded.seed,
                             epoch=loaded.epoch, args=vars(args))
    document |= {
        "source": source_kind(loaded),
        "snapshot": str(loaded.path) if loaded.path is not None else None,
        "init_from": str(init_path) if init_path is not None else None,
        "normalize": args.normalize,
        "num_classes": loaded.num_classes,
        "input_shape": list(loaded.input_shape),
    }
    for layer, record in zip(layers, records):
        document.setdefault(str(layer.stage), {})[str(layer.block)] = record
    document["net"] = net
    document["layers"] = [layer_fields(layer) | record for layer, record in zip(layers, records)]
    return document


def source_kind(loaded: LoadedModel) -> str:
    if loaded.path is not None:
        return "snapshot"
    return "pretrained" if loaded.epoch == PRETRAINED_EPOCH else "init"


def layer_fields(layer: LayerInfo) -> dict:
    values = {name: getattr(layer, name) for name in LAYER_FIELDS}
    return values | {"input_shape": list(layer.input_shape)}


def summary_row(document: dict, path: Path) -> dict:
    """What the summary keeps of one snapshot's document (not the projection lists)."""
    keep = (*SUMMARY_LAYER_FIELDS, *SUMMARY_METRICS)
    return {
        "epoch": document["epoch"], "file": path.name, "snapshot": document["snapshot"],
        "arch": document["arch"], "dataset": document["dataset"], "seed": document["seed"],
        "layers": [{key: layer.get(key) for key in keep} for layer in document["layers"]],
        "net": {key: document["net"].get(key) for key in ("n_filters", *SUMMARY_METRICS)},
    }


def summary_document(rows: list[dict], args: argparse.Namespace) -> dict:
    """``projections_summary.json``: ``metrics[<metric>][layer][epoch]`` matrices (null where a
    snapshot lacks the layer or the value), ``net[<metric>][epoch]`` and the layer descriptions."""
    layers, matrices = layers_by_epoch([row["layers"] for row in rows], SUMMARY_LAYER_FIELDS, SUMMARY_METRICS)
    first = rows[0]
    document = result_header(SUMMARY_KIND, arch=first["arch"], dataset=first["dataset"], seed=first["seed"],
                             epoch=None, args=vars(args))
    document |= {
        "normalize": args.normalize,
        "epochs": [row["epoch"] for row in rows],
        "files": [row["file"] for row in rows],
        "snapshots": [row["snapshot"] for row in rows],
        "layers": layers,
        "metrics": matrices,
        "net": {metric: [row["net"].get(metric) for row in rows] for metric in ("n_filters", *SUMMARY_METRICS)},
    }
    return document


def log_document(document: dict, path: Path) -> None:
    """One table per snapshot: the numbers a user looks at first."""
    logger.info("%s (epoch %s) -> %s", document["snapshot"] or document["source"], document["epoch"], path)
    logger.info("  %-22s %5s %7s %6s %10s %6s %9s %8s %8s", "layer", "s.b", "filters", "fan_in", "mean", "mass",
                "sign_p", "l2_dist", "ks_p")
    rows = [(layer, f"{layer['stage']}.{layer['block']}", layer["fan_in"]) for layer in document["layers"]]
    for record, position, fan_in in rows + [(dict(document["net"], name="net"), "-", "-")]:
        logger.info("  %-22s %5s %7d %6s %10.4g %6.3f %9.2g %8s %8s", record["name"], position, record["n_filters"],
                    fan_in, record["mean"], record["mass"], record["sign_test_p"], _fmt(record.get("l2_dist")),
                    _fmt(record.get("ks_p")))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3g}"


if __name__ == "__main__":
    sys.exit(run_main(main))
