"""Draw every figure the result JSON supports, as PNG and PDF.

    python plot_results.py results/digits/lenet/0 runs/digits/lenet/0 --plots plots

Inputs are folders (searched recursively) or JSON files: result files of this suite, the
reference tool's files (same keys) and train.py's run.json. Files are grouped by run (their
folder relative to the input folder), and each run gets its figures under ``--plots``. A figure
whose data is missing is skipped with a one-line notice.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backend_bases import FigureCanvasBase

import schema
from plotting import dse, figures, headline, hsic, reinit, spectra  # noqa: F401  (registers the figure builders)
from plotting.common import style
from plotting.registry import MissingData, get_figure, list_figures
from utils.cli import keeps_caller_logging, run_main, setup_logging
from utils.errors import UserError
from utils.fileio import atomic_savefig
from utils.paths import check_output_folder

logger = logging.getLogger("plot_results")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Plot heatmaps and curves from result JSON.")
    p.add_argument("inputs", nargs="+", help="result folders or JSON files (results/..., runs/.../run.json)")
    p.add_argument("--plots", default="./plots", help="Path to store plots [default = './plots'].")
    p.add_argument("--figures", nargs="+", choices=list_figures(), default=None,
                   help="which figures to draw [default: all the data supports]")
    p.add_argument("--epochs", nargs="+", type=int, default=None,
                   help="epochs for the per-layer histograms [default: init, a middle and the last epoch]")
    p.add_argument("--spectra-layer", default=None,
                   help="layer whose eigenvalue spectrum spectra_esd draws [default: the layer with the largest matrix]")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"], help="Figure formats [default = png pdf].")
    p.add_argument("--log", default=None, help="Logfile name [default = none].")
    return p


def collect(inputs: Sequence[str]) -> dict[str, schema.Run]:
    """Every run under ``inputs`` (its documents read by ``schema.collect``), by run folder relative
    to its input folder."""
    return {key: schema.Run.of_documents(key, documents) for key, documents in schema.collect(inputs).items()}


def draw_run(run: schema.Run, out_dir: Path, names: list[str], options: dict) -> list[Path]:
    """Every figure of ``names`` the run's results support, saved under ``out_dir``."""
    written = []
    for name in names:
        with style():  # building and saving: the style sets the saved dpi and bounding box too
            try:
                built = get_figure(name)(run, options)
            except MissingData as missing:
                where = f" for {run.folder}" if str(run.folder) != "." else ""
                logger.info("skipped %s%s: %s", name, where, missing)
                continue
            for stem, fig in built:
                written += atomic_savefig(fig, out_dir / stem, tuple(options["formats"]))
    return written


def check_formats(formats: Sequence[str]) -> None:
    supported = FigureCanvasBase.get_supported_filetypes()
    unknown = [fmt for fmt in formats if fmt not in supported]
    if unknown:
        raise UserError(f"--formats {' '.join(unknown)}: not a figure format; choose from {', '.join(sorted(supported))}")


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(args.log)
    check_output_folder(args.plots, "--plots")
    check_formats(args.formats)
    runs = collect(args.inputs)
    options = {"epochs": args.epochs, "formats": args.formats, "spectra_layer": args.spectra_layer}
    total = []
    for key, run in sorted(runs.items()):
        out_dir = Path(args.plots) / key
        total += draw_run(run, out_dir, args.figures or list_figures(), options)
    for path in total:
        logger.info("wrote %s", path)
    logger.info("%d files in %s", len(total), args.plots)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
