"""The reference's 9-layer LeNet: six 3x3 convs in three stages, then a 576-120-84-C classifier.

Module names (``features.<i>``, ``classifier.<i>``) match the reference so its snapshots load.
"""
from __future__ import annotations

import torch
from torch import nn

from models.registry import ModelConfig, refuse_pretrained, register_model

LENET_CHANNELS = [6, 6, "M", 16, 16, "M", 64, 64, "M"]


def conv_stack(channels: list, in_channels: int) -> nn.Sequential:
    """3x3 convs (padding 1) each followed by ReLU; ``"M"`` is a 2x2 max-pool."""
    layers: list[nn.Module] = []
    for value in channels:
        if value == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, value, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = value
    return nn.Sequential(*layers)


class LeNet(nn.Module):
    """Conv features, adaptive average pool to 3x3, and a three-layer classifier with dropout."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.features = conv_stack(LENET_CHANNELS, in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.classifier = nn.Sequential(
            nn.Linear(3 * 3 * 64, 120),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(84, num_classes),
        )
        self._initialize()

    def _initialize(self) -> None:
        gain = nn.init.calculate_gain("relu")
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight, gain=gain)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model("lenet")
def lenet(config: ModelConfig) -> nn.Module:
    refuse_pretrained("lenet", config)
    return LeNet(config.num_classes, config.in_channels)
