"""Diffusion Spectral Entropy (DSE), Diffusion Spectral Mutual Information (DSMI) and the classic
binned Shannon entropy (CSE) of a set of representations.

Same definitions, defaults and seeded subsampling as the reference package ``dse-dsmi`` 1.1
(Liao, Liu et al., "Assessing Neural Network Representations During Training Using
Noise-Resilient Diffusion Spectral Entropy"), so results agree with it to about 1e-12 bits:

- **DSE** of points ``x_1..x_N`` (rows of an ``(N, D)`` array): the Gaussian kernel
  ``G_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``, its symmetric normalization
  ``K = D^-1/2 G D^-1/2`` (``D = diag(row sums of G)``; ``K`` has the eigenvalues of the diffusion
  matrix ``P = D^-1 G``), eigenvalues taken in absolute value to the power ``t`` and normalized to
  sum 1, float64 eps added to every probability, entropy in bits. ``matrix_entry`` takes the
  entropy of the entries of ``P`` instead of its eigenvalues.
- **CSE**: every dimension min-max scaled to [0, 1] and cut into ``bins_per_dim`` equal bins (a
  constant dimension lands in one bin); the entropy of the distribution of the occupied cells.
- **DSMI(Z; Y)** ``= sum_b p(b) [mean over repetitions of DSE(Z*) - DSE(Z | Y = b)]`` where ``Z*``
  is a random subset of ``Z`` as large as class ``b``. ``Y`` is discrete labels, scalars binned
  into ``n_clusters`` equal bins, or vectors grouped by spectral clustering, as the reference does.
- Inputs with more than ``max_n`` rows are subsampled first with Python's ``random.sample`` seeded
  by ``seed``, the reference's draw; DSMI reproduces the reference's use of the global generator
  (its inner DSE calls re-seed it with 0 when a subset exceeds ``max_n``).

What differs is speed: ``K`` is built by broadcasting in one N x N float64 buffer (no diagonal
matrix products, no symmetry check; the reference's constant ``1/(sigma sqrt(2 pi))`` cancels in
``K`` and is left out), eigenvalues come from a symmetric solver (LAPACK's two-stage
``dsyevd_2stage`` for large CPU matrices, cuSOLVER when the embeddings are on a GPU). CPU inputs
are computed in numpy/OpenBLAS only: alternating torch's and OpenBLAS's thread pools on a small CPU
made each call several times slower. Everything runs in float64: the smallest eigenvalues matter
at 1e-6 bits, and float32 eigenvalues missed by 2e-8 to 3e-4 bits in our checks (the most on
near-low-rank kernels: rounding noise in the many near-zero eigenvalues counts through
``|lambda|``). float32 inputs are upcast exactly, so the results equal the reference's on
``x.astype(float64)`` (the reference itself computes float32 inputs in float32).
Pure functions: arrays or tensors in, floats out; no I/O.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os
import random
from collections.abc import Callable

import numpy as np
import torch

from utils.errors import UserError

ArrayLike = np.ndarray | torch.Tensor

_EPS = float(np.finfo(np.float64).eps)  # the reference adds this to every probability
# The reference's DSMI calls its DSE with the default random_seed=0, which re-seeds the global
# generator whenever a subset has more than max_N rows.
_REFERENCE_INNER_SEED = 0
# From this size on LAPACK's two-stage tridiagonalization beats the one-stage dsyevd on CPUs
# (measured on 2 cores: 1.5x faster at N = 4000, slower below N = 2500).
_TWO_STAGE_MIN_N = 3000


# -- the public metrics ----------------------------------------------------------------------------
def diffusion_spectral_entropy(
    embeddings: ArrayLike,
    *,
    sigma: float = 10.0,
    t: float = 1,
    max_n: int | None = 10000,
    seed: int | None = 0,
    classic_shannon: bool = False,
    bins_per_dim: int = 2,
    matrix_entry: bool = False,
) -> float:
    """DSE (or, with ``classic_shannon``, CSE) in bits of ``embeddings`` ``(N, D)``.

    Rows beyond ``max_n`` are dropped by the reference's seeded draw (``None``: keep all).
    """
    _check_options(sigma=sigma, max_n=max_n, bins_per_dim=bins_per_dim)
    entropy = _entropy_function(sigma=sigma, t=t, classic_shannon=classic_shannon, bins_per_dim=bins_per_dim,
                                matrix_entry=matrix_entry)
    data = _as_data(embeddings, classic_shannon=classic_shannon)
    return entropy(_subsample(data, max_n, random.Random(seed), reseed=None))


def diffusion_spectral_mutual_information(
    embeddings: ArrayLike,
    reference: ArrayLike,
    *,
    sigma: float = 10.0,
    t: float = 1,
    max_n: int | None = 10000,
    seed: int | None = 0,
    n_clusters: int = 10,
    repetitions: int = 5,
    classic_shannon: bool = False,
    bins_per_dim: int = 2,
    matrix_entry: bool = False,
    reference_discrete: bool | None = None,
) -> float:
    """DSMI(Z; Y) in bits between ``embeddings`` Z ``(N, D)`` and ``reference`` Y ``(N,)`` or ``(N, D')``.

    Y is grouped by :func:`reference_clusters`. ``seed`` seeds the draws of the random subsets
    ``Z*``; ``max_n`` caps every entropy's subset as the reference's inner DSE calls do.
    """
    _check_options(sigma=sigma, max_n=max_n, bins_per_dim=bins_per_dim)
    if repetitions < 1:
        raise UserError(f"repetitions={repetitions} must be at least 1")
    clusters = reference_clusters(reference, n_clusters=n_clusters, discrete=reference_discrete)
    data = _as_data(embeddings, classic_shannon=classic_shannon)
    if len(clusters) != len(data):
        raise UserError(f"DSMI needs one reference row per embedding: got {len(data)} embeddings and "
                        f"{len(clusters)} reference rows")
    entropy = _entropy_function(sigma=sigma, t=t, classic_shannon=classic_shannon, bins_per_dim=bins_per_dim,
                                matrix_entry=matrix_entry)
    return subset_mutual_information(data, clusters, entropy, max_n=max_n, seed=seed, repetitions=repetitions)


def subset_mutual_information(data: ArrayLike, clusters: np.ndarray, entropy: Callable[[ArrayLike], float], *,
                              max_n: int | None, seed: int | None, repetitions: int) -> float:
    """The reference's MI estimator around any ``entropy`` of rows of ``data`` ``(N, ...)``, with group ids
    ``clusters`` ``(N,)``: ``sum_b p(b) [mean over repetitions of H(Z*) - H(Z | Y = b)]`` (its DSMI and ASMI)."""

    def subset_entropy(members: np.ndarray, generator: random.Random) -> float:
        return entropy(_subsample(_take(data, members), max_n, generator, reseed=_REFERENCE_INNER_SEED))

    generator = random.Random()  # plays the reference's global `random` module
    labels, counts = np.unique(clusters, return_counts=True)
    gains = []
    for label, count in zip(labels, counts):
        conditional = subset_entropy(np.flatnonzero(clusters == label), generator)
        if seed is not None:
            generator.seed(seed)
        baseline = [subset_entropy(np.array(generator.sample(range(len(clusters)), k=int(count))), generator)
                    for _ in range(repetitions)]
        gains.append(np.mean(baseline) - conditional)
    return float(np.sum(counts / np.sum(counts) * np.array(gains)))


def classic_shannon_entropy(values: np.ndarray, *, bins_per_dim: int = 2) -> float:
    """CSE in bits of ``values`` ``(N, D)``: entropy of the occupied cells of the per-dimension binning."""
    _, counts = np.unique(bin_per_dimension(values, bins_per_dim), axis=0, return_counts=True)
    return _entropy_bits(counts / np.sum(counts))


def reference_clusters(reference: ArrayLike, *, n_clusters: int = 10, discrete: bool | None = None) -> np.ndarray:
    """Group labels ``(N,)`` for DSMI, as the reference forms them from ``reference`` ``(N,)`` or ``(N, D')``.

    ``discrete`` (default: one column of integers) uses the values themselves; one column of
    other values is min-max binned into ``n_clusters`` equal bins; several columns are grouped by
    scikit-learn's spectral clustering (nearest-neighbours affinity, ``cluster_qr``, seed 0).
    """
    values = _as_array(reference)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2:
        raise UserError(f"the DSMI reference must be (N,) or (N, D'), got shape {tuple(values.shape)}")
    if discrete is None:
        discrete = values.shape[1] == 1 and np.issubdtype(values.dtype, np.integer)
    if discrete:
        if values.shape[1] != 1:
            raise UserError(f"a discrete DSMI reference must have one column, got shape {tuple(values.shape)}")
        return values[:, 0]
    if values.shape[1] == 1:
        return bin_per_dimension(values, n_clusters)[:, 0]
    from sklearn.cluster import SpectralClustering

    clustering = SpectralClustering(n_clusters=n_clusters, affinity="nearest_neighbors", assign_labels="cluster_qr",
                                    random_state=0)
    return clustering.fit(values).labels_


def bin_per_dimension(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index in ``1..n_bins`` of every entry of ``values`` ``(N, D)`` after per-column min-max scaling.

    Computed in the input's dtype, as the reference does, so borderline values fall in the same
    bin. A constant column gives NaN after scaling, which lands in bin ``n_bins`` for every row.
    """
    if values.dtype == np.bool_:
        values = values.astype(np.uint8)
    low, high = np.min(values, axis=0), np.max(values, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = (values - low) / (high - low)
    return np.digitize(scaled, bins=np.linspace(0, 1, n_bins + 1)[:-1])


# -- the diffusion operator ------------------------------------------------------------------------
def diffusion_kernel(points: ArrayLike, *, sigma: float = 10.0) -> ArrayLike:
    """``K = D^-1/2 G D^-1/2`` ``(N, N)`` float64 of ``points`` ``(N, D)``: a numpy array, or a tensor
    on the points' device when they are a tensor.

    ``G_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))`` with squared distances from the Gram matrix
    (as scikit-learn's ``pairwise_distances``, clipped at 0, zero diagonal). Row sums of ``G`` are
    at least 1 (the diagonal), so the normalization never divides by zero. One N x N buffer.
    """
    kernel = gaussian_kernel(points, sigma=sigma)
    scale = kernel.sum(1) ** -0.5
    kernel *= scale[:, None]
    kernel *= scale[None, :]
    return kernel


def gaussian_kernel(points: ArrayLike, *, sigma: float = 10.0) -> ArrayLike:
    """``G_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))`` ``(N, N)`` float64 of ``points`` ``(N, D)``, without the
    reference's constant ``1/(sigma sqrt(2 pi))`` (it cancels in every entropy); array or tensor as given."""
    tensor = isinstance(points, torch.Tensor)
    x = points.to(torch.float64) if tensor else np.asarray(points, dtype=np.float64)
    squared_norms = (x * x).sum(1)
    kernel = x @ x.T
    kernel *= -2.0
    kernel += squared_norms[:, None]
    kernel += squared_norms[None, :]
    if tensor:
        kernel.clamp_(min=0.0).fill_diagonal_(0.0)
    else:
        np.maximum(kernel, 0.0, out=kernel)
        np.fill_diagonal(kernel, 0.0)
    kernel /= -2.0 * sigma**2
    return kernel.exp_() if tensor else np.exp(kernel, out=kernel)


def symmetric_eigenvalues(matrix: ArrayLike, *, solver: str = "auto") -> np.ndarray:
    """All eigenvalues (ascending, float64) of the symmetric ``matrix`` ``(N, N)``, which is overwritten.

    ``solver``: ``auto`` (a tensor: torch's solver, cuSOLVER on a GPU; an array: LAPACK's two-stage
    ``dsyevd_2stage`` from ``_TWO_STAGE_MIN_N`` on when the vendored OpenBLAS has it, else numpy's
    ``eigvalsh`` (``dsyevd``)), or one of :data:`CPU_SOLVERS`. Only one triangle is read.
    """
    if isinstance(matrix, torch.Tensor) and solver == "auto":
        return torch.linalg.eigvalsh(matrix).cpu().numpy()
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    if solver == "auto":
        large = matrix.shape[0] >= _TWO_STAGE_MIN_N and _two_stage_solver() is not None
        solver = "lapack_2stage" if large else "numpy"
    if solver not in CPU_SOLVERS:
        raise UserError(f"unknown eigenvalue solver {solver!r}; choose auto or one of {sorted(CPU_SOLVERS)}")
    return CPU_SOLVERS[solver](np.ascontiguousarray(matrix, dtype=np.float64))


def _lapack_2stage(matrix: np.ndarray) -> np.ndarray:
    solver = _two_stage_solver()
    if solver is None:
        raise UserError("LAPACK's dsyevd_2stage is not available here (no vendored OpenBLAS found); use solver='auto'")
    return solver(matrix)


CPU_SOLVERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"numpy": np.linalg.eigvalsh,
                                                               "lapack_2stage": _lapack_2stage}


# The OpenBLAS builds vendored by the scipy and numpy wheels export LAPACKE's two-stage driver
# under these names (32-bit and 64-bit integer interfaces); scipy.linalg does not wrap it.
# numpy's comes first: the kernel's matrix product runs in numpy's OpenBLAS, and one thread pool
# for both avoids two pools spinning against each other.
_TWO_STAGE_LIBRARIES = (
    ("numpy", "numpy.libs", "libscipy_openblas64_*", "scipy_LAPACKE_dsyevd_2stage64_", ctypes.c_int64),
    ("scipy", "scipy.libs", "libscipy_openblas*", "scipy_LAPACKE_dsyevd_2stage", ctypes.c_int32),
)
_LAPACK_COL_MAJOR = 102


@functools.lru_cache(maxsize=1)
def _two_stage_solver() -> Callable[[np.ndarray], np.ndarray] | None:
    """``solve(matrix) -> eigenvalues`` through ``LAPACKE_dsyevd_2stage`` (in place), or None."""
    for package, folder, pattern, symbol, index_type in _TWO_STAGE_LIBRARIES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.origin:
            continue
        site = os.path.dirname(os.path.dirname(spec.origin))
        for path in sorted(glob.glob(os.path.join(site, folder, pattern + ".so*"))):
            try:
                function = getattr(ctypes.CDLL(path), symbol)
            except (OSError, AttributeError):
                continue
            function.restype = index_type
            function.argtypes = [ctypes.c_int, ctypes.c_char, ctypes.c_char, index_type, ctypes.c_void_p, index_type,
                                 ctypes.c_void_p]
            return functools.partial(_call_two_stage, function)
    return None


def _call_two_stage(function, matrix: np.ndarray) -> np.ndarray:
    # A C-ordered symmetric matrix is its own column-major transpose: no copy is needed.
    n = matrix.shape[0]
    eigenvalues = np.empty(n, dtype=np.float64)
    info = function(_LAPACK_COL_MAJOR, b"N", b"L", n, matrix.ctypes.data, n, eigenvalues.ctypes.data)
    if info != 0:
        raise RuntimeError(f"LAPACK dsyevd_2stage failed with info={info} on a {n} x {n} matrix")
    return eigenvalues


# -- entropies -------------------------------------------------------------------------------------
def spectral_entropy(eigenvalues: np.ndarray, *, t: float = 1) -> float:
    """Entropy in bits of ``|eigenvalues|^t`` normalized to sum 1 (eps added, as the reference)."""
    powered = np.abs(eigenvalues) ** t
    return _entropy_bits(powered / powered.sum())


def _entropy_bits(probabilities: ArrayLike) -> float:
    if isinstance(probabilities, torch.Tensor):
        shifted = probabilities.to(torch.float64) + _EPS
        return float(-(shifted * torch.log2(shifted)).sum())
    shifted = probabilities + _EPS
    return float(-np.sum(shifted * np.log2(shifted)))


def _diffusion_entropy(points: ArrayLike, *, sigma: float, t: float, matrix_entry: bool) -> float:
    kernel = diffusion_kernel(points, sigma=sigma)
    if matrix_entry:
        kernel /= kernel.sum(1)[:, None]  # P = D^-1 K, row-stochastic
        transition = abs(kernel)
        return _entropy_bits(transition / transition.sum())
    return spectral_entropy(symmetric_eigenvalues(kernel), t=t)


def _entropy_function(*, sigma: float, t: float, classic_shannon: bool, bins_per_dim: int,
                      matrix_entry: bool) -> Callable[[ArrayLike], float]:
    if classic_shannon:
        return functools.partial(classic_shannon_entropy, bins_per_dim=bins_per_dim)
    return functools.partial(_diffusion_entropy, sigma=sigma, t=t, matrix_entry=matrix_entry)


# -- inputs and subsampling ------------------------------------------------------------------------
def _subsample(data: ArrayLike, max_n: int | None, generator: random.Random, *, reseed: int | None) -> ArrayLike:
    """``data`` cut to ``max_n`` rows with ``generator`` (re-seeded with ``reseed`` first when given)."""
    if max_n is None or len(data) <= max_n:
        return data
    if reseed is not None:
        generator.seed(reseed)
    return _take(data, np.array(generator.sample(range(len(data)), k=max_n)))


def _take(data: ArrayLike, rows: np.ndarray) -> ArrayLike:
    if isinstance(data, torch.Tensor):
        return data[torch.as_tensor(rows, dtype=torch.long, device=data.device)]
    return data[rows]


def _as_data(embeddings: ArrayLike, *, classic_shannon: bool) -> ArrayLike:
    """CSE bins a numpy array in the input's dtype; DSE works in float64 on the input's device."""
    if not classic_shannon:
        return _as_points(embeddings)
    values = _as_array(embeddings)
    _check_shape(values.shape)
    return values


def _as_points(embeddings: ArrayLike) -> ArrayLike:
    """A float64 tensor for GPU tensors, else a float64 numpy array: on the CPU everything runs in
    numpy and OpenBLAS, so that torch's and OpenBLAS's thread pools do not take turns spinning."""
    if isinstance(embeddings, torch.Tensor) and embeddings.device.type != "cpu":
        points = embeddings.detach().to(torch.float64)
        finite = bool(torch.isfinite(points).all())
    else:
        points = np.ascontiguousarray(_as_array(embeddings), dtype=np.float64)
        finite = bool(np.isfinite(points).all())
    _check_shape(points.shape)
    if not finite:
        raise UserError("embeddings contain NaN or infinite values; DSE is undefined (did the model diverge?)")
    return points


def _as_array(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype in (torch.bfloat16, torch.float16):
            values = values.float()
        return values.numpy()
    array = np.asarray(values)
    if array.dtype == object:
        raise UserError("embeddings must be a numeric array or tensor")
    return array


def _check_shape(shape) -> None:
    if len(shape) != 2 or shape[0] == 0:
        raise UserError(f"embeddings must be a non-empty (N, D) array, got shape {tuple(shape)}")


def _check_options(*, sigma: float, max_n: int | None, bins_per_dim: int) -> None:
    if not sigma > 0:
        raise UserError(f"sigma={sigma} must be positive")
    if max_n is not None and max_n < 1:
        raise UserError(f"max_n={max_n} must be at least 1 (or None to keep every row)")
    if bins_per_dim < 1:
        raise UserError(f"bins_per_dim={bins_per_dim} must be at least 1")
