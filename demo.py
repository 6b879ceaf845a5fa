"""`make demo`: the whole pipeline, offline, on the bundled digits, with a short report.

A scripted user: it runs the CLIs in-process, one after another, through their ``main(argv)``, as
a shell script would run them (so it is the one top-level script that imports the CLIs).

Trains LeNet (snapshots every epoch at first, then every few; DSE, the HSIC information plane and
projection logging per snapshot), computes projection statistics and weight spectra for every
snapshot against the init, runs the re-initialization sweep, draws every figure and writes
``report.md`` that embeds them and says which layers are biased, which are critical, and how the
two correlate.

    python demo.py [--output demo_output] [--epochs 15]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import compute_projections
import compute_spectra
import plot_results
import reinit_layers
import schema
import train
from plotting.report import report_markdown
from utils.checkpoints import resolve_snapshots
from utils.cli import keeps_caller_logging, run_main, setup_logging
from utils.errors import UserError
from utils.fileio import atomic_write
from utils.paths import run_subdir

logger = logging.getLogger("demo")

ARCH, DATASET, SEED = "lenet", "digits", 0


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Offline end-to-end demo on the bundled digits dataset.")
    p.add_argument("--output", default="demo_output", help="where everything goes [default = demo_output]")
    p.add_argument("--epochs", type=int, default=15, help="training epochs [default = 15]")
    p.add_argument("--snapshot-all-until", type=int, default=5, help="snapshot every epoch until this one [default = 5]")
    p.add_argument("--snapshot-every", type=int, default=5, help="then every this many epochs [default = 5]")
    return p


def step(name: str, cli_main, argv: list[str]) -> None:
    start = time.perf_counter()
    logger.info("== %s", name)
    code = cli_main(argv)
    if code != 0:
        raise SystemExit(f"demo step '{name}' failed with exit code {code}")
    logger.info("   %s took %.1fs", name, time.perf_counter() - start)


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging()
    out = Path(args.output)
    models_dir, results_root, plots_root = out / "models", out / "results", out / "plots"
    sub = run_subdir(dataset=DATASET, arch=ARCH, seed=SEED)
    run_dir, results_dir, plots_dir = models_dir / sub, results_root / sub, plots_root / sub
    start = time.perf_counter()
    step("train LeNet on digits", train.main, [
        "--arch", ARCH, "--dataset", DATASET, "--seed", str(SEED), "--epochs", str(args.epochs),
        "--optimizer", "adam", "--lr", "0.002", "--batch-size", "32", "--lr-schedule", "cosine",
        "--split", "0.1", "--stratified", "--snapshot-all-until", str(args.snapshot_all_until),
        "--snapshot-every", str(args.snapshot_every), "--models-path", str(models_dir),
        "--results", str(results_root), "--tb-logdir", str(out / "tensorboard"), "--no-progress", "--hsic",
    ])
    train_time = time.perf_counter() - start
    step("projection statistics", compute_projections.main, [
        "--load-from", str(run_dir), "--normalize", "--results", str(results_root),
    ])
    step("weight spectra", compute_spectra.main, ["--load-from", str(run_dir), "--results", str(results_root)])
    step("re-initialization sweep", reinit_layers.main, [
        "--load-from", str(resolve_snapshots(run_dir)[-1]), "--inits-from", str(run_dir), "--rand",
        "--results", str(results_root), "--plots", str(plots_root),
    ])
    step("figures", plot_results.main, [str(results_dir), str(run_dir), "--plots", str(plots_dir)])
    report = write_report(out / "report.md", run_dir=run_dir, results_dir=results_dir, plots_dir=plots_dir,
                          timings={"training": train_time, "total": time.perf_counter() - start})
    logger.info("done in %.0fs. Report: %s", time.perf_counter() - start, report)
    return 0


def write_report(path: Path, *, run_dir: Path, results_dir: Path, plots_dir: Path, timings: dict) -> Path:
    """``report.md``: the run (read as compare_runs.py reads a family: ``schema.find_runs``, a family of
    one) and its figures, in words."""
    runs, _ = schema.find_runs([results_dir, run_dir])
    if len(runs) != 1:
        raise UserError(f"expected one run in {run_dir} and {results_dir}, found {len(runs)}")
    text = report_markdown(runs[0], report_dir=path.parent, figures=list(plots_dir.rglob("*.png")),
                           run_dir=run_dir, results_dir=results_dir, plots_dir=plots_dir, timings=timings)
    return atomic_write(path, lambda handle: handle.write(text.encode()))


if __name__ == "__main__":
    sys.exit(run_main(main))
