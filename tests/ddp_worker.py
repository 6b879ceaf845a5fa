"""Entry point for the torchrun test: train.py with a small model that has no dropout or BatchNorm.

Dropout masks and per-rank BatchNorm statistics legitimately differ between one process and
several, so the equivalence test uses a model whose result depends only on the data and weights.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch import nn

import train
from models import register_model
from utils.cli import run_main


@register_model("tiny_cnn")
def tiny_cnn(config):
    return nn.Sequential(
        nn.Conv2d(config.in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(64, config.num_classes),
    )


if __name__ == "__main__":
    sys.exit(run_main(train.main, sys.argv[1:]))
