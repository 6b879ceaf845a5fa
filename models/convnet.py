"""A parametric plain ConvNet for grids that vary capacity (``--arch convnet --depth D --width W --dropout P``).

The network is ``depth`` 3x3 convolutions (padding 1, no bias), each followed by BatchNorm and
ReLU, split into at most three stages of near-equal size (earlier stages take the extra layers).
A 2x2 max-pool halves the resolution between stages, and the channels double at each stage:
``width``, ``2 * width``, ``4 * width``. Every stage ends with a dropout of probability ``dropout``
(always present, identity at 0, so that module names do not depend on it). A global average pool
and one linear layer give the logits.

Examples: depth 4, width 16 is ``[16, 16] pool [32] pool [64]``; depth 2 is ``[16] pool [32]``.
Two poolings at most: inputs of 4x4 pixels and more fit (digits and CIFAR at 32x32, MNIST at 28x28,
upscaled images at 224x224).
Module names: ``features.<i>`` (convs, BatchNorms, ReLUs, pools, dropouts in forward order),
``pool`` and ``classifier``.
"""
from __future__ import annotations

import torch
from torch import nn

from models.registry import ModelConfig, refuse_pretrained, register_model

DEFAULT_DEPTH = 4
DEFAULT_WIDTH = 16
DEFAULT_DROPOUT = 0.0
MAX_STAGES = 3


def stage_sizes(depth: int) -> list[int]:
    """Convolutions per stage: ``depth`` split into ``min(depth, 3)`` near-equal parts, largest first."""
    stages = min(depth, MAX_STAGES)
    return [depth // stages + (i < depth % stages) for i in range(stages)]


def stage_channels(width: int, stages: int) -> list[int]:
    """Output channels of each stage: ``width`` doubled at every downsampling."""
    return [width * 2**stage for stage in range(stages)]


def conv_features(in_channels: int, *, depth: int, width: int, dropout: float) -> tuple[nn.Sequential, int]:
    """The conv stack (see the module docstring) and its number of output channels."""
    layers: list[nn.Module] = []
    sizes = stage_sizes(depth)
    for stage, (count, channels) in enumerate(zip(sizes, stage_channels(width, len(sizes)))):
        if stage:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        for _ in range(count):
            layers += [nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=False),
                       nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
            in_channels = channels
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers), in_channels


class ConvNet(nn.Module):
    """``depth`` conv-BN-ReLU layers in up to three stages, global average pool, linear head."""

    def __init__(self, num_classes: int, in_channels: int, *, depth: int = DEFAULT_DEPTH,
                 width: int = DEFAULT_WIDTH, dropout: float = DEFAULT_DROPOUT) -> None:
        super().__init__()
        self.features, channels = conv_features(in_channels, depth=depth, width=width, dropout=dropout)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images (H, W >= 4) -> ``(B, num_classes)`` logits."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("convnet", options={"depth": DEFAULT_DEPTH, "width": DEFAULT_WIDTH, "dropout": DEFAULT_DROPOUT})
def convnet(config: ModelConfig) -> nn.Module:
    refuse_pretrained("convnet", config)
    return ConvNet(config.num_classes, config.in_channels, depth=config.depth, width=config.width,
                   dropout=config.dropout)
