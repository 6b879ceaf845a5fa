"""The family table through the real reader: ``schema.load_table`` on a synthetic family of 100 runs x
10 snapshots x 20 layers (run.json, projection, DSE and reinit documents shaped like ours, with
64 filters per layer), against the floor of only parsing every JSON file. Target: under 10 s.

    python benchmarks/bench_compare.py [--runs 100] [--snapshots 10] [--layers 20]

Ends with ``ratio: <parse-only time / load_table time>`` (how close the reader is to the I/O floor).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import schema  # noqa: E402

FILTERS = 64


def layer_record(rng, name: str, index: int) -> dict:
    projections = rng.normal(0.1, 1.0, FILTERS)
    counts, edges = np.histogram(projections, bins=20)
    return {"name": name, "kind": "conv", "stage": index // 4, "block": index % 4, "index": index,
            "projections": projections.tolist(), "fan_in": 576, "mean": float(projections.mean()),
            "std": float(projections.std()), "median": float(np.median(projections)),
            "histogram": {"bin_edges": edges.tolist(), "counts": counts.tolist()},
            "mass": float((projections <= 0).mean()), "n_filters": FILTERS, "sign_test_p": float(rng.random()),
            "l2_dist": float(rng.random()), "ks_p": float(rng.random()), "cosine": float(rng.random())}


def write_family(root: Path, runs: int, snapshots: int, layers: int) -> int:
    rng = np.random.default_rng(0)
    names = [f"features.{i}" for i in range(layers)]
    files = 0
    for run in range(runs):
        noise, seed = (0.0, 0.5, 1.0, -1.0)[run % 4], run // 4
        sub = Path("digits", *([] if noise == 0 else ["pixel_shuffle" if noise < 0 else f"noise_{int(noise * 100)}"]),
                   "vgg", str(seed))
        epochs = [int(e) for e in np.linspace(0, 30, snapshots)]
        record = {"schema_version": 1, "kind": "run", "arch": "vgg", "dataset": "digits", "seed": seed,
                  "args": {"arch": "vgg", "dataset": "digits", "noise": noise, "seed": seed, "lr": 0.01},
                  "epochs": [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "val_top1": 50.0, "eval_split": "test"}
                             for e in range(1, 31)],
                  "snapshots": [{"epoch": e} for e in epochs], "status": {"state": "finished", "last_epoch": 30}}
        documents = {root / "models" / sub / "run.json": record}
        results = root / "results" / sub
        for epoch in epochs:
            records = [layer_record(rng, name, i) for i, name in enumerate(names)]
            head = {"schema_version": 1, "arch": "vgg", "dataset": "digits", "seed": seed, "epoch": epoch, "args": {}}
            document = head | {"kind": "projections", "layers": records, "net": records[0]}
            for record_ in records:
                document.setdefault(str(record_["stage"]), {})[str(record_["block"])] = record_
            documents[results / f"projections_vgg_epoch{epoch:04d}.json"] = document
            documents[results / f"dse_vgg_epoch{epoch:04d}.json"] = head | {
                "kind": "dse", "settings": {"sigma": 10.0, "layer": None}, "dse": 2.0, "dsmi_y": 1.0, "cse": 5.0,
                "probe": {"indices": list(range(1000))}}
        rows = [{"key": str(e), "source": "snapshot", "epoch": e, "top1": [40.0] * layers,
                 "relative_drop": rng.random(layers).tolist()} for e in epochs]
        documents[results / "reinit_vgg_epoch0030.json"] = {
            "schema_version": 1, "kind": "reinit", "arch": "vgg", "dataset": "digits", "seed": seed, "epoch": 30,
            "args": {}, "layer_names": names, "rows": rows, "top1_test": 50.0}
        for path, document in documents.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document))
        files += len(documents)
    return files


def timed(function, *args, **kwargs):
    """``(seconds, value)`` of one call."""
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - start, value


def parse_all(root: Path) -> int:
    """Parse every JSON file under ``root`` (the I/O floor of any reader); the number of files."""
    return sum(1 for path in root.rglob("*.json") if json.loads(path.read_text()) is not None)


def family_parser(description: str) -> argparse.ArgumentParser:
    """The size of the synthetic family (shared with bench_rank.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=100, help="runs in the family [default = 100]")
    parser.add_argument("--snapshots", type=int, default=10, help="snapshots per run [default = 10]")
    parser.add_argument("--layers", type=int, default=20, help="layers per model [default = 20]")
    return parser


def main() -> None:
    args = family_parser(__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        files = write_family(root, args.runs, args.snapshots, args.layers)
        size = sum(path.stat().st_size for path in root.rglob("*.json"))
        floor, _ = timed(parse_all, root)
        ours, table = timed(schema.load_table, [root])
    print(f"{args.runs} runs x {args.snapshots} snapshots x {args.layers} layers: {files} files, {size / 1e6:.0f} MB, "
          f"{len(table)} table rows")
    print(f"{'parse every JSON file (floor)':34s} {floor:7.2f} s")
    print(f"{'schema.load_table':34s} {ours:7.2f} s   (target < 10 s)")
    print(f"ratio: {floor / ours:.2f}")


if __name__ == "__main__":
    main()
