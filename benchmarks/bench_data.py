"""Training throughput: our in-memory pipeline vs a reference-style DataLoader with PIL transforms.

Both train the same model for one epoch on the same CIFAR-shaped uint8 images (generated in
memory, so it runs offline) with crop+flip+normalize augmentation and the same batch size. The
baseline is what the reference tool does (``train.py --data-pipeline dataloader``): PIL images,
per-sample transforms in a DataLoader (``--workers 1``, its default).

    python benchmarks/bench_data.py [--device cuda] [--images 4096]

Ends with ``ratio: <baseline time / our time>`` for LeNet (the smallest model, where the data
pipeline dominates).
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
from training.loop import train_one_epoch
from training.performance import SpeedOptions, prepare_model

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cifar_split(images_hwc, labels) -> Split:
    source = TensorSource(torch.from_numpy(images_hwc).permute(0, 3, 1, 2).contiguous(), labels, [])
    view = make_view(native_size=32, mean=MEAN, std=STD, upscale=False, upscale_padding=False, unnormalize=False,
                     augment=True, hflip=True)
    return Split("train", source, np.arange(len(labels)), labels, view)


def batches(split: Split, pipeline: str, batch_size: int, workers: int, device):
    """``fast``: ours; ``dataloader``: per-sample PIL RandomCrop(32, 4) + flip + ToTensor + Normalize."""
    return split.batches(batch_size, shuffle=True, device=device, generator=torch.Generator().manual_seed(0),
                         workers=workers, pipeline=pipeline)


def images_per_second(arch, make_batches, n_images, device, speed: SpeedOptions, repeats: int) -> float:
    """Best of ``repeats`` epochs, each from a fresh model (the first also pays one-time costs)."""
    return max(_epoch_images_per_second(arch, make_batches(), n_images, device, speed) for _ in range(repeats))


def _epoch_images_per_second(arch, batches, n_images, device, speed: SpeedOptions) -> float:
    torch.manual_seed(0)
    model = prepare_model(models.get_model(arch, 10, 3, image_size=32, check_input=False).to(device), speed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    train_one_epoch(model, batches, optimizer, epoch=1, show_progress=False, speed=speed)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n_images / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=4096, help="images per epoch for LeNet [default: 4096]")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1, help="baseline DataLoader workers [default: 1, the reference's]")
    parser.add_argument("--archs", default="lenet,vgg11")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many epochs per side [default: 2]")
    args = parser.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    print(f"device {device}, batch size {args.batch_size}, CIFAR-shaped uint8 images, crop+flip+normalize, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeats}")
    print("both sides train the same model with the same flags; the ratio line is LeNet with default flags")
    print(f"{'model':8s} {'flags':16s} {'images':>7s} {'baseline img/s':>15s} {'ours img/s':>11s} {'ratio':>6s}")
    ratios = {}
    for arch in args.archs.split(","):
        n = args.images if arch == "lenet" or device.type == "cuda" else max(256, args.images // 16)
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.int64)
        split = cifar_split(images, labels)
        for flags, speed in (("(default)", SpeedOptions()), ("--channels-last", SpeedOptions(channels_last=True))):
            ours, base = (images_per_second(arch, lambda p=pipeline, s=split: batches(s, p, args.batch_size, args.workers,
                                                                              device), n, device, speed, args.repeats)
                          for pipeline in ("fast", "dataloader"))
            ratios[arch, flags] = ours / base
            print(f"{arch:8s} {flags:16s} {n:7d} {base:15.0f} {ours:11.0f} {ours / base:6.2f}", flush=True)
    default = {arch: ratio for (arch, flags), ratio in ratios.items() if flags == "(default)"}
    print(f"ratio: {default.get('lenet', min(default.values())):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
