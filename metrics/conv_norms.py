"""The exact spectral norm of a convolution as a linear operator (Sedghi, Gupta, Long, "The Singular
Values of Convolutional Layers", ICLR 2019), beside the reshaped-kernel approximation of
``metrics/norms.py``.

A stride-1 2-D convolution with circular padding over ``h x w`` inputs is block-diagonalized by the 2-D
Fourier transform: its singular values are those of the ``h * w`` matrices ``K(f) = sum_{p,q}
kernel[:, :, p, q] exp(-2 pi i (f1 p / h + f2 q / w))`` (``out x in`` each, one per frequency), so its
operator norm is the largest singular value over the frequencies. nitarshan/robust-generalization-
measures computes it with numpy's ``fft2`` over the network's input size for every layer; here each
layer gets its own input size (traced), a kernel larger than the input wraps around (circular), a
grouped convolution is block-diagonal (the largest over its groups), and a dilated kernel is spread
out first. For a strided convolution this is the norm of its stride-1 version, an upper bound (the
strided operator is a subsampling of it); for zero padding, the circular operator's norm, as the
paper and the reference compute it. Pure functions.
"""
from __future__ import annotations

import math

import torch
from torch import nn

# Frequencies per batch of singular-value computations: bounds the memory of one batch
FREQUENCY_CHUNK = 1024
# The most work (:func:`work`, summed over a model's convolutions) done for the exact norms: a LeNet or the
# parametric ConvNet at 32x32 is about 1e7 (a fraction of a second), a ResNet-18 at 32x32 6e8 (tens of
# seconds on 2 cores), a zoo model at 224x224 far more (the batched singular values are slow on a CPU).
WORK_LIMIT = 1e8


def circular_kernel(weight: torch.Tensor, size: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """The kernel ``(out, in, kh, kw)`` laid on an ``h x w`` torus (dilated taps spread out, taps beyond
    the grid wrapped around and summed): ``(out, in, h, w)``."""
    out, inp, kh, kw = weight.shape
    h, w = size
    grid = weight.new_zeros((out, inp, h, w))
    for p in range(kh):
        for q in range(kw):
            grid[:, :, (p * dilation[0]) % h, (q * dilation[1]) % w] += weight[:, :, p, q]
    return grid


def conv_operator_norm(weight: torch.Tensor, size: tuple[int, int], *, groups: int = 1,
                       dilation: tuple[int, int] = (1, 1)) -> float:
    """The largest singular value of the stride-1 circular convolution with ``weight`` ``(out, in /
    groups, kh, kw)`` over ``size = (h, w)`` inputs (see the module docstring)."""
    grid = circular_kernel(weight.detach().double(), size, dilation)
    transform = torch.fft.rfft2(grid, dim=(-2, -1))  # (out, in_g, h, w // 2 + 1): the others are conjugates
    out = transform.shape[0]
    per_group = out // groups
    matrices = transform.reshape(groups, per_group, transform.shape[1], -1).permute(3, 0, 1, 2)
    matrices = matrices.reshape(-1, per_group, transform.shape[1])  # (frequencies * groups, out_g, in_g)
    largest = 0.0
    for start in range(0, matrices.shape[0], FREQUENCY_CHUNK):
        chunk = matrices[start:start + FREQUENCY_CHUNK]
        largest = max(largest, float(torch.linalg.matrix_norm(chunk, ord=2).max()))
    return largest


def operator_norm(module: nn.Module, input_shape: tuple[int, ...]) -> float | None:
    """The exact spectral norm of a 2-D convolution on its per-sample ``input_shape`` ``(C, H, W)``; None
    for the other kinds (a linear layer's is its matrix's, ``metrics.norms.spectral_norms``)."""
    if isinstance(module, nn.Conv2d):
        return conv_operator_norm(module.weight, tuple(input_shape[-2:]), groups=module.groups,
                                  dilation=tuple(module.dilation))
    return None


def work(module: nn.Module, input_shape: tuple[int, ...]) -> float:
    """A size of the computation :func:`operator_norm` does (frequencies x a singular-value problem)."""
    if not isinstance(module, nn.Conv2d):
        return 0.0
    out, inp = module.weight.shape[:2]
    frequencies = math.prod(input_shape[-2:]) / 2 * module.groups
    per_group = out // module.groups
    return frequencies * per_group * inp * min(per_group, inp)
