"""Diffusion Spectral Entropy of a representation for snapshots, a run directory, a zoo model or a seed.

    python compute_dse.py --load-from models/digits/lenet/0
    python compute_dse.py --load-from models/digits/lenet/0/lenet_epoch0003.pt --layer classifier.3
    python compute_dse.py --arch resnet18 --dataset cifar10 --pretrained --data-path ./data --cuda

For every model: DSE(Z), DSMI(Z; Y) with the true labels and CSE(Z) of the representation Z (by
default the input of the last linear layer; ``--layer`` names any module, whose output is used)
on a fixed probe set: ``--dse-samples`` samples of the validation split, else of the test split,
drawn with ``--dse-seed``. A snapshot's data options (class subset, validation split, upscaling,
...) come from the run that wrote it, so the probe is the one ``train.py`` used at every snapshot.
One ``dse_<stem>.json`` per model goes to
``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``, plus ``dse_summary.json``
(values per epoch, from every result file there measured with the same settings). With
``--layer`` the files are named ``dse_layer-<module>_<stem>.json`` and ``dse_layer-<module>_summary.json``.

``--hsic`` adds, on the same probe, the HSIC information plane of every conv and linear layer's
output T: HSIC(T, X) with the inputs and HSIC(T, Y) with one-hot labels (Gaussian kernels, median
heuristic bandwidths or ``--hsic-sigma``), written to ``hsic_<stem>.json`` and ``hsic_summary.json``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

import torch

import datasets
from compute_projections import iter_models, output_dir, source_kind
from models.loading import LoadedModel
from training import hsic_analyzer
from training.dse_analyzer import (
    DEFAULT_SAMPLES,
    DEFAULT_SEED,
    DEFAULT_SIGMA,
    DEFAULT_T,
    MAX_N,
    DSESettings,
    measure,
    probe_split,
    result_document,
    result_path,
    write_summary,
)
from utils.choices import add_device_args, print_missing_choice
from utils.cli import run_main, setup_logging
from utils.devices import resolve_device
from utils.errors import UserError
from utils.paths import check_log_folder, check_output_folder, log_path
from utils.results import write_result

logger = logging.getLogger("compute_dse")

# Data options a snapshot's run fixes (its stored arguments win; a flag that disagrees is an error).
RUN_DATA_OPTIONS = ("class_sample_seed", "split", "stratified", "split_seed", "shuffle", "upscale_padding",
                    "unnormalize")
DATA_DEFAULTS = datasets.DataOptions()


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Compute DSE, DSMI and CSE of a representation.")
    p.add_argument("--arch", default=None, help="Network architecture. Run without this option (and without --load-from) to see a list of all available archs. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--dataset", default=None, help="Dataset the model was trained on; the probe samples come from it. Optional with a self-describing snapshot, where it must agree.")
    p.add_argument("--subsample-classes", type=int, default=0, help="Number of classes in the prediction head of the network (and of the probe). Specify 0 (default) for using the standard number of classes of DATASET.")
    p.add_argument("--load-from", default="", help="Load trained network(s) from a snapshot file, a run directory (every snapshot, in epoch order) or a glob [default = none: --pretrained or a random init].")
    p.add_argument("--pretrained", action="store_true", help="Load pretrained architecture on ImageNet from the local model-zoo cache [default=False].")
    p.add_argument("--download", action="store_true", help="Allow downloading the --pretrained weights or the dataset [default = off: offline].")
    add_device_args(p)
    p.add_argument("--seed", type=int, default=None, help="Pytorch seed. (Optional) If using --load-from with plain reference files, specify the seed the model was trained with; without a snapshot it seeds the random init [default = none].")
    p.add_argument("--layer", default=None, help="Module whose (flattened) output is the representation, e.g. classifier.3 [default = the input of the last linear layer, the penultimate representation].")
    p.add_argument("--dse-samples", type=int, default=DEFAULT_SAMPLES, help=f"Number of probe samples, drawn from the validation split, else the test split [default = {DEFAULT_SAMPLES}].")
    p.add_argument("--dse-seed", type=int, default=DEFAULT_SEED, help=f"Seed of the probe draw and of DSMI's random subsets (train.py uses the same) [default = {DEFAULT_SEED}].")
    p.add_argument("--sigma", "--dse-sigma", type=float, default=DEFAULT_SIGMA, help=f"Gaussian kernel bandwidth [default = {DEFAULT_SIGMA:g}, as dse-dsmi].")
    p.add_argument("--t", "--dse-t", type=float, default=DEFAULT_T, help=f"Diffusion time: power of the eigenvalues [default = {DEFAULT_T:g}].")
    p.add_argument("--max-n", type=int, default=MAX_N, help=f"Probes larger than this are subsampled with dse-dsmi's seeded draw [default = {MAX_N}].")
    p.add_argument("--batch-size", type=int, default=256, help="Batch size of the forward passes [default = 256].")
    p.add_argument("--data-path", default=None, help="Path to the local dataset files [default = the snapshot's, else './data'].")
    p.add_argument("--split", type=float, default=None, help="Validation split size the model was trained with (plain reference files and zoo models; snapshots know) [default = 0].")
    p.add_argument("--stratified", action="store_true", default=None, help="The validation split was stratified (as --split) [default = off].")
    p.add_argument("--split-seed", type=int, default=None, help="Seed of the validation split (as --split) [default = 42].")
    p.add_argument("--shuffle", action="store_true", default=None, help="The training data was shuffled before the validation split (as --split) [default = off].")
    p.add_argument("--class-sample-seed", type=int, default=None, help="Seed used for sampling classes with --subsample-classes (as --split) [default = 42].")
    p.add_argument("--upscale", action="store_true", help="The model was trained on images upscaled to 224x224 (plain reference files and random inits only; snapshots know) [default = off].")
    p.add_argument("--upscale-padding", action="store_true", default=None, help="The model was trained on images upscaled to 112x112 and padded to 224x224 (as --upscale) [default = off].")
    p.add_argument("--unnormalize", action="store_true", default=None, help="The model was trained on unnormalized [0,1] pixels (as --upscale) [default = off].")
    hsic_analyzer.add_hsic_arguments(p)
    p.add_argument("--results", default="./results", help="Path to store results [default = './results'].")
    p.add_argument("--log", default="dse.log", help="Logfile name, inside the results folder unless it has a folder [default = 'dse.log'].")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not args.load_from and print_missing_choice(args):
        return 0
    setup_logging(None)
    settings = DSESettings(samples=args.dse_samples, seed=args.dse_seed, sigma=args.sigma, t=args.t,
                           layer=args.layer, max_n=args.max_n, batch_size=args.batch_size)
    settings.validate()
    check_output_folder(args.results, "--results")
    check_log_folder(args.log)
    hsic_settings = hsic_analyzer.settings_from_args(args, samples=args.dse_samples, seed=args.dse_seed) \
        if args.hsic else None
    device = resolve_device(cuda=args.cuda, device=args.device)
    data_cache: dict[tuple, datasets.DataBundle] = {}
    written: dict[Path, str] = {}
    for loaded in iter_models(args, device):
        out_dir = output_dir(loaded, args)
        probe = probe_split(probe_data(loaded, args, data_cache), settings.samples, settings.seed)
        document = analyse(loaded, args, settings, probe, device)
        hsic_document = analyse_hsic(loaded, args, hsic_settings, probe, device) if hsic_settings else None
        if not written:  # the log file appears with the first result, not on bad input
            setup_logging(str(log_path(args.log, out_dir)))
        path = write_result(result_path(out_dir, settings, loaded.stem), document)
        log_document(document, path)
        if hsic_document is not None:
            path = write_result(hsic_analyzer.result_path(out_dir, loaded.stem), hsic_document)
            log_hsic_document(hsic_document, hsic_settings, path)
        written[out_dir] = loaded.arch
    for out_dir, arch in written.items():
        summary = write_summary(out_dir, settings, arch=arch, args=vars(args))
        logger.info("summary (values per epoch) -> %s", summary)
        if hsic_settings is not None:
            summary = hsic_analyzer.write_summary(out_dir, hsic_settings, arch=arch, args=vars(args))
            logger.info("HSIC summary (layers x epochs) -> %s", summary)
    return 0


# -- the probe data ------------------------------------------------------------------------------
def data_options(loaded: LoadedModel, args: argparse.Namespace) -> datasets.DataOptions:
    """The data of the run that wrote ``loaded`` (its stored arguments), else of the flags."""
    stored = loaded.args or {}
    values = {"subsample_classes": stored.get("subsample_classes", args.subsample_classes) or 0,
              "upscale": bool(stored.get("upscale", args.upscale))}
    for name in RUN_DATA_OPTIONS:
        given, default = getattr(args, name), getattr(DATA_DEFAULTS, name)
        if name in stored and given is not None and given != stored[name]:
            raise UserError(f"--{name.replace('_', '-')} {given} disagrees with snapshot {loaded.path} "
                            f"({stored[name]}); drop the flag or fix it")
        values[name] = stored.get(name, given if given is not None else default)
    data_path = args.data_path or stored.get("data_path") or DATA_DEFAULTS.data_path
    return datasets.DataOptions(data_path=data_path, download=args.download, **values)


def probe_data(loaded: LoadedModel, args: argparse.Namespace, cache: dict) -> datasets.DataBundle:
    options = data_options(loaded, args)
    key = (loaded.dataset, options)
    if key not in cache:
        cache[key] = datasets.build_data(loaded.dataset, options)
    data = cache[key]
    if (data.num_classes, data.in_channels, data.image_size) != (loaded.num_classes, *loaded.input_shape[:2]):
        raise UserError(f"the probe data of {loaded.dataset} ({data.num_classes} classes, {data.in_channels} "
                        f"channels, {data.image_size}px) does not fit {loaded.stem} ({loaded.num_classes} classes, "
                        f"{loaded.in_channels} channels, {loaded.image_size}px); check --subsample-classes and --upscale")
    return data


# -- the result document ---------------------------------------------------------------------------
def analyse(loaded: LoadedModel, args: argparse.Namespace, settings: DSESettings, probe,
            device: torch.device) -> dict:
    """``dse_<stem>.json`` of ``loaded`` on ``probe`` (a Split)."""
    measured = measure(loaded.model, probe, settings, device=device)
    return result_document(measured, probe, settings, arch=loaded.arch, dataset=loaded.dataset, seed=loaded.seed,
                           epoch=loaded.epoch, snapshot=loaded.path, source=source_kind(loaded),
                           num_classes=loaded.num_classes, args=vars(args))


def analyse_hsic(loaded: LoadedModel, args: argparse.Namespace, settings: hsic_analyzer.HSICSettings, probe,
                 device: torch.device) -> dict:
    """``hsic_<stem>.json`` on the DSE probe (``--dse-samples`` drawn with ``--dse-seed``: one draw,
    its images moved to the device once)."""
    measured = hsic_analyzer.measure(loaded.model, probe, settings, device=device, input_shape=loaded.input_shape,
                                     num_classes=loaded.num_classes)
    return hsic_analyzer.result_document(measured, probe, settings, arch=loaded.arch, dataset=loaded.dataset,
                                         seed=loaded.seed, epoch=loaded.epoch, snapshot=loaded.path,
                                         source=source_kind(loaded), num_classes=loaded.num_classes, args=vars(args))


def log_document(document: dict, path: Path) -> None:
    logger.info("%s (epoch %s, %s of %s, %d samples of %s): DSE(Z) %.4f  DSMI(Z;Y) %.4f  CSE(Z) %.4f bits "
                "(max %.2f) -> %s", document["snapshot"] or document["source"], document["epoch"], document["hook"],
                document["layer"], document["probe"]["size"], document["probe"]["split"], _nan(document["dse"]),
                _nan(document["dsmi_y"]), _nan(document["cse"]), document["log2_size"], path)


def log_hsic_document(document: dict, settings: hsic_analyzer.HSICSettings, path: Path) -> None:
    key_x, key_y = settings.plane_keys
    logger.info("%s (epoch %s): HSIC information plane (%s, %s) on %d samples -> %s",
                document["snapshot"] or document["source"], document["epoch"], key_x, key_y,
                document["probe"]["size"], path)
    for layer in document["layers"]:
        logger.info("  %-22s %8d features  x %.4g  y %.4g", layer["name"], layer["feature_dim"], _nan(layer[key_x]),
                    _nan(layer[key_y]))


def _nan(value) -> float:
    return float("nan") if value is None else value


if __name__ == "__main__":
    sys.exit(run_main(main))
