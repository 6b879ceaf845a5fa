"""Weight-spectrum metrics of one layer, after WeightWatcher (the `weightwatcher` package; Martin and
Mahoney, "Predicting trends in the quality of state-of-the-art neural networks without access to
training or testing data", Nature Communications 2021).

A layer's weight tensor becomes one or more matrices ``W`` (``n x m``; ``N = max(n, m)``,
``M = min(n, m)``):

- linear layers: the ``(out, in)`` weight as it is;
- conv layers, ``mode="slices"`` (WeightWatcher's default): one ``(out, in/groups)`` matrix per
  kernel position ``(i, j)``, ``kh*kw`` of them, whose eigenvalues are pooled into one spectrum;
- conv layers, ``mode="flatten"``: the ``(out, in/groups*kh*kw)`` filter matrix.

The spectrum is that of the correlation matrix ``X = W^T W / N``: ``lambda = s^2 / N`` for each
singular value ``s`` of each matrix (``M`` values per matrix, zeros included). From it:

- ``entropy``: ``-sum p log p / log(rank)`` with ``p = lambda / sum(lambda)`` and ``rank`` the
  number of singular values above ``s_max * N * eps`` (numpy's matrix-rank tolerance); 0 for rank <= 1;
- ``stable_rank = sum(lambda) / lambda_max``; ``spectral_norm = lambda_max``;
  ``log_spectral_norm = log10(lambda_max)``; ``log_norm = log10(sum(lambda))`` (``||W||_F^2 / N``);
- ``alpha``: exponent of a power law ``p(x) ~ x^-alpha`` fitted to the tail ``lambda >= xmin`` by
  maximum likelihood, ``alpha = 1 + n / sum(log(lambda_i / xmin))``, with ``xmin`` the candidate
  (every nonzero eigenvalue but the largest) of smallest Kolmogorov-Smirnov distance
  ``D = max |(i / n) - (1 - (lambda_i / xmin)^(1 - alpha))|`` over the sorted tail (Clauset et al.);
  ``alpha_weighted = alpha * log10(lambda_max)``;
- ``rand_distance``: the Jensen-Shannon distance (natural log, in ``[0, sqrt(log 2)]``) between the
  sorted spectrum of ``W`` and that of the same layer with all its weights randomly permuted (one
  seeded permutation of the whole tensor), each read as a probability vector ``lambda / sum(lambda)``.

Where this differs from WeightWatcher 0.7.7's ``analyze()`` (tested in tests/test_spectra.py):

- WeightWatcher's eigenvalues are ``s^2`` without the ``1/N`` and, for conv layers, times ``1/2``
  (its ``conv2d_norm``); ``spectral_norm``, ``log_norm``, ``log_spectral_norm`` and
  ``alpha_weighted`` therefore differ by those factors. ``alpha``, ``entropy``, ``stable_rank`` and the
  spectra up to scale agree (alpha: for 20 or more nonzero eigenvalues, see next point).
- With fewer than 20 eigenvalues WeightWatcher switches to a bias-corrected fit with a tail-size
  penalty; we keep the plain MLE + KS fit at every size. It drops eigenvalues below an absolute
  ``1e-5`` before fitting; we drop those below the rank tolerance (scale-free).
- WeightWatcher shuffles each conv slice separately (a ``(out, 1)`` slice keeps its norm, so layers
  with one input channel get ``rand_distance`` NaN there); we permute the whole weight tensor.
- WeightWatcher adds ``1e-10`` to ``p`` and to the rank in the entropy (differences ~1e-9).

Pure functions: tensors in, plain values out; the decompositions run in float64 on the weights' device
(``s^2`` from the Gram matrix where that is accurate, :func:`squared_singular_values`).
"""
from __future__ import annotations

import contextlib
import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from metrics.conv_modes import CONV_MODES
from metrics.projections import distance_from_init
from utils.errors import UserError

_LOG10 = math.log(10.0)
# CPU SVDs of matrices up to this many elements run on one thread: LeNet's layers took 200x longer
# with 2 OpenMP threads than with 1 on a busy 2-core CPU (threads only pay off for large matrices).
_SINGLE_THREAD_ELEMENTS = 1 << 18
# the Gram matrix's eigenvalues stand for s^2 when all are this many times its error bound (see
# squared_singular_values)
_GRAM_MARGIN = 1e4


# -- from a weight tensor to its spectrum ----------------------------------------------------------
def layer_matrices(weight: torch.Tensor, mode: str = "slices") -> torch.Tensor:
    """The matrices whose spectra are pooled, as a batch ``(B, n, m)``.

    ``weight``: ``(out, in)`` (linear) or ``(out, in/groups, kh, kw)`` (conv). ``mode="slices"``
    gives the ``kh*kw`` matrices ``weight[:, :, i, j]``; ``"flatten"`` one ``(out, in/groups*kh*kw)``.
    """
    if mode not in CONV_MODES:
        raise UserError(f"unknown conv mode {mode!r}; choose {' or '.join(CONV_MODES)}")
    weight = weight.detach()
    if weight.dim() == 2:
        return weight.unsqueeze(0)
    if weight.dim() == 4 and mode == "slices":
        out, fan, kh, kw = weight.shape
        return weight.permute(2, 3, 0, 1).reshape(kh * kw, out, fan)
    return weight.reshape(1, weight.shape[0], -1)


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues ``(B*M,)`` of ``W^T W / N`` pooled over the ``B`` matrices, ascending, float64."""

    eigenvalues: torch.Tensor
    n: int  # N = max(rows, cols) of each matrix
    m: int  # M = min(rows, cols)
    n_matrices: int

    @property
    def rank_tolerance(self) -> float:
        """Eigenvalues at or below this count as zero: ``s <= s_max * N * eps`` (numpy's rank rule)."""
        lambda_max = float(self.eigenvalues[-1]) if self.eigenvalues.numel() else 0.0
        return lambda_max * (self.n * float(np.finfo(np.float64).eps)) ** 2


def spectrum(matrices: torch.Tensor) -> Spectrum:
    """The pooled spectrum of a ``(B, n, m)`` batch (see :func:`layer_matrices`)."""
    if not bool(torch.isfinite(matrices).all()):
        raise UserError("the weights contain NaN or inf; the spectrum is undefined")
    batch, rows, cols = matrices.shape
    big, small = max(rows, cols), min(rows, cols)
    if rows < cols:  # same singular values; LAPACK's path for wide matrices took 5x longer (768 x 3072)
        matrices = matrices.mT
    with _threads_for(matrices):
        squared = squared_singular_values(matrices.to(torch.float64))
    eigenvalues = torch.sort(squared.reshape(-1) / big).values
    return Spectrum(eigenvalues, big, small, batch)


def squared_singular_values(matrices: torch.Tensor) -> torch.Tensor:
    """``s^2`` of each tall ``(B, N, M)`` float64 matrix, ``(B, M)``, ascending.

    From the ``M x M`` Gram matrix ``W^T W`` (``eigvalsh``, twice as fast as ``svdvals`` on 3072 x 768)
    wherever that is accurate: every matrix's smallest eigenvalue is above ``_GRAM_MARGIN`` times the
    Gram matrix's error bound ``N * eps * lambda_max``, so that each ``s^2`` is within a relative
    ``1 / _GRAM_MARGIN`` of the SVD's (typically 1e-12) and no zero is mistaken for a small value.
    Otherwise (a rank-deficient or ill-conditioned layer, a zero matrix) from ``svdvals``.
    """
    rows = matrices.shape[-2]
    gram = torch.linalg.eigvalsh(matrices.mT @ matrices)
    bound = rows * float(np.finfo(np.float64).eps) * gram[..., -1]
    if bool((gram[..., 0] > _GRAM_MARGIN * bound).all()):
        return gram
    singular = torch.linalg.svdvals(matrices)
    return (singular * singular).flip(-1)


@contextlib.contextmanager
def _threads_for(matrices: torch.Tensor):
    """One intra-op thread for small CPU decompositions (see ``_SINGLE_THREAD_ELEMENTS``)."""
    previous = torch.get_num_threads()
    small = matrices.device.type == "cpu" and matrices[0].numel() <= _SINGLE_THREAD_ELEMENTS
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(previous)


def weight_spectrum(weight: torch.Tensor, mode: str = "slices") -> Spectrum:
    return spectrum(layer_matrices(weight, mode))


# -- scalar metrics of a spectrum ------------------------------------------------------------------
def matrix_rank(spec: Spectrum) -> int:
    return int((spec.eigenvalues > spec.rank_tolerance).sum())


def matrix_entropy(spec: Spectrum) -> float:
    """Entropy of ``p = lambda / sum(lambda)`` divided by ``log(rank)``: 1 for a flat spectrum of full
    rank, 0 for rank <= 1 (where the normalization is undefined)."""
    rank = matrix_rank(spec)
    if rank <= 1:
        return 0.0
    positive = spec.eigenvalues[spec.eigenvalues > 0]
    p = positive / positive.sum()
    return float(-(p * torch.log(p)).sum()) / math.log(rank)


def stable_rank(eigenvalues: torch.Tensor) -> float | None:
    """``sum(lambda) / max(lambda)`` (``||W||_F^2 / ||W||_2^2``); ``None`` for a zero matrix."""
    top = float(eigenvalues.max())
    return float(eigenvalues.sum()) / top if top > 0 else None


@dataclass(frozen=True)
class PowerLawFit:
    """``p(x) = (alpha - 1) / xmin * (x / xmin)^-alpha`` for ``x >= xmin``, fitted to ``n_tail`` values."""

    alpha: float
    xmin: float
    ks_distance: float
    n_tail: int
    sigma: float  # standard error of alpha: (alpha - 1) / sqrt(n_tail)


def fit_power_law(values: np.ndarray | torch.Tensor) -> PowerLawFit | None:
    """Maximum-likelihood power law with ``xmin`` chosen by the KS distance (see the module docstring).

    ``values``: positive samples (eigenvalues), any order. ``None`` with fewer than 2 distinct values.
    """
    data = np.sort(np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64))
    data = data[data > 0]
    n_all = len(data)
    if n_all < 2 or data[0] == data[-1]:
        return None
    logs = np.log(data)
    tail_log_sums = np.cumsum(logs[::-1])[::-1]  # sum of log(x_j) for j >= i
    best = None
    for i in range(n_all - 1):
        n = n_all - i
        spread = tail_log_sums[i] - n * logs[i]  # sum of log(x_j / xmin)
        if spread <= 0:
            continue
        alpha = 1.0 + n / spread
        model_cdf = 1.0 - np.exp((1.0 - alpha) * (logs[i:] - logs[i]))
        distance = float(np.max(np.abs(model_cdf - np.arange(n) / n)))
        if best is None or distance < best[0]:
            best = (distance, alpha, i, n)
    if best is None:
        return None
    distance, alpha, i, n = best
    return PowerLawFit(alpha=float(alpha), xmin=float(data[i]), ks_distance=distance, n_tail=n,
                       sigma=float((alpha - 1.0) / math.sqrt(n)))


def jensen_shannon_distance(p: torch.Tensor, q: torch.Tensor) -> float:
    """``sqrt((KL(p||m) + KL(q||m)) / 2)``, ``m = (p + q) / 2``, natural log; ``p`` and ``q``
    (non-negative, same length) are normalized to sum 1 first. In ``[0, sqrt(log 2)]``."""
    p = p.to(torch.float64) / p.sum()
    q = q.to(torch.float64) / q.sum()
    middle = (p + q) / 2

    def kl(a: torch.Tensor) -> torch.Tensor:
        keep = a > 0
        return (a[keep] * torch.log(a[keep] / middle[keep])).sum()

    divergence = float((kl(p) + kl(q)) / 2)
    return math.sqrt(max(divergence, 0.0))  # rounding can make an exact 0 slightly negative


def layer_seed(seed: int, name: str) -> int:
    """A per-layer seed that depends on the layer's name, not on which other layers are analysed."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def shuffled(weight: torch.Tensor, seed: int) -> torch.Tensor:
    """``weight`` with all its elements randomly permuted (seeded; the same draw on every device)."""
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.randperm(weight.numel(), generator=generator).to(weight.device)
    return weight.detach().reshape(-1)[permutation].reshape(weight.shape)


def shuffled_spectrum(weight: torch.Tensor, *, mode: str = "slices", seed: int = 0, name: str = "?") -> Spectrum:
    """The spectrum of ``weight`` with all its elements permuted (:func:`shuffled`, seeded by
    :func:`layer_seed` of ``seed`` and ``name``): the randomized layer behind ``rand_distance``."""
    try:
        return weight_spectrum(shuffled(weight, layer_seed(seed, name)), mode)
    except UserError as err:
        raise UserError(f"layer {name}: {err}") from err


def rand_distance(weight: torch.Tensor, spec: Spectrum, *, mode: str, seed: int,
                  randomized: Spectrum | None = None) -> float | None:
    """Jensen-Shannon distance between ``spec`` (of ``weight``) and the spectrum of ``weight`` shuffled
    with the permutation seed ``seed`` (``randomized``, when the caller has it already)."""
    if float(spec.eigenvalues.sum()) <= 0:
        return None
    if randomized is None:
        randomized = weight_spectrum(shuffled(weight, seed), mode)
    return jensen_shannon_distance(spec.eigenvalues, randomized.eigenvalues)


# -- one layer, every metric -----------------------------------------------------------------------
METRICS = ("entropy", "stable_rank", "spectral_norm", "log_spectral_norm", "log_norm", "alpha",
           "alpha_weighted", "xmin", "ks_distance", "rand_distance", "l2_dist", "cosine")


def _log10(value: float) -> float | None:
    return math.log(value) / _LOG10 if value > 0 else None


def layer_spectrum(weight: torch.Tensor, *, mode: str = "slices", init_weight: torch.Tensor | None = None,
                   seed: int = 0, name: str = "?", randomized: Spectrum | None = None) -> dict:
    """Every metric of one layer (``weight`` as in :func:`layer_matrices`) as a plain dict.

    ``init_weight`` (same shape) adds ``l2_dist = ||W - W0||_F / ||W0||_F``, ``l_inf_dist`` and
    ``cosine``; ``seed`` and ``name`` seed the shuffle of ``rand_distance`` (:func:`layer_seed`).
    ``None`` marks values that are undefined (e.g. every metric of a zero matrix). ``randomized``: the
    :func:`shuffled_spectrum` of the same ``weight``, ``mode``, ``seed`` and ``name``, when the caller
    needs it too (compute_spectra shares it with the correlation traps); it is drawn here otherwise.
    """
    try:
        spec = weight_spectrum(weight, mode)
    except UserError as err:
        raise UserError(f"layer {name}: {err}") from err
    eigenvalues = spec.eigenvalues
    lambda_max, total = float(eigenvalues[-1]), float(eigenvalues.sum())
    fit = fit_power_law(eigenvalues[eigenvalues > spec.rank_tolerance])
    log_spectral = _log10(lambda_max)
    record = {
        "N": spec.n, "M": spec.m, "n_matrices": spec.n_matrices, "num_evals": int(eigenvalues.numel()),
        "rank": matrix_rank(spec),
        "entropy": matrix_entropy(spec) if total > 0 else None,
        "stable_rank": stable_rank(eigenvalues),
        "spectral_norm": lambda_max, "log_spectral_norm": log_spectral, "log_norm": _log10(total),
        "alpha": fit.alpha if fit else None,
        "alpha_weighted": fit.alpha * log_spectral if fit and log_spectral is not None else None,
        "xmin": fit.xmin if fit else None, "ks_distance": fit.ks_distance if fit else None,
        "alpha_sigma": fit.sigma if fit else None, "n_tail": fit.n_tail if fit else None,
        "rand_distance": rand_distance(weight, spec, mode=mode, seed=layer_seed(seed, name), randomized=randomized),
        "eigenvalues": eigenvalues.cpu().tolist(),
    }
    if init_weight is not None:
        if init_weight.shape != weight.shape:
            raise UserError(f"layer {name} has shape {tuple(weight.shape)} but {tuple(init_weight.shape)} at "
                            "initialization; the init snapshot belongs to another architecture or dataset")
        record |= distance_from_init(weight, init_weight)
    return record
