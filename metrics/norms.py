"""Norm-based measures of a network's weights (Jiang et al. 2020, "Fantastic Generalization Measures
and Where to Find Them", ICLR 2020, appendix C; definitions as in the PyTorch reimplementations
nitarshan/robust-generalization-measures ``data/generation/measures.py`` and bneyshabur/
generalization-bounds ``measures.py``, written anew here).

The "layers" are the conv and linear modules, in module order, each weight reshaped to a matrix
``(out, in * kh * kw)``; a batch normalization that follows a layer is folded into it first
(:func:`metrics.folding.fold_batchnorm`), as both references do, so that the norms do not depend on
how a layer's scale is split between the two. Pure functions: tensors and modules in, plain numbers
out. The exact operator norm of a convolution (Sedghi et al. 2019) is in ``metrics/conv_norms.py``.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from metrics.folding import LAYER_TYPES


def layer_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``(module name, weight (out, in * kh * kw))`` of every conv and linear layer, in module order."""
    return [(name, module.weight.detach().reshape(module.weight.shape[0], -1))
            for name, module in model.named_modules() if isinstance(module, LAYER_TYPES)]


def count_weights(model: nn.Module) -> int:
    """The weights of ``model``'s conv and linear layers (no biases, no normalization parameters): what
    the reference counts for Jiang's ``num_params`` (eq. 20)."""
    return sum(module.weight.numel() for module in model.modules() if isinstance(module, LAYER_TYPES))


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


def squared_sum(norms: list[float]) -> float:
    """``sum_i ||W_i||^2``: Jiang's ``param_norm`` of the Frobenius norms (eq. 42), ``dist_spec_init`` of
    the spectral norms of ``W_i - W0_i`` (eq. 41)."""
    return sum(norm**2 for norm in norms)


def ratio_sum(numerators: list[float], denominators: list[float]) -> float:
    """``sum_i a_i^2 / b_i^2``: ``fro_over_spec`` (eq. 33) with the Frobenius over the spectral norms, and
    the distance term of ``spec_init`` (eq. 29) with the distances' Frobenius norms."""
    return sum(a**2 / b**2 for a, b in zip(numerators, denominators))


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
    folded (:func:`metrics.folding.fold_batchnorm`); ``input_shape``: ``(C, H, W)``."""
    squared = copy.deepcopy(model).double().eval()
    for parameter in squared.parameters():
        parameter.pow_(2)
    device = next(squared.parameters()).device
    return float(squared(torch.ones((1, *input_shape), dtype=torch.float64, device=device)).sum())
