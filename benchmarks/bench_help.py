"""``--help`` of every CLI: as it is, against the same ``--help`` after importing what every CLI's
``--help`` imported before issue 42 (torch, torchvision and scipy.stats, through ``datasets`` and
``metrics/projections.py``), which stands for the old cost in this same checkout.

    python benchmarks/bench_help.py [--repeats 3]

Each row is the best of ``--repeats`` fresh processes per side. Target (issue 42): under 2 s for every
CLI on 2 cores; the CLIs whose parser needs torch (tests/test_cli_imports.py says why) pay torch's
import. Ends with ``ratio: <sum of baseline times / sum of ours>``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIS = ("train", "compute_projections", "compute_spectra", "compute_dse", "compute_measures", "reinit_layers",
        "plot_results", "sweep", "compare_runs", "rank_measures")
BEFORE = "import torch, torchvision, scipy.stats"
RUN = "import runpy, sys; sys.argv = ['{cli}.py', '--help']; runpy.run_path('{cli}.py', run_name='__main__')"


def best(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Processes per side and CLI; the best counts [default = 3].")
    args = parser.parse_args()
    print(f"{'CLI --help':22s} {'with the old imports s':>23s} {'ours s':>8s}")
    totals = [0.0, 0.0]
    for cli in CLIS:
        old = best([sys.executable, "-c", f"{BEFORE}; {RUN.format(cli=cli)}"], args.repeats)
        ours = best([sys.executable, f"{cli}.py", "--help"], args.repeats)
        totals[0] += old
        totals[1] += ours
        print(f"{cli:22s} {old:23.2f} {ours:8.2f}")
    print(f"ratio: {totals[0] / totals[1]:.2f}")


if __name__ == "__main__":
    main()
