"""A Marchenko-Pastur fit of one empirical spectral density, as WeightWatcher 0.7.7's ``mp_fit``.

Given the pooled eigenvalues of a layer (``M`` per ``N x M`` matrix, ``N >= M``, ``Q = N / M``):

1. rescale them to mean 1 (``lambda * count / sum(lambda)``), so that the fit is scale-free;
2. estimate the density once with a linear-kernel KDE (bandwidth 0.1) on 1000 points of
   ``[0, max + 0.5]`` and keep the points where it exceeds 0.01;
3. choose ``sigma`` minimizing the squared residual between the MP density (bulk
   ``[sigma^2 (1 -+ 1/sqrt(Q))^2]``) and the KDE on those points: a grid over
   ``[0.05, 2) * s0`` in steps of ``0.01 * s0`` (``s0``: the ``sigma`` that puts the bulk edge at the
   largest eigenvalue), polished by Nelder-Mead. A ``sigma`` whose bulk edge falls below the KDE's
   peak or beyond its support, or whose lower edge lies above the peak, costs 1000 per point.
   Square layers (``Q = 1``) fit the quarter-circle law to the singular values instead, as
   WeightWatcher does (its density there does not depend on ``sigma`` inside the square root);
4. ``bulk_max = (sigma (1 + 1/sqrt(Q)))^2``; a spike is an eigenvalue above the Tracy-Widom-tolerant
   edge ``bulk_max + sqrt(Q^-1/2 bulk_max^2/3 M^-2/3)``; ``mp_softrank = bulk_max / lambda_max``.

WeightWatcher rebuilds the KDE for every ``sigma`` it tries (most of its run time); the KDE does not
depend on ``sigma``, so it is built once here: same grid, same optimizer, same result
(tests/test_ww_diagnostics.py compares the two). ``bulk_min`` / ``bulk_max`` are returned in the
units of the eigenvalues given; ``sigma`` and the counts are scale-free.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

KDE_BANDWIDTH = 0.1
KDE_POINTS = 1000
KDE_THRESHOLD = 0.01  # points of lower estimated density are left out of the residual
OUT_OF_RANGE_RESIDUAL = 1000.0
_KDE_CHUNK = 4096  # eigenvalues per block of the (points x eigenvalues) kernel matrix


@dataclass(frozen=True)
class MarchenkoPasturFit:
    """The fitted bulk of one spectrum (see the module docstring)."""

    sigma: float  # fitted scale of the rescaled (mean-1) spectrum
    bulk_min: float  # lower MP edge, in the units of the eigenvalues given
    bulk_max: float  # upper MP edge, same units
    bulk_max_tw: float  # upper edge plus the Tracy-Widom tolerance, same units
    num_spikes: int  # eigenvalues above bulk_max_tw
    mp_softrank: float  # bulk_max / lambda_max


def linear_kde(samples: np.ndarray, points: np.ndarray, bandwidth: float = KDE_BANDWIDTH) -> np.ndarray:
    """Density at ``points`` of a linear (triangular) kernel estimate: ``mean_i max(0, 1 - |x - x_i| / h) / h``
    (scikit-learn's ``KernelDensity(kernel="linear")``)."""
    density = np.zeros(len(points))
    for start in range(0, len(samples), _KDE_CHUNK):
        block = samples[start:start + _KDE_CHUNK]
        density += np.clip(1.0 - np.abs(points[:, None] - block[None, :]) / bandwidth, 0.0, None).sum(axis=1)
    return density / (len(samples) * bandwidth)


def marchenko_pastur_density(x: np.ndarray, q: float, sigma: float) -> np.ndarray:
    """MP density of ``W^T W`` eigenvalues for aspect ratio ``q = N / M`` and entry scale ``sigma``;
    0 outside ``[sigma^2 (1 - q^-1/2)^2, sigma^2 (1 + q^-1/2)^2]``."""
    low, high = _edges(q, sigma)
    inside = (x > low) & (x < high)
    density = np.zeros_like(x)
    xi = x[inside]
    density[inside] = q / (2 * math.pi * sigma * sigma * xi) * np.sqrt((high - xi) * (xi - low))
    return density


def quarter_circle_density(x: np.ndarray, sigma: float) -> np.ndarray:
    """WeightWatcher's quarter-circle law of singular values, ``sqrt(4 - x^2) / (pi sigma^2)`` on ``[0, 2]``."""
    return np.sqrt(np.clip(4.0 - x * x, 0.0, None)) / (math.pi * sigma * sigma)


def _edges(q: float, sigma: float) -> tuple[float, float]:
    root = 1.0 / math.sqrt(q)
    return (sigma * (1 - root)) ** 2, (sigma * (1 + root)) ** 2


class _Residual:
    """Squared residual between the law for one ``sigma`` and the (fixed) KDE of the spectrum."""

    def __init__(self, values: np.ndarray, q: float):
        self.q = q
        points = np.linspace(0.0, float(np.max(values)) + 0.5, KDE_POINTS)
        density = linear_kde(values, points)
        keep = density > KDE_THRESHOLD
        self.points, self.density = points[keep], density[keep]
        self.peak = float(self.points[np.argmax(self.density)]) if keep.any() else 0.0

    def __call__(self, p) -> float:
        sigma = float(np.asarray(p).reshape(-1)[0])
        if self.q == 1:
            law = quarter_circle_density(self.points, sigma)
        else:
            low, high = _edges(self.q, sigma)
            if high < self.peak or high > self.points[-1] or low > self.peak:
                return OUT_OF_RANGE_RESIDUAL ** 2 * len(self.points)
            law = marchenko_pastur_density(self.points, self.q, sigma)
        return float(np.sum((law - self.density) ** 2))


def fit_marchenko_pastur(eigenvalues, n: int, m: int) -> MarchenkoPasturFit | None:
    """Fit the MP bulk to ``eigenvalues`` (any order, zeros included) of ``n x m`` matrices (``n >= m``).

    ``None`` when the spectrum is empty, not finite or all zero (WeightWatcher writes -1 there).
    """
    values = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    total = float(values.sum()) if values.size else 0.0
    if values.size == 0 or m < 1 or not math.isfinite(total) or total <= 0:
        return None
    scale = values.size / total  # to mean 1
    rescaled = values * scale
    q = n / m
    lambda_max = float(rescaled.max())
    start = math.sqrt(lambda_max / (1 + 1 / math.sqrt(q)) ** 2)  # the sigma whose bulk edge is lambda_max
    residual = _Residual(np.sqrt(rescaled) if q == 1 else rescaled, q)
    if residual.points.size == 0:
        return None
    from scipy import optimize  # here: the CLIs' --help imports this module through the registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best = optimize.brute(residual, (slice(0.05 * start, 2.0 * start, 0.01 * start),), full_output=True,
                              finish=optimize.fmin)
    sigma = float(np.asarray(best[0]).reshape(-1)[0])
    bulk_min, bulk_max = _edges(q, sigma)
    bulk_max_tw = bulk_max + math.sqrt(bulk_max ** (2 / 3) / math.sqrt(q) * m ** (-2 / 3))
    return MarchenkoPasturFit(
        sigma=sigma, bulk_min=bulk_min / scale, bulk_max=bulk_max / scale, bulk_max_tw=bulk_max_tw / scale,
        num_spikes=int(np.sum(rescaled > bulk_max_tw)), mp_softrank=bulk_max / lambda_max)
