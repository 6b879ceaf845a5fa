"""sweep.py's own cost, and what running members side by side buys.

1. Overhead per member: a family of ``--members`` LeNet members on digits (``--epochs`` 3, the default
   analyses: projections and reinit, then figures) through ``sweep.py --jobs 1``, against the same
   commands (``--dry-run``'s) run by hand one after another. Target: under 5% of a member.
2. ``--jobs 2`` against ``--jobs 1`` on the same family. Target: ``--jobs 2`` at least 1.3x faster on
   a 2-core machine.

    python benchmarks/bench_sweep.py [--members 4] [--epochs 3]

Each side starts from an empty folder (nothing is skipped). Ends with ``ratio: <jobs 1 time / jobs 2 time>``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sweeper.local import cpu_count  # noqa: E402


def sweep(root: Path, members: int, epochs: int, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "sweep.py"), "--root", str(root), "--name", "bench", "--arch", "lenet",
            "--dataset", "digits", "--epochs", str(epochs), "--seed", *map(str, range(members)), *extra]


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def by_hand(root: Path, members: int, epochs: int, env: dict) -> float:
    listed = subprocess.run(sweep(root, members, epochs, "--dry-run"), cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True).stdout
    commands = [shlex.split(line) for line in listed.splitlines() if line.startswith("python ")]
    start = time.perf_counter()
    for command in commands:
        subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    cores = cpu_count()
    env = {**os.environ, "CI": "true"}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        hand = by_hand(scratch / "hand", args.members, args.epochs, env | {"OMP_NUM_THREADS": str(cores)})
        one = timed(sweep(scratch / "one", args.members, args.epochs, "--jobs", "1"), env)
        two = timed(sweep(scratch / "two", args.members, args.epochs, "--jobs", "2"), env)
    member = hand / args.members
    overhead = (one - hand) / args.members
    print(f"{args.members} LeNet members on digits, {args.epochs} epochs, projections + reinit + figures, {cores} cores")
    print(f"{'':28s} {'total s':>9s} {'per member s':>13s}")
    print(f"{'by hand (dry-run commands)':28s} {hand:9.1f} {member:13.1f}")
    print(f"{'sweep.py --jobs 1':28s} {one:9.1f} {one / args.members:13.1f}")
    print(f"{'sweep.py --jobs 2':28s} {two:9.1f} {two / args.members:13.1f}")
    print(f"sweep overhead per member: {overhead:+.2f} s = {100 * overhead / member:+.1f}% of a member (target < 5%)")
    print(f"ratio: {one / two:.2f}")


if __name__ == "__main__":
    main()
