"""Ranking the measures of a 100-run family: ``comparison.measures.load_measures`` (the runs read
through ``schema``) and ``comparison.ranking.rank`` (Kendall, Spearman and 2000-draw bootstrap
intervals per measure and target, granulated Kendall) on the synthetic family of ``bench_compare.py``
(100 runs x 10 snapshots x 20 layers), against the floor of only parsing every JSON file. Target:
under 10 s in all.

    python benchmarks/bench_rank.py [--runs 100] [--snapshots 10] [--layers 20] [--resamples 2000]

bench_compare.py's runs all reach the same accuracy; here each run's run.json is given a test and
train top-1 that fall with its noise level (plus a seeded jitter), so that every correlation and
its bootstrap are computed. Ends with ``ratio: <parse-only time / load-and-rank time>``.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_compare import family_parser, parse_all, timed, write_family  # noqa: E402

from comparison.measures import load_measures  # noqa: E402
from comparison.ranking import rank  # noqa: E402


def vary_accuracy(root: Path) -> None:
    """Test top-1 falls with the label noise (pixel shuffle: as noise 0.9); train top-1 stays high."""
    rng = np.random.default_rng(1)
    for path in sorted(root.rglob("run.json")):
        record = json.loads(path.read_text())
        noise = record["args"]["noise"]
        top1 = 90.0 - 60.0 * (0.9 if noise < 0 else noise) + rng.normal(0, 2)
        for row in record["epochs"]:
            row |= {"val_top1": top1, "val_loss": 1.0 + noise, "train_top1": 99.0}
        path.write_text(json.dumps(record))


def main() -> None:
    parser = family_parser(__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap draws [default = 2000]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        files = write_family(root, args.runs, args.snapshots, args.layers)
        vary_accuracy(root)
        floor, _ = timed(parse_all, root)
        read, table = timed(load_measures, [root])
        ranked, ranking = timed(rank, table, resamples=args.resamples)
    print(f"{args.runs} runs x {args.snapshots} snapshots x {args.layers} layers: {files} files, "
          f"{table.measure.nunique()} measures x {ranking.target.nunique()} targets, {args.resamples} bootstrap draws")
    print(f"{'parse every JSON file (floor)':34s} {floor:7.2f} s")
    print(f"{'load_measures (read + measures)':34s} {read:7.2f} s")
    print(f"{'rank (statistics)':34s} {ranked:7.2f} s")
    print(f"{'total':34s} {read + ranked:7.2f} s   (target < 10 s)")
    print(f"ratio: {floor / (read + ranked):.2f}")


if __name__ == "__main__":
    main()
