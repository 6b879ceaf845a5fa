"""WeightWatcher's per-layer diagnostics and distances from the initialization (the `weightwatcher`
package; Martin and Mahoney, "Implicit Self-Regularization in Deep Neural Networks", JMLR 2021).

Next to the spectra of metrics/spectral.py (same matrices, same eigenvalues ``s^2 / N``):

- ``num_spikes``, ``mp_softrank``, ``bulk_min``, ``bulk_max``, ``sigma_mp``: a Marchenko-Pastur fit of
  the layer's spectrum (metrics/mp_fit.py), as WeightWatcher's ``analyze(mp_fit=True)``;
- ``num_traps``: correlation traps, the spikes of the *randomized* spectrum beyond its own fitted MP
  edge (with the Tracy-Widom tolerance), as WeightWatcher's ``analyze(randomize=True)``. The layer is
  randomized as WeightWatcher does: each matrix (each conv slice, or the linear weight) has its
  elements permuted separately, and layers with fewer than 100 eigenvalues pool 5 such draws
  (so their count covers 5 randomized spectra); ``rand_bulk_max`` and ``rand_eigenvalues`` are what
  was fitted, for the ESD figure. The draws are seeded per layer (:func:`metrics.spectral.layer_seed`);
  a layer of one matrix with 100 or more eigenvalues takes the draw behind its ``rand_distance``, a
  permutation of all its elements too (:func:`layer_diagnostics`);
- ``warning``: ``"over-trained"`` for alpha < 2, ``"under-trained"`` for alpha > 6, else ``""``;
- ``log_alpha_norm = log10(sum(lambda^alpha))``;
- given an initialization: ``euclidean``, WeightWatcher's ``distances(method="euclidean")``, the mean
  over the layer's matrices of ``||W_b - W0_b||_F`` (for a linear layer ``||W - W0||_F``);
  ``frobenius_dist = ||W - W0||_F`` of the whole tensor (its ``method="raw"``), the absolute
  counterpart of our relative ``l2_dist``; and ``cka``, its uncentered CKA averaged over the matrices,
  ``||A^T B||_F / sqrt(||A^T A||_F ||B B^T||_F)`` with ``A``, ``B`` the matrices of ``W`` and ``W0``.

Where this differs from WeightWatcher 0.7.7 on purpose (tested in tests/test_ww_diagnostics.py):

- ``bulk_min``, ``bulk_max``, ``rand_bulk_max`` are in our eigenvalue units (``s^2 / N``; WeightWatcher's
  are ``s^2``, times 1/2 for conv layers), and so is ``log_alpha_norm``: ours plus
  ``alpha * log10(N)`` (conv layers: ``N / 2``) is WeightWatcher's. The counts, ``mp_softrank`` and
  ``sigma_mp`` are scale-free and agree as they are.
- ``warning`` and ``log_alpha_norm`` use our alpha (metrics/spectral.py), which equals WeightWatcher's
  for 20 or more eigenvalues; where the fit is undefined they are ``None`` (WeightWatcher's alpha is
  then -1 and its warning "over-trained").
- Its randomization draws from NumPy's global generator; ours from a per-layer seeded one, so a layer's
  traps do not depend on which other layers were analysed. Given the same draws the values are equal.
- For a conv layer with fewer outputs than inputs and an even number of kernel positions (2x2, 4x4)
  its slice loop leaves ``N < M`` (``Q < 1``; read from its source, not tested); we keep ``N >= M``.

Pure functions: tensors in, plain values out; SVDs in float64 on the weights' device.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from metrics.mp_fit import MarchenkoPasturFit, fit_marchenko_pastur
from metrics.spectral import layer_matrices, layer_seed, spectrum
from utils.errors import UserError

OVER_TRAINED, UNDER_TRAINED = "over-trained", "under-trained"
OVER_TRAINED_ALPHA, UNDER_TRAINED_ALPHA = 2.0, 6.0  # WeightWatcher's thresholds (strict inequalities)
# WeightWatcher pools this many randomized draws for layers with fewer than TRAP_POOL_BELOW eigenvalues.
TRAP_REPLICAS, TRAP_POOL_BELOW = 5, 100
CKA_NORM_FLOOR = 1e-6  # WeightWatcher adds this to a CKA denominator below it
# Scalar keys of layer_diagnostics (the init distances only when an initialization is given).
DIAGNOSTICS = ("num_spikes", "mp_softrank", "bulk_min", "bulk_max", "sigma_mp", "num_traps", "rand_bulk_max",
               "warning", "log_alpha_norm")
INIT_DISTANCES = ("euclidean", "frobenius_dist", "cka")


# -- alpha-based values -----------------------------------------------------------------------------
def training_warning(alpha: float | None) -> str | None:
    """WeightWatcher's flag: ``"over-trained"`` (alpha < 2), ``"under-trained"`` (alpha > 6) or ``""``;
    ``None`` where alpha is undefined."""
    if alpha is None or not math.isfinite(alpha):
        return None
    if alpha < OVER_TRAINED_ALPHA:
        return OVER_TRAINED
    return UNDER_TRAINED if alpha > UNDER_TRAINED_ALPHA else ""


def log_alpha_norm(eigenvalues: torch.Tensor, alpha: float | None) -> float | None:
    """``log10(sum(lambda^alpha))`` (the Schatten alpha-norm of ``W^T W / N`` to the power alpha)."""
    if alpha is None or not math.isfinite(alpha):
        return None
    positive = eigenvalues.to(torch.float64)
    positive = positive[positive > 0]
    if positive.numel() == 0:
        return None
    # log-sum-exp keeps large alpha from overflowing
    return float(torch.logsumexp(alpha * torch.log(positive), dim=0)) / math.log(10.0)


# -- Marchenko-Pastur fits --------------------------------------------------------------------------
def mp_diagnostics(eigenvalues: torch.Tensor, n: int, m: int) -> dict:
    """``{num_spikes, mp_softrank, bulk_min, bulk_max, sigma_mp}`` of a layer's spectrum (``None``s where
    the fit is undefined, e.g. a zero matrix); ``n >= m`` the size of each matrix."""
    return _fit_record(fit_marchenko_pastur(eigenvalues.detach().cpu().numpy(), n, m))


def _fit_record(fit: MarchenkoPasturFit | None) -> dict:
    if fit is None:
        return dict.fromkeys(("num_spikes", "mp_softrank", "bulk_min", "bulk_max", "sigma_mp"))
    return {"num_spikes": fit.num_spikes, "mp_softrank": fit.mp_softrank, "bulk_min": fit.bulk_min,
            "bulk_max": fit.bulk_max, "sigma_mp": fit.sigma}


def ww_matrices(weight: torch.Tensor, mode: str = "slices") -> torch.Tensor:
    """The layer's matrices ``(B, r, c)`` oriented as WeightWatcher holds them: a linear (or flattened
    conv) weight as ``(out, in)``, conv slices with at least as many rows as columns (it transposes a
    slice with ``out < in``). The orientation matters for the element order of a shuffle and for CKA."""
    matrices = layer_matrices(weight, mode)
    if weight.dim() == 4 and mode == "slices" and matrices.shape[1] < matrices.shape[2]:
        matrices = matrices.transpose(1, 2)
    return matrices


def trap_replicas(m: int, n_matrices: int) -> int:
    """How many randomized draws WeightWatcher pools: 5 below 100 eigenvalues (``M`` per matrix), else 1."""
    return TRAP_REPLICAS if m * n_matrices < TRAP_POOL_BELOW else 1


def randomized_eigenvalues(weight: torch.Tensor, *, mode: str = "slices", rng, replicas: int | None = None
                           ) -> torch.Tensor:
    """Pooled, ascending eigenvalues (``s^2 / N``) of the layer with each matrix's elements permuted.

    ``rng``: a ``numpy.random.Generator`` or ``RandomState``; each draw permutes every matrix of
    :func:`ww_matrices` in turn (``rng.permutation`` of its flat C-order elements), draw after draw, the
    order in which WeightWatcher shuffles. ``replicas`` defaults to :func:`trap_replicas`.
    """
    matrices = ww_matrices(weight, mode)
    batch, rows, cols = matrices.shape
    if replicas is None:
        replicas = trap_replicas(min(rows, cols), batch)
    flat = matrices.reshape(batch, rows * cols)
    order = np.stack([rng.permutation(rows * cols) for _ in range(replicas * batch)])
    index = torch.from_numpy(order).to(flat.device).reshape(replicas, batch, rows * cols)
    shuffled = torch.gather(flat.unsqueeze(0).expand(replicas, -1, -1), 2, index)
    return spectrum(shuffled.reshape(replicas * batch, rows, cols)).eigenvalues


def correlation_traps(weight: torch.Tensor, *, mode: str = "slices", rng=None, seed: int = 0) -> dict:
    """``{num_traps, rand_bulk_max, rand_eigenvalues}``: the spikes of the randomized spectrum
    (:func:`randomized_eigenvalues`, drawn from ``rng`` or else from ``numpy.random.default_rng(seed)``)
    beyond its fitted MP edge plus the Tracy-Widom tolerance."""
    rng = np.random.default_rng(seed) if rng is None else rng
    eigenvalues = randomized_eigenvalues(weight, mode=mode, rng=rng)
    matrices_shape = layer_matrices(weight, mode).shape
    return traps_of(eigenvalues, max(matrices_shape[1:]), min(matrices_shape[1:]))


def traps_of(randomized: torch.Tensor, n: int, m: int) -> dict:
    """``{num_traps, rand_bulk_max, rand_eigenvalues}`` of a randomized spectrum of ``n x m`` matrices."""
    fit = fit_marchenko_pastur(randomized.detach().cpu().numpy(), n, m)
    return {"num_traps": fit.num_spikes if fit else None, "rand_bulk_max": fit.bulk_max if fit else None,
            "rand_eigenvalues": randomized.cpu().tolist()}


# -- distance from the initialization ---------------------------------------------------------------
def init_distances(weight: torch.Tensor, init_weight: torch.Tensor, *, mode: str = "slices",
                   name: str = "?") -> dict:
    """``{euclidean, frobenius_dist, cka}`` of one layer from its initialization (module docstring)."""
    if init_weight.shape != weight.shape:
        raise UserError(f"layer {name} has shape {tuple(weight.shape)} but {tuple(init_weight.shape)} at "
                        "initialization; the init snapshot belongs to another architecture or dataset")
    current = ww_matrices(weight, mode).to(torch.float64)
    init = ww_matrices(init_weight.to(weight.device), mode).to(torch.float64)
    if not bool(torch.isfinite(current).all() and torch.isfinite(init).all()):
        raise UserError(f"layer {name} has non-finite weights (NaN or inf) in the snapshot or its initialization")
    per_matrix = torch.linalg.matrix_norm(current - init)
    return {"euclidean": float(per_matrix.mean()), "frobenius_dist": float(per_matrix.square().sum().sqrt()),
            "cka": float(uncentered_cka(current, init).mean())}


def uncentered_cka(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """WeightWatcher's CKA of matrix pairs ``(B, r, c)``: ``||A^T B||_F / sqrt(||A^T A||_F ||B B^T||_F)``.

    ``||A^T B||_F^2 = <A A^T, B B^T>``, so the smaller Gram matrices are formed (``r x r`` or ``c x c``).
    """
    rows, cols = a.shape[-2:]
    if rows < cols:
        gram_a, gram_b = a @ a.mT, b @ b.mT
        cross = torch.sqrt(torch.clamp((gram_a * gram_b).sum(dim=(-2, -1)), min=0.0))
    else:
        gram_a, gram_b = a.mT @ a, b.mT @ b
        cross = torch.linalg.matrix_norm(a.mT @ b)
    norm = torch.sqrt(torch.linalg.matrix_norm(gram_a) * torch.linalg.matrix_norm(gram_b))
    return cross / torch.where(norm < CKA_NORM_FLOOR, norm + CKA_NORM_FLOOR, norm)


# -- one layer, every diagnostic --------------------------------------------------------------------
def layer_diagnostics(weight: torch.Tensor, record: dict, *, mode: str = "slices",
                      init_weight: torch.Tensor | None = None, seed: int = 0, name: str = "?",
                      traps: bool = True, shuffled: torch.Tensor | None = None) -> dict:
    """The diagnostics of one layer, to merge into its :func:`metrics.spectral.layer_spectrum` ``record``
    (computed with the same ``mode``; its ``eigenvalues``, ``N``, ``M`` and ``alpha`` are reused).

    Keys: :data:`DIAGNOSTICS`, ``rand_eigenvalues`` and, with ``init_weight``, :data:`INIT_DISTANCES`.
    ``seed`` and ``name`` seed the randomization (:func:`metrics.spectral.layer_seed`). ``traps=False``
    skips the randomized spectra (their SVDs): ``num_traps``, ``rand_bulk_max`` and ``rand_eigenvalues`` are
    then ``None``. ``shuffled``: the eigenvalues of the layer with all its elements permuted (the
    randomized spectrum behind ``rand_distance``, :func:`metrics.spectral.shuffled_spectrum`). A layer of
    one matrix (linear, attention, a 1x1 or flattened conv) with :func:`trap_replicas` 1 is randomized
    for its traps by just such a permutation, so they are fitted to ``shuffled`` rather than to a new draw
    (one SVD fewer); any other layer gets its own draws.
    """
    eigenvalues = torch.as_tensor(record["eigenvalues"], dtype=torch.float64)
    alpha = record.get("alpha")
    result = mp_diagnostics(eigenvalues, record["N"], record["M"])
    if traps and shuffled is not None and record["n_matrices"] == 1 and trap_replicas(record["M"], 1) == 1:
        result |= traps_of(shuffled, record["N"], record["M"])
    elif traps:
        result |= correlation_traps(weight, mode=mode, seed=layer_seed(seed, name))
    else:
        result |= {"num_traps": None, "rand_bulk_max": None, "rand_eigenvalues": None}
    result |= {"warning": training_warning(alpha), "log_alpha_norm": log_alpha_norm(eigenvalues, alpha)}
    if init_weight is not None:
        result |= init_distances(weight, init_weight, mode=mode, name=name)
    return result
