"""Norm-based measures of a network's weights (Jiang et al. 2020, "Fantastic Generalization Measures
and Where to Find Them", ICLR 2020, appendix C; definitions as in the PyTorch reimplementations
nitarshan/robust-generalization-measures ``data/generation/measures.py`` and bneyshabur/
generalization-bounds ``measures.py``, written anew here).

The "layers" are the conv and linear modules, in module order, each weight reshaped to a matrix
``(out, in * kh * kw)``; a batch normalization that follows a layer is folded into it first
(:func:`fold_batchnorm`), as both references do, so that the norms do not depend on how a layer's
scale is split between the two. Pure functions: tensors and modules in, plain numbers out.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in which every batch normalization (eval mode: running statistics) is
    folded into the conv or linear layer before it in module order and replaced by ``nn.Identity``;
    the copy computes the same function in eval mode. A normalization with no layer before it stays."""
    folded = copy.deepcopy(model).eval()
    previous: nn.Module | None = None
    replaced: list[str] = []
    for name, module in folded.named_modules():
        if isinstance(module, LAYER_TYPES):
            previous = module
        elif isinstance(module, BATCHNORM_TYPES) and previous is not None and module.track_running_stats:
            _fold_into(previous, module)
            replaced.append(name)
            previous = None
    for name in replaced:
        parent, _, child = name.rpartition(".")
        setattr(folded.get_submodule(parent) if parent else folded, child, nn.Identity())
    return folded


def _fold_into(layer: nn.Module, norm: nn.Module) -> None:
    """``norm(layer(x)) == layer'(x)``: scale each output unit's weight and shift its bias."""
    scale = norm.running_var.add(norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale + (norm.bias if norm.bias is not None else 0.0)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
    layer.weight.mul_(scale.reshape(-1, *[1] * (layer.weight.dim() - 1)))
    new_bias = bias * scale + shift
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias)
    else:
        layer.bias.copy_(new_bias)


def layer_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``(module name, weight (out, in * kh * kw))`` of every conv and linear layer, in module order."""
    return [(name, module.weight.detach().reshape(module.weight.shape[0], -1))
            for name, module in model.named_modules() if isinstance(module, LAYER_TYPES)]


def count_parameters(model: nn.Module) -> int:
    """Every parameter of ``model`` (weights, biases, normalization scales)."""
    return sum(parameter.numel() for parameter in model.parameters())


def frobenius_norms(weights: list[torch.Tensor]) -> list[float]:
    """``||W_i||_F`` of each matrix."""
    return [float(torch.linalg.matrix_norm(w.double(), ord="fro")) for w in weights]


def spectral_norms(weights: list[torch.Tensor]) -> list[float]:
    """``||W_i||_2`` (largest singular value) of each matrix: of the reshaped conv kernel, Jiang's
    approximation of the convolution's operator norm. Computed as the square root of the largest
    eigenvalue of the smaller Gram matrix (float64), which is much faster than an SVD."""
    found = []
    for weight in weights:
        w = weight.double()
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        found.append(math.sqrt(max(float(torch.linalg.eigvalsh(gram)[-1]), 0.0)))
    return found


def log_product(norms: list[float]) -> float:
    """``sum_i log ||W_i||^2``: the log of the product of the squared norms (Jiang's "log prod")."""
    return sum(2.0 * math.log(norm) for norm in norms)


def log_sum(norms: list[float]) -> float:
    """``log(d) + (1/d) sum_i log ||W_i||^2``: the log of ``d * (prod ||W_i||^2)^(1/d)``, which Jiang use
    for "sum of norms" (a network can be rescaled layer by layer until the sum equals it)."""
    return math.log(len(norms)) + log_product(norms) / len(norms)


def distance_from_init(weights: list[torch.Tensor], init_weights: list[torch.Tensor]) -> float:
    """``sum_i ||W_i - W0_i||_F^2``: Jiang's Frobenius distance from initialization."""
    if len(weights) != len(init_weights):
        raise ValueError(f"{len(weights)} layers but {len(init_weights)} in the initialization")
    return sum(float(torch.sum((w.double() - w0.double()) ** 2)) for w, w0 in zip(weights, init_weights))


@torch.no_grad()
def path_norm(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """The l2 path-norm: every parameter squared, an input of all ones forwarded, the outputs summed
    (Neyshabur et al. 2015; Jiang's eq. 44): the sum over input-output paths of the product of the
    squared weights along the path (biases as paths from a constant unit). ``model``: batch norms
    folded (:func:`fold_batchnorm`); ``input_shape``: ``(C, H, W)``."""
    squared = copy.deepcopy(model).double().eval()
    for parameter in squared.parameters():
        parameter.pow_(2)
    device = next(squared.parameters()).device
    return float(squared(torch.ones((1, *input_shape), dtype=torch.float64, device=device)).sum())
