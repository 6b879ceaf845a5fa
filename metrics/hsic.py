"""Hilbert-Schmidt Independence Criterion with Gaussian kernels (Gretton et al., 2005), for the HSIC
information plane of a network's layers (HSIC of each layer's output with the inputs and with the labels).

For ``m`` paired samples ``x_i`` (rows of ``X``) and ``y_i``, with Gram matrices
``K_ij = k(x_i, x_j)``, ``L_ij = l(y_i, y_j)`` and the centering matrix ``H = I - 11^T / m``, the
biased estimator (Gretton et al., 2005) is::

    HSIC(X, Y) = tr(K H L H) / (m - 1)^2

and the normalized one ``nHSIC(X, Y) = HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y))`` lies in [0, 1]
(it is 1 for ``Y = X``). Kernels are Gaussian, ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))``, with
the bandwidth ``sigma`` given or, by the median heuristic, the median of the nonzero pairwise
distances ``||a - b||`` (1 when every point coincides). HSIC is 0 when ``X`` and ``Y`` are
independent (in the limit) and when either kernel is constant (e.g. one class only).

Everything runs in float64 in torch, on the samples' device. The information plane of a layer
with output ``T`` is ``(HSIC(T, X), HSIC(T, Y))`` with ``X`` the inputs and ``Y`` one-hot labels.
Pure functions: tensors in, tensors or floats out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.errors import UserError


def flatten_samples(samples: torch.Tensor) -> torch.Tensor:
    """``(m, ...)`` -> ``(m, d)`` float64; at least 2 finite samples."""
    flat = samples.detach().reshape(samples.shape[0], -1).to(torch.float64)
    if flat.shape[0] < 2:
        raise UserError(f"HSIC needs at least 2 samples, got {flat.shape[0]}")
    if not bool(torch.isfinite(flat).all()):
        raise UserError("HSIC of samples with NaN or inf is undefined")
    return flat


def squared_distances(samples: torch.Tensor) -> torch.Tensor:
    """``(m, m)`` matrix of ``||x_i - x_j||^2`` for ``(m, ...)`` samples (0 on the diagonal)."""
    flat = flatten_samples(samples)
    norms = (flat * flat).sum(1)
    distances = (norms[:, None] + norms[None, :] - 2.0 * (flat @ flat.T)).clamp_min_(0.0)
    distances.fill_diagonal_(0.0)
    return distances


def median_bandwidth(distances: torch.Tensor) -> float:
    """Median of the nonzero pairwise distances ``||x_i - x_j||`` (``i < j``) from their squares; 1 if none."""
    rows, cols = torch.triu_indices(*distances.shape, offset=1, device=distances.device)
    pairs = distances[rows, cols]
    pairs = pairs[pairs > 0]
    if pairs.numel() == 0:
        return 1.0
    ordered = torch.sort(pairs).values.sqrt()
    half = ordered.numel() // 2
    return float(ordered[half] if ordered.numel() % 2 else (ordered[half - 1] + ordered[half]) / 2)


def gaussian_kernel(samples: torch.Tensor, sigma: float | None = None) -> tuple[torch.Tensor, float]:
    """``(K, sigma)``: the ``(m, m)`` Gaussian Gram matrix of ``samples`` and the bandwidth used."""
    distances = squared_distances(samples)
    if sigma is None:
        sigma = median_bandwidth(distances)
    elif not sigma > 0:
        raise UserError(f"the HSIC kernel bandwidth {sigma} must be positive")
    return torch.exp(distances / (-2.0 * sigma * sigma)), float(sigma)


def center(kernel: torch.Tensor) -> torch.Tensor:
    """``H K H``: subtract row and column means, add back the grand mean."""
    return kernel - kernel.mean(0, keepdim=True) - kernel.mean(1, keepdim=True) + kernel.mean()


def hsic_centered(centered_k: torch.Tensor, centered_l: torch.Tensor) -> float:
    """``tr(K H L H) / (m - 1)^2`` from ``H K H`` and ``H L H`` (``tr(HKH HLH) = sum(HKH * HLH)``, H idempotent)."""
    m = centered_k.shape[0]
    return float((centered_k * centered_l).sum()) / (m - 1) ** 2


def hsic(kernel_k: torch.Tensor, kernel_l: torch.Tensor) -> float:
    """The biased estimator ``tr(K H L H) / (m - 1)^2`` of two ``(m, m)`` Gram matrices."""
    if kernel_k.shape != kernel_l.shape or kernel_k.shape[0] != kernel_k.shape[1]:
        raise UserError(f"HSIC needs two square Gram matrices of one size, got {tuple(kernel_k.shape)} and "
                        f"{tuple(kernel_l.shape)}")
    return hsic_centered(center(kernel_k.to(torch.float64)), center(kernel_l.to(torch.float64)))


def one_hot(labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """``(m,)`` integer labels -> ``(m, C)`` float64 one-hot rows."""
    labels = torch.as_tensor(labels).long().reshape(-1)
    classes = num_classes if num_classes is not None else int(labels.max()) + 1
    return torch.nn.functional.one_hot(labels, classes).to(torch.float64)


@dataclass(frozen=True)
class CenteredKernel:
    """A centered Gram matrix ``H K H`` with its bandwidth and ``HSIC(Z, Z)``, reused against many layers."""

    centered: torch.Tensor
    sigma: float
    self_hsic: float

    @classmethod
    def of(cls, samples: torch.Tensor, sigma: float | None = None) -> CenteredKernel:
        kernel, used = gaussian_kernel(samples, sigma)
        centered = center(kernel)
        return cls(centered, used, hsic_centered(centered, centered))


def normalized(value: float, self_a: float, self_b: float) -> float | None:
    """``HSIC(A, B) / sqrt(HSIC(A, A) HSIC(B, B))``; ``None`` when either is 0 (a constant kernel)."""
    denominator = math.sqrt(self_a * self_b) if self_a > 0 and self_b > 0 else 0.0
    return min(1.0, max(0.0, value / denominator)) if denominator > 0 else None


def information_plane(hidden: torch.Tensor, inputs: CenteredKernel, labels: CenteredKernel, *,
                      sigma: float | None = None) -> dict:
    """``{sigma, hsic_x, hsic_y, nhsic_x, nhsic_y, hsic_self}`` of a layer's outputs ``(m, ...)`` against the
    inputs' and the labels' kernels (on the same ``m`` samples, same device)."""
    layer = CenteredKernel.of(hidden, sigma)
    hsic_x = hsic_centered(layer.centered, inputs.centered.to(layer.centered.device))
    hsic_y = hsic_centered(layer.centered, labels.centered.to(layer.centered.device))
    return {"sigma": layer.sigma, "hsic_x": hsic_x, "hsic_y": hsic_y,
            "nhsic_x": normalized(hsic_x, layer.self_hsic, inputs.self_hsic),
            "nhsic_y": normalized(hsic_y, layer.self_hsic, labels.self_hsic), "hsic_self": layer.self_hsic}
