"""Weight-spectrum metrics per layer (WeightWatcher's) for snapshots, a run directory, a zoo model or a seed.

    python compute_spectra.py --load-from models/digits/lenet/0
    python compute_spectra.py --load-from models/digits/lenet/0/lenet_epoch0003.pt --conv-mode flatten

For every conv and linear layer: the eigenvalues of ``W^T W / N`` (conv layers as their kh*kw
slices pooled into one spectrum, or flattened with ``--conv-mode flatten``), the normalized matrix
entropy, stable rank, spectral norm, log norm, the power-law exponent ``alpha`` and
``alpha_weighted``, ``rand_distance`` (Jensen-Shannon distance to the spectrum of the shuffled
weights) and, given an initialization, the relative Frobenius distance and cosine from it
(definitions: ``metrics/spectral.py``). One ``spectra_<stem>.json`` per snapshot goes to
``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``, plus ``spectra_summary.json``
(layers x epochs arrays) when a folder gets more than one snapshot. With ``--conv-mode flatten`` the
files are ``spectra_conv-flatten_<stem>.json`` and ``spectra_conv-flatten_summary.json``, so both
modes can live in one folder.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Sequence

import torch

from compute_projections import WeightAnalysis, analyse_weights, source_kind
from metrics.layers import LayerInfo, enumerate_layers
from metrics.spectral import CONV_MODES, layer_spectrum
from models.loading import LoadedModel
from utils.choices import add_device_args, print_missing_choice
from utils.cli import run_main
from utils.errors import UserError
from utils.results import layers_by_epoch, result_header

logger = logging.getLogger("compute_spectra")

RESULT_KIND = "spectra"
SUMMARY_KIND = "spectra_summary"
# Per-layer values that spectra_summary.json lays out as layers x epochs matrices.
SUMMARY_METRICS = ("alpha", "alpha_weighted", "entropy", "stable_rank", "spectral_norm", "log_spectral_norm",
                   "log_norm", "rand_distance", "xmin", "ks_distance", "l2_dist", "cosine")
# Averages over layers, as WeightWatcher's get_summary() (plus entropy and rand_distance).
NET_METRICS = ("alpha", "alpha_weighted", "log_norm", "log_spectral_norm", "stable_rank", "entropy", "rand_distance")
LAYER_FIELDS = ("name", "kind", "stage", "block", "index", "out_units", "fan_in", "is_1x1")
SUMMARY_LAYER_FIELDS = ("name", "kind", "stage", "block", "shape", "N", "M", "n_matrices", "num_evals")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Compute weight-spectrum metrics per layer.")
    p.add_argument("--arch", default=None, help="Network architecture. Run without this option (and without --load-from) to see a list of all available archs. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--subsample-classes", type=int, default=0, help="Number of classes in the prediction head of the network. Specify 0 (default) for using the standard number of classes of DATASET.")
    p.add_argument("--dataset", default=None, help="Dataset used to train the model. Used to specify the number of classes of the prediction layer of the model. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--load-from", default="", help="Load trained network(s) from a snapshot file, a run directory (every snapshot, in epoch order) or a glob [default = none: --pretrained or a random init].")
    p.add_argument("--init-from", default="", help="Network initialization: a snapshot (or a run directory, for its epoch-0 snapshot) to measure the distance from initialization of each layer [default = the run's epoch-0 snapshot when it has one].")
    p.add_argument("--no-init", action="store_true", help="Do not compare with any initialization, not even the run's epoch-0 snapshot [default = off].")
    p.add_argument("--pretrained", action="store_true", help="Load pretrained architecture on ImageNet from the local model-zoo cache [default=False].")
    p.add_argument("--download", action="store_true", help="Allow downloading the --pretrained weights [default = off: offline].")
    add_device_args(p)
    p.add_argument("--conv-mode", choices=CONV_MODES, default="slices", help="How a conv layer becomes matrices: its kh*kw (out x in) slices pooled into one spectrum, as WeightWatcher does, or one flattened out x (in*kh*kw) matrix [default = slices].")
    p.add_argument("--shuffle-seed", type=int, default=0, help="Seed of the weight shuffle behind rand_distance (combined with each layer's name) [default = 0].")
    p.add_argument("--upscale", action="store_true", help="The model was trained on images upscaled to 224x224 (plain reference files and random inits only; snapshots know) [default = off].")
    p.add_argument("--results", default="./results", help="Path to store results [default = './results'].")
    p.add_argument("--log", default="spectra.log", help="Logfile name, inside the results folder unless it has a folder [default = 'spectra.log'].")
    p.add_argument("--seed", type=int, default=None, help="Pytorch seed. (Optional) If using --load-from with plain reference files, specify the seed the model was trained with; without a snapshot it seeds the random init [default = none].")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not args.load_from and print_missing_choice(args):
        return 0
    return analyse_weights(args, WeightAnalysis(
        prefix=file_prefix(args.conv_mode), weights_of=layer_weights, analyse=analyse, log_document=log_document,
        summary_row=summary_row, summary_document=summary_document))


def file_prefix(conv_mode: str) -> str:
    """``spectra`` for the default slices, ``spectra_conv-flatten`` for flattened conv layers."""
    return "spectra" if conv_mode == "slices" else f"spectra_conv-{conv_mode}"


def select_layers(loaded: LoadedModel) -> list[LayerInfo]:
    """Every conv (1x1 included) and linear layer, in forward order."""
    return enumerate_layers(loaded.model, loaded.input_shape, include_1x1=True, with_linear=True)


def layer_weights(init: LoadedModel, args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """The initialization's weight tensors of the analysed layers, by module name."""
    return {layer.name: layer.weight.detach() for layer in select_layers(init)}


# -- the result documents ------------------------------------------------------------------------
def analyse(loaded: LoadedModel, args: argparse.Namespace, *, init: dict[str, torch.Tensor] | None,
            init_path: Path | None) -> dict:
    """``spectra_<stem>.json``: the header, a ``layers`` list (forward order) and ``net`` averages."""
    source = f"snapshot {loaded.path}" if loaded.path is not None else loaded.stem
    records = []
    for layer in select_layers(loaded):
        init_weight = init.get(layer.name) if init is not None else None
        if init is not None and init_weight is None:
            raise UserError(f"{source}: layer {layer.name} is missing from the initialization {init_path}")
        try:
            record = layer_spectrum(layer.weight, mode=args.conv_mode, init_weight=init_weight,
                                    seed=args.shuffle_seed, name=layer.name)
        except UserError as err:
            raise UserError(f"{source}: {err}") from err
        records.append(layer_fields(layer) | record)
    document = result_header(RESULT_KIND, arch=loaded.arch, dataset=loaded.dataset, seed=loaded.seed,
                             epoch=loaded.epoch, args=vars(args))
    document |= {
        "source": source_kind(loaded),
        "snapshot": str(loaded.path) if loaded.path is not None else None,
        "init_from": str(init_path) if init_path is not None else None,
        "conv_mode": args.conv_mode,
        "shuffle_seed": args.shuffle_seed,
        "num_classes": loaded.num_classes,
        "input_shape": list(loaded.input_shape),
        "layers": records,
        "net": net_averages(records),
    }
    return document


def layer_fields(layer: LayerInfo) -> dict:
    return {name: getattr(layer, name) for name in LAYER_FIELDS} | {"shape": list(layer.weight.shape)}


def net_averages(records: list[dict]) -> dict:
    """Mean over the layers where a metric is defined (``None`` where it is nowhere)."""
    averages = {}
    for metric in NET_METRICS:
        values = [record[metric] for record in records if _finite(record.get(metric))]
        averages[metric] = sum(values) / len(values) if values else None
    return averages | {"n_layers": len(records)}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def summary_row(document: dict, path: Path) -> dict:
    """What the summary keeps of one snapshot's document (not the eigenvalues)."""
    keep = (*SUMMARY_LAYER_FIELDS, *SUMMARY_METRICS)
    return {
        "epoch": document["epoch"], "file": path.name, "snapshot": document["snapshot"],
        "arch": document["arch"], "dataset": document["dataset"], "seed": document["seed"],
        "layers": [{key: layer.get(key) for key in keep} for layer in document["layers"]],
        "net": document["net"],
    }


def summary_document(rows: list[dict], args: argparse.Namespace) -> dict:
    """``spectra_summary.json``: ``metrics[<metric>][layer][epoch]`` matrices (null where a snapshot
    lacks the layer or the value), ``net[<metric>][epoch]`` and the layer descriptions."""
    layers, matrices = layers_by_epoch([row["layers"] for row in rows], SUMMARY_LAYER_FIELDS, SUMMARY_METRICS)
    first = rows[0]
    document = result_header(SUMMARY_KIND, arch=first["arch"], dataset=first["dataset"], seed=first["seed"],
                             epoch=None, args=vars(args))
    document |= {
        "conv_mode": args.conv_mode,
        "shuffle_seed": args.shuffle_seed,
        "epochs": [row["epoch"] for row in rows],
        "files": [row["file"] for row in rows],
        "snapshots": [row["snapshot"] for row in rows],
        "layers": layers,
        "metrics": matrices,
        "net": {metric: [row["net"].get(metric) for row in rows] for metric in NET_METRICS},
    }
    return document


def log_document(document: dict, path: Path) -> None:
    """One table per snapshot: the numbers a user looks at first."""
    logger.info("%s (epoch %s, conv mode %s) -> %s", document["snapshot"] or document["source"], document["epoch"],
                document["conv_mode"], path)
    logger.info("  %-22s %14s %7s %8s %8s %8s %9s %8s", "layer", "N x M (x B)", "alpha", "entropy", "st.rank",
                "log_norm", "rand_dist", "l2_dist")
    for record in document["layers"]:
        size = f"{record['N']}x{record['M']}" + (f"x{record['n_matrices']}" if record["n_matrices"] > 1 else "")
        logger.info("  %-22s %14s %7s %8s %8s %8s %9s %8s", record["name"], size, _fmt(record["alpha"]),
                    _fmt(record["entropy"]), _fmt(record["stable_rank"]), _fmt(record["log_norm"]),
                    _fmt(record["rand_distance"]), _fmt(record.get("l2_dist")))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3g}"


if __name__ == "__main__":
    sys.exit(run_main(main))
