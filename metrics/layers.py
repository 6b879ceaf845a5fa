"""Generic layer enumeration: conv and linear layers in forward order, with stage and block.

Layers are found by running one dummy forward with hooks (not by module order). A stage ends
where the spatial resolution drops: a conv's stage is the index of its *input* resolution among
the resolutions seen so far. On VGG, AlexNet and LeNet this equals the reference's MaxPool-based
numbering; ResNets get one stage per resolution, MLPs one stage. Linear layers form one final
stage after the convolutional ones. ``block`` numbers the selected layers within their stage.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.forward import hooked_forward


@dataclass(frozen=True)
class LayerInfo:
    name: str  # module name, e.g. "features.0"
    kind: str  # "conv" or "linear"
    module: nn.Module
    stage: int
    block: int
    index: int  # position among the selected layers, in forward order
    input_shape: tuple[int, ...]  # per sample, e.g. (C, H, W)
    fan_in: int  # size of one filter: C/groups * kh * kw, or in_features
    out_units: int  # filters or output features
    is_1x1: bool

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight

    def filters(self) -> torch.Tensor:
        """Weights as ``(out_units, fan_in)``: one row per hyperplane normal."""
        return self.module.weight.detach().reshape(self.out_units, -1)


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """``(name, module, per-sample input shape)`` of each conv/linear module, in the order of its first call."""
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    seen: set[int] = set()

    def record(name):
        def hook(mod, inputs, output):
            if id(mod) not in seen:
                seen.add(id(mod))
                calls.append((name, mod, tuple(inputs[0].shape[1:])))
        return hook

    hooks = [(module, record(name)) for name, module in model.named_modules()
             if isinstance(module, (nn.Conv2d, nn.Linear))]
    hooked_forward(model, input_shape, forward_hooks=hooks)
    return calls


def enumerate_layers(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    include_1x1: bool = False,
    with_linear: bool = False,
) -> list[LayerInfo]:
    """Conv layers (and, with ``with_linear``, linear layers) of ``model`` in forward order.

    ``input_shape`` is one sample's shape, e.g. ``(3, 32, 32)``. 1x1 convolutions are skipped
    unless ``include_1x1`` (as in the reference); skipped layers take no block number.
    """
    layers: list[LayerInfo] = []
    resolutions: list[int] = []
    conv_stages = 0
    block_in_stage: dict[int, int] = {}
    for name, module, shape in _trace(model, input_shape):
        is_conv = isinstance(module, nn.Conv2d)
        if is_conv:
            pixels = shape[-1] * shape[-2] if len(shape) >= 2 else 1
            if not resolutions or pixels < resolutions[-1]:
                resolutions.append(pixels)
            stage = len(resolutions) - 1
            conv_stages = stage + 1
            is_1x1 = tuple(module.kernel_size) == (1, 1)
            if is_1x1 and not include_1x1:
                continue
            fan_in = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            out_units = module.out_channels
        else:
            if not with_linear:
                continue
            stage, is_1x1 = conv_stages, False
            fan_in, out_units = module.in_features, module.out_features
        block = block_in_stage.get(stage, 0)
        block_in_stage[stage] = block + 1
        layers.append(
            LayerInfo(name, "conv" if is_conv else "linear", module, stage, block, len(layers), shape, fan_in,
                      out_units, is_1x1)
        )
    return layers
