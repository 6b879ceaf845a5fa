"""compute_spectra's measurement vs weightwatcher 0.7.7's analyze(), on ResNet-18 and ViT-B/16, in one run.

    python benchmarks/bench_spectra.py [--models resnet18 vit_b_16] [--repeats 1] [--no-traps]

Both analyse torchvision's randomly initialized models (seeded), every weight matrix each tool covers:
ours the conv and linear layers and, for the ViT, each attention's q, k, v and out_proj (metrics/matrices.py);
weightwatcher its conv and linear layers (out_proj included, in_proj not). Ours computes the spectrum,
alpha, entropy, stable rank, norms, rand_distance, the Marchenko-Pastur fit and the correlation traps
(compute_spectra.py's default); weightwatcher ``analyze(randomize=True, mp_fit=True)``, which computes
the same (its rand_distance and traps come from the randomized spectrum). ``--no-traps`` compares ours
without the traps against weightwatcher's default ``analyze()`` (no randomized spectrum, no rand_distance). Each time is the best of ``--repeats`` runs. Prints a final
``ratio: <weightwatcher time / our time>`` line for the last model (target: >= 5).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.spectra import Spectra, SpectraSettings
from analyses.subject import INIT, Subject


def model_of(name: str) -> torch.nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None).eval()


def best_time(function, repeats: int, *args, **kwargs):
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "vit_b_16"], help="torchvision model names [default = resnet18 vit_b_16]")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement, the best is kept [default = 1]")
    parser.add_argument("--no-traps", dest="traps", action="store_false", help="no correlation traps (randomized spectra) on either side [default = on, as compute_spectra.py]")
    args = parser.parse_args(argv)
    import weightwatcher

    logging.disable(logging.WARNING)  # weightwatcher logs every layer
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, weightwatcher {weightwatcher.__version__}, "
          f"traps {'on' if args.traps else 'off'}")
    print(f"{'model':10s} {'ours (s)':>9s} {'matrices':>8s} {'ww (s)':>8s} {'matrices':>8s} {'ratio':>6s}")
    ratio = float("nan")
    for name in args.models:
        model = model_of(name)
        subject = Subject(model, name, "imagenet", 1000, 3, 224, None, 0, source=INIT)
        analysis = Spectra(SpectraSettings(traps=args.traps))
        ours, measured = best_time(analysis.measure, args.repeats, subject)
        watcher = weightwatcher.WeightWatcher(model=model)
        options = {"randomize": True, "mp_fit": True} if args.traps else {}
        theirs, details = best_time(watcher.analyze, args.repeats, vectors=False, detX=False, **options)
        ratio = theirs / ours
        print(f"{name:10s} {ours:9.1f} {len(measured['records']):8d} {theirs:8.1f} {len(details):8d} {ratio:6.1f}")
    print(f"ratio: {ratio:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
