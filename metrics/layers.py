"""Generic layer enumeration: conv and linear layers in forward order, with stage and block.

Layers are found by running one dummy forward with hooks (not by module order). A stage ends
where the spatial resolution drops: a conv's stage is the index of its *input* resolution among
the resolutions seen so far. On VGG, AlexNet and LeNet this equals the reference's MaxPool-based
numbering; ResNets get one stage per resolution, MLPs one stage. Linear layers form one final
stage after the convolutional ones. ``block`` numbers the selected layers within their stage.
With ``with_attention``, each ``nn.MultiheadAttention`` is one layer too (kind ``attention``, in that
final stage): its in-projection and its out_proj, which its forward uses without calling as a module,
are one unit for a reset (metrics/reinit.py); the spectra take its matrices apart (metrics/matrices.py).
The reference's own rule (module order, a new stage at each MaxPool) is ``rule="maxpool"``.

The steps are public for modules that enumerate more than layers (``metrics/matrices.py``):
:func:`traced_stages` or :func:`module_order` give :class:`StagedModule` entries, and
:func:`select_layers` turns them into :class:`LayerInfo`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from models.forward import hooked_forward


@dataclass(frozen=True)
class LayerInfo:
    name: str  # module name, e.g. "features.0"
    kind: str  # "conv", "linear" or "attention"
    module: nn.Module
    stage: int
    block: int
    index: int  # position among the selected layers, in forward order
    input_shape: tuple[int, ...]  # per sample, e.g. (C, H, W)
    fan_in: int  # size of one filter: C/groups * kh * kw, or in_features
    out_units: int  # filters or output features
    is_1x1: bool
    matrix: torch.Tensor | None = None  # a weight that is not ``module.weight`` (an attention block's q, k or v)

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight if self.matrix is None else self.matrix

    def filters(self) -> torch.Tensor:
        """Weights as ``(out_units, fan_in)``: one row per hyperplane normal."""
        return self.module.weight.detach().reshape(self.out_units, -1)


class StagedModule(NamedTuple):
    """A conv, linear (or attention) module found in a model, with the stage it belongs to."""

    name: str  # module name, e.g. "features.0"
    module: nn.Module
    input_shape: tuple[int, ...]  # per sample as traced, e.g. (C, H, W); (channels,) in module order
    stage: int


def traced_stages(model: nn.Module, input_shape: tuple[int, ...],
                  types: tuple[type, ...] = (nn.Conv2d, nn.Linear)) -> list[StagedModule]:
    """The modules of ``types`` in forward order (one dummy forward with hooks on ``input_shape``), staged
    by resolution; raises ``RuntimeError`` when the model cannot run on that shape."""
    return _by_resolution(_trace(model, input_shape, types))


def _trace(model: nn.Module, input_shape: tuple[int, ...], types: tuple[type, ...] = (nn.Conv2d, nn.Linear)
           ) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """``(name, module, per-sample input shape)`` of each module of ``types`` (conv and linear), in the order of
    its first call."""
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    seen: set[int] = set()

    def record(name):
        def hook(mod, inputs, output):
            if id(mod) not in seen:
                seen.add(id(mod))
                calls.append((name, mod, tuple(inputs[0].shape[1:])))
        return hook

    hooks = [(module, record(name)) for name, module in model.named_modules()
             if isinstance(module, types)]
    hooked_forward(model, input_shape, forward_hooks=hooks)
    return calls


def module_order(model: nn.Module, attention: bool = False) -> list[StagedModule]:
    """``(name, module, input shape (channels only), stage)`` of each conv/linear module (and, with
    ``attention``, each attention) in module order, the stage advancing at each MaxPool (the reference's
    rule; it needs no forward pass)."""
    found, pools = [], 0
    for name, module in model.named_modules():
        if isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
            pools += 1
        elif isinstance(module, nn.Conv2d):
            found.append((name, module, (module.in_channels,), pools))
        elif isinstance(module, nn.Linear) and not (attention and _inside_attention(model, name)):
            found.append((name, module, (module.in_features,), None))
        elif attention and isinstance(module, nn.MultiheadAttention):
            found.append((name, module, (module.embed_dim,), None))
    return [StagedModule(name, module, shape, pools if stage is None else stage) for name, module, shape, stage in found]


def enumerate_layers(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    include_1x1: bool = False,
    with_linear: bool = False,
    with_attention: bool = False,
    rule: str = "resolution",
) -> list[LayerInfo]:
    """Conv layers (and, with ``with_linear``, linear layers) of ``model`` in forward order.

    ``input_shape`` is one sample's shape, e.g. ``(3, 32, 32)``. 1x1 convolutions are skipped
    unless ``include_1x1`` (as in the reference); skipped layers take no block number. ``rule``
    ``maxpool`` numbers stages as the reference does, in module order without a forward pass (linear
    layers in the stage after the last pool); it is also the fallback when the model cannot run on
    ``input_shape`` (AlexNet on 32x32 images), with a notice. ``with_attention`` adds each
    ``nn.MultiheadAttention`` as one layer (module docstring).
    """
    if rule == "maxpool":
        return select_layers(module_order(model, with_attention), include_1x1=include_1x1, with_linear=with_linear)
    types = (nn.Conv2d, nn.Linear, nn.MultiheadAttention) if with_attention else (nn.Conv2d, nn.Linear)
    try:
        staged = traced_stages(model, input_shape, types)
    except RuntimeError as err:
        from utils.notices import notice

        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        notice(f"no-forward:{type(model).__name__}:{input_shape}", "%s cannot run on %s inputs (%s): layers are "
               "taken in module order, stages advancing at each MaxPool (the reference's rule)",
               type(model).__name__, "x".join(map(str, input_shape)), first)
        staged = module_order(model, with_attention)
    return select_layers(staged, include_1x1=include_1x1, with_linear=with_linear)


def _inside_attention(model: nn.Module, name: str) -> bool:
    """``name`` is a submodule of an ``nn.MultiheadAttention`` (its out_proj)."""
    parent = name.rpartition(".")[0]
    return bool(parent) and isinstance(model.get_submodule(parent), nn.MultiheadAttention)


def _by_resolution(traced) -> list[StagedModule]:
    """Stages of traced layers: a conv's stage is the index of its input resolution among those seen."""
    staged, resolutions, conv_stages = [], [], 0
    for name, module, shape in traced:
        if isinstance(module, nn.Conv2d):
            pixels = shape[-1] * shape[-2] if len(shape) >= 2 else 1
            if not resolutions or pixels < resolutions[-1]:
                resolutions.append(pixels)
            conv_stages = len(resolutions)
            staged.append(StagedModule(name, module, shape, conv_stages - 1))
        else:
            staged.append(StagedModule(name, module, shape, conv_stages))
    return staged


def select_layers(staged: list[StagedModule], *, include_1x1: bool, with_linear: bool) -> list[LayerInfo]:
    """The :class:`LayerInfo` of the ``staged`` modules kept (1x1 convolutions with ``include_1x1``,
    linear layers with ``with_linear``; attention always), numbered in order (``index``) and within
    their stage (``block``)."""
    layers: list[LayerInfo] = []
    block_in_stage: dict[int, int] = {}
    for name, module, shape, stage in staged:
        is_conv = isinstance(module, nn.Conv2d)
        if isinstance(module, nn.MultiheadAttention):
            is_1x1, fan_in, out_units = False, module.embed_dim, module.embed_dim
        elif is_conv:
            is_1x1 = tuple(module.kernel_size) == (1, 1)
            if is_1x1 and not include_1x1:
                continue
            fan_in = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            out_units = module.out_channels
        else:
            if not with_linear:
                continue
            is_1x1, fan_in, out_units = False, module.in_features, module.out_features
        block = block_in_stage.get(stage, 0)
        block_in_stage[stage] = block + 1
        layers.append(
            LayerInfo(name, _kind(module), module, stage, block, len(layers), shape, fan_in, out_units, is_1x1)
        )
    return layers


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    return "conv" if isinstance(module, nn.Conv2d) else "linear"
