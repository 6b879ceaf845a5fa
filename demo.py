"""The demo behind `make demo`: what the suite can do today, offline, on the bundled digits.

For now: load the digits, build every registered model on their shape, and report. Later issues
grow this into the full pipeline (training, projections, reinit, DSE, plots, report).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Sequence

import torch

import datasets
import models
from utils.cli import run_main, setup_logging
from utils.errors import UserError

logger = logging.getLogger("demo")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Offline demo on the bundled digits dataset.")
    parser.add_argument("--dataset", default="digits", help="dataset to load [default: digits]")
    return parser


def check_models(bundle: datasets.DataBundle) -> list[tuple[str, str]]:
    """Build every registered model for the dataset's shape and run one batch through it."""
    inputs, _ = next(iter(bundle.test.batches(4)))
    rows = []
    for name in models.list_models():
        start = time.perf_counter()
        try:
            model = models.get_model(name, bundle.num_classes, bundle.in_channels, image_size=bundle.image_size)
        except UserError as err:
            rows.append((name, f"skipped: {err}"))
            continue
        with torch.no_grad():
            out = model.eval()(inputs)
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, f"ok  output {tuple(out.shape)}  {params / 1e6:7.2f}M params  {time.perf_counter() - start:.1f}s"))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging()
    bundle = datasets.build_data(args.dataset)
    logger.info(
        "dataset %s: %d train / %d test images, %d classes, %dx%dx%d",
        args.dataset, len(bundle.train), len(bundle.test), bundle.num_classes,
        bundle.in_channels, bundle.image_size, bundle.image_size,
    )
    for name, status in check_models(bundle):
        logger.info("  %-12s %s", name, status)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
