"""Every weight matrix of a model, for the weight-only analyses (spectra): what is analysed, and what is not.

:func:`metrics.layers.enumerate_layers` finds conv and linear layers by the forward calls of their modules.
Two kinds of matrices escape that walk in a transformer, and are added here:

- ``nn.MultiheadAttention``: its packed in-projection ``in_proj_weight`` ``(3E, E)`` is one parameter, not a
  module. It is analysed as three ``E x E`` matrices, the query, key and value projections
  (``<attention>.in_proj_q``, ``_k``, ``_v``; kind ``attention``), because the three play different roles and
  have their own spectra; with separate ``q_proj_weight`` etc. each is taken as it is. Its ``out_proj`` is a
  ``Linear`` that the attention's forward never calls as a module, so no hook sees it; it is analysed as a
  linear layer (``<attention>.out_proj``). The attention's matrices take its place in forward order: q, k,
  v, then out_proj.
- a conv or linear module that the forward pass does not call (an unused head) is analysed from its
  weights, after the others.

Any other parameter with two or more dimensions (ViT's ``class_token`` and ``pos_embedding``, an
``nn.Embedding`` table) is no linear map of a layer's input: it is skipped, and :func:`weight_matrices`
returns it with the reason, for one notice.
"""
from __future__ import annotations

import torch
from torch import nn

from metrics.layers import LayerInfo, StagedModule, module_order, select_layers, traced_stages

ATTENTION_BLOCKS = ("q", "k", "v")


def weight_matrices(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[LayerInfo], list[tuple[str, str]]]:
    """``(layers, skipped)``: every conv (1x1 included), linear and attention matrix of ``model`` in forward
    order, and ``(parameter name, why)`` for each other parameter with two or more dimensions."""
    try:
        staged = traced_stages(model, input_shape, types=(nn.Conv2d, nn.Linear, nn.MultiheadAttention))
    except RuntimeError:  # enumerate_layers says why, once; here the module order serves as well
        staged = module_order(model)
        last = max((entry.stage for entry in staged), default=0)
        staged += [StagedModule(name, module, (module.embed_dim,), last)
                   for name, module in model.named_modules() if isinstance(module, nn.MultiheadAttention)]
    attention = {id(entry.module) for entry in staged if isinstance(entry.module, nn.MultiheadAttention)}
    inner = {id(entry.module.out_proj) for entry in staged if id(entry.module) in attention}
    staged = [entry for entry in staged if id(entry.module) not in inner]
    seen = {id(entry.module) for entry in staged}
    last_stage = max((entry.stage for entry in staged), default=0)
    staged += [StagedModule(name, module, (), last_stage) for name, module in model.named_modules()
               if isinstance(module, (nn.Conv2d, nn.Linear)) and id(module) not in seen | inner]
    layers: list[LayerInfo] = []
    for entry in staged:
        layers += _attention_matrices(entry) if id(entry.module) in attention else \
            select_layers([entry], include_1x1=True, with_linear=True)
    layers = _renumbered(layers)
    covered = {id(layer.weight) for layer in layers if layer.matrix is None}
    covered |= {id(module.in_proj_weight) for name, module in model.named_modules()
                if id(module) in attention and module.in_proj_weight is not None}
    covered |= {id(getattr(module, f"{block}_proj_weight")) for name, module in model.named_modules()
                if id(module) in attention for block in ATTENTION_BLOCKS
                if getattr(module, f"{block}_proj_weight", None) is not None}
    skipped = [(name, _why(name, parameter)) for name, parameter in model.named_parameters()
               if parameter.ndim >= 2 and id(parameter) not in covered]
    return layers, skipped


def _attention_matrices(entry: StagedModule) -> list[LayerInfo]:
    name, module, shape, stage = entry
    if module.in_proj_weight is not None:
        blocks = module.in_proj_weight.chunk(3, dim=0)
    else:
        blocks = [getattr(module, f"{block}_proj_weight") for block in ATTENTION_BLOCKS]
    found = [LayerInfo(f"{name}.in_proj_{block}", "attention", module, stage, 0, 0, tuple(shape),
                       weight.shape[1], weight.shape[0], False, matrix=weight)
             for block, weight in zip(ATTENTION_BLOCKS, blocks)]
    out = module.out_proj
    found.append(LayerInfo(f"{name}.out_proj", "linear", out, stage, 0, 0, (out.in_features,), out.in_features,
                           out.out_features, False))
    return found


def _renumbered(layers: list[LayerInfo]) -> list[LayerInfo]:
    """``index``: the position among every matrix; ``block``: the position within its stage (attention
    blocks included)."""
    counts: dict[int, int] = {}
    renumbered = []
    for index, layer in enumerate(layers):
        block = counts.get(layer.stage, 0)
        counts[layer.stage] = block + 1
        renumbered.append(LayerInfo(**{**layer.__dict__, "index": index, "block": block}))
    return renumbered


def _why(name: str, parameter: torch.Tensor) -> str:
    leaf = name.rsplit(".", 1)[-1]
    if "embed" in leaf or "token" in leaf:
        return "an embedding or token, not a linear map of a layer's input"
    return "not the weight of a conv, linear or attention layer"
