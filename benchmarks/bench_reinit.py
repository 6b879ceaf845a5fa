"""Layer re-initialization sweep: ours (prefix caching, data read once) vs a naive per-cell evaluation.

    python benchmarks/bench_reinit.py [--repeats 2] [--threads N] [--samples 256] [--rows 2] [--device cpu]

For LeNet on digits-shaped data (1x32x32, 10 classes) and VGG11 on CIFAR-shaped data (3x32x32),
a "trained" snapshot and a few "checkpoints" are random-weight models built in memory, and the
test set is random uint8 images in memory, so it runs offline. Both sides compute the same
(checkpoint, layer) cells for every conv layer from ``--rows`` checkpoints:

* naive: what the reference does per cell: copy the checkpoint's layer into the model, evaluate
  the whole test set with ``training.evaluate.evaluate`` through the data pipeline, copy the
  trained layer back;
* ours: ``metrics.reinit.reinit_sweep`` (test set read once, suffix-only passes from cached
  activations, bit-exact merged passes).

The two must agree exactly on every cell (top-1, top-5 and loss), or the timing means nothing.
Prints a table and ends with ``ratio: <naive time / our time>``, the smallest over the models.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models
from datasets.data import Split
from datasets.sources import TensorSource
from datasets.transforms import make_view
from metrics.layers import enumerate_layers
from metrics.reinit import ResetRow, reinit_sweep
from training.evaluate import evaluate

CASES = {  # model -> (in_channels, mean, std): digits-shaped and CIFAR-shaped inputs
    "lenet": (1, (0.3052,), (0.3236,)),
    "vgg11": (3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
NUM_CLASSES = 10
BATCH_SIZE = 128


def random_split(samples: int, channels: int, mean, std, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (samples, channels, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (samples,), generator=generator).numpy()
    source = TensorSource(images, labels, [str(c) for c in range(NUM_CLASSES)])
    view = make_view(native_size=32, mean=mean, std=std, upscale=False, upscale_padding=False, unnormalize=False,
                     augment=False, hflip=False)
    return Split("test", source, np.arange(samples), labels, view)


def random_model(arch: str, channels: int, seed: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.get_model(arch, NUM_CLASSES, channels, image_size=32).to(device).eval()


def naive(model, layers: list[str], rows: list[ResetRow], split: Split, device) -> list[list[tuple]]:
    """Per cell: swap the layer in, evaluate everything, swap it back."""
    evaluate(model, split.batches(BATCH_SIZE, device=device), num_classes=NUM_CLASSES)  # the trained reference
    cells = []
    for row in rows:
        cells.append([])
        for name in layers:
            module = model.get_submodule(name)
            trained = {key: value.clone() for key, value in module.state_dict().items()}
            with torch.no_grad():
                for key, value in module.state_dict().items():
                    value.copy_(row.state[f"{name}.{key}"])
            result = evaluate(model, split.batches(BATCH_SIZE, device=device), num_classes=NUM_CLASSES)
            module.load_state_dict(trained)
            cells[-1].append((result.top1, result.top5, result.loss))
    return cells


def ours(model, layers: list[str], rows: list[ResetRow], split: Split, device) -> list[list[tuple]]:
    result = reinit_sweep(model, layers, rows, split.batches(BATCH_SIZE, device=device), num_classes=NUM_CLASSES)
    if result.method != "prefix":
        raise SystemExit(f"expected prefix caching, got {result.method}")
    return [[(cell.top1, cell.top5, cell.loss) for cell in row] for row in result.cells]


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def bench_case(arch: str, args: argparse.Namespace, device: torch.device) -> tuple[float, float, int, int]:
    channels, mean, std = CASES[arch]
    model = random_model(arch, channels, 0, device)
    layers = [layer.name for layer in enumerate_layers(model, (channels, 32, 32), include_1x1=True)]
    rows = [ResetRow(f"checkpoint {i}", random_model(arch, channels, 1 + i, device).state_dict())
            for i in range(args.rows)]
    split = random_split(args.samples, channels, mean, std, seed=0)
    best_naive = best_ours = float("inf")
    for _ in range(args.repeats):  # interleaved, so that load from other processes hits both alike
        t_naive, cells_naive = timed(naive, model, layers, rows, split, device)
        t_ours, cells_ours = timed(ours, model, layers, rows, split, device)
        if cells_naive != cells_ours:
            raise SystemExit(f"{arch}: ours and naive disagree; the timing means nothing")
        best_naive, best_ours = min(best_naive, t_naive), min(best_ours, t_ours)
    return best_naive, best_ours, len(layers), len(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="Best of N interleaved runs [default = 2].")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [default = torch's choice].")
    parser.add_argument("--samples", type=int, default=256, help="Test samples [default = 256].")
    parser.add_argument("--rows", type=int, default=2, help="Checkpoints to reset from [default = 2].")
    parser.add_argument("--models", nargs="+", choices=sorted(CASES), default=sorted(CASES),
                        help="Models to run [default = all].")
    parser.add_argument("--device", default="cpu", help="Device [default = cpu].")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"{args.samples} test samples, batch {BATCH_SIZE}, {args.rows} checkpoints, conv layers; device {device}, "
          f"torch threads {torch.get_num_threads()}; best of {args.repeats}")
    print(f"{'model':8s} {'layers':>6s} {'cells':>6s} {'naive s':>9s} {'ours s':>8s} {'ratio':>7s}")
    ratios = []
    for arch in args.models:
        t_naive, t_ours, layers, rows = bench_case(arch, args, device)
        ratios.append(t_naive / t_ours)
        print(f"{arch:8s} {layers:6d} {layers * rows:6d} {t_naive:9.2f} {t_ours:8.2f} {ratios[-1]:7.2f}")
    print(f"ratio: {min(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
