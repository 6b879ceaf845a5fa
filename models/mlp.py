"""The reference's MLP: input -> 4096, three 4096 -> 1024 -> 4096 bottlenecks, head 4096 -> C.

Every hidden block ends with Dropout(0.2) -> [BatchNorm1d] -> ReLU. Module names
(``hidden<i>.fc``, ``hidden<i>.fc1/fc2``, ``classifier``) match the reference so its snapshots load.
"""
from __future__ import annotations

import torch
from torch import nn

from models.registry import ModelConfig, refuse_pretrained, register_model

WIDTH = 4096
BOTTLENECK = 1024


class _Activation(nn.Module):
    """Dropout -> optional BatchNorm -> ReLU, shared by both block kinds."""

    def __init__(self, features: int, batchnorm: bool) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.2)
        self.bn = nn.BatchNorm1d(features) if batchnorm else None
        self.relu = nn.ReLU(inplace=True)

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.relu(x)


class DenseBlock(_Activation):
    def __init__(self, in_features: int, out_features: int, batchnorm: bool) -> None:
        super().__init__(out_features, batchnorm)
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.fc(x))


class BottleneckBlock(_Activation):
    def __init__(self, features: int, bottleneck: int, batchnorm: bool) -> None:
        super().__init__(features, batchnorm)
        self.fc1 = nn.Linear(features, bottleneck)
        self.fc2 = nn.Linear(bottleneck, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.fc2(self.fc1(x)))


class MLP(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, *, batchnorm: bool = False) -> None:
        super().__init__()
        self.hidden1 = DenseBlock(input_dim, WIDTH, batchnorm)
        self.hidden2 = BottleneckBlock(WIDTH, BOTTLENECK, batchnorm)
        self.hidden3 = BottleneckBlock(WIDTH, BOTTLENECK, batchnorm)
        self.hidden4 = BottleneckBlock(WIDTH, BOTTLENECK, batchnorm)
        self.classifier = nn.Linear(WIDTH, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        for block in (self.hidden1, self.hidden2, self.hidden3, self.hidden4):
            x = block(x)
        return self.classifier(x)


def _mlp(config: ModelConfig, *, batchnorm: bool, name: str) -> nn.Module:
    refuse_pretrained(name, config)
    input_dim = config.in_channels * config.image_size * config.image_size
    return MLP(input_dim, config.num_classes, batchnorm=batchnorm)


@register_model("mlp")
def mlp(config: ModelConfig) -> nn.Module:
    return _mlp(config, batchnorm=False, name="mlp")


@register_model("mlp_bn")
def mlp_bn(config: ModelConfig) -> nn.Module:
    return _mlp(config, batchnorm=True, name="mlp_bn")
