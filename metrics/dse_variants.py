"""dse-dsmi 1.1's other estimators, selectable by name (``--dse-variants``): CSE/CSMI, the matrix-entry
entropy and its MI, the adjacency spectral entropy (ASE) and its MI (ASMI).

Names (:data:`VARIANT_NAMES`) and the keys :func:`dse_variants` returns, all in bits:

============================== ============================================================================
name                           keys
============================== ============================================================================
``cse``                        ``cse``: classic Shannon entropy of the per-dimension binning (2 bins)
``csmi``                       ``csmi_y``, ``csmi_x``: the package's MI estimator with CSE in place of DSE
``matrix_entry``               ``matrix_entry``: entropy of the entries of the diffusion matrix ``P``
``matrix_entry_mi``            ``matrix_entry_mi_y``, ``matrix_entry_mi_x``: DSMI with that entropy
``ase_gaussian``               ``ase_gaussian``: spectral entropy of the Gaussian adjacency ``G``
``ase_anisotropic``            ``ase_anisotropic``: of ``K = D^-1/2 G D^-1/2``
``ase_knn``                    ``ase_knn``: of the kNN-binarized adjacency
``asmi_<kernel>``              ``asmi_<kernel>_y``, ``asmi_<kernel>_x``: the MI estimator with that ASE
``ase`` / ``asmi``             all three kernels of ASE / ASMI
============================== ============================================================================

``_y`` is against the class labels, ``_x`` against the input cluster ids of
:func:`metrics.input_clusters.input_cluster_ids`; each MI key appears when its ids are given.
Every value equals the package's (to ~1e-12 bits; tested at 1e-6). Its quirks, followed here:

- No variant has a diffusion time: the package ignores ``t`` for the matrix-entry entropy (``P`` itself,
  not ``P^t``) and its ASE has none.
- ASE takes the normalized ``|eigenvalues|`` of the adjacency itself; the package's constant
  ``1/(sigma sqrt(2 pi))`` cancels and is left out. Its anisotropic adjacency is DSE's matrix ``K``, so
  ``ase_anisotropic`` equals DSE at ``t = 1`` (and ``asmi_anisotropic`` DSMI at ``t = 1``).
- The kNN adjacency: ``A_ij = 1`` when ``d(x_i, x_j)`` is at most the ``knn``-th smallest distance of row
  ``i``, the point itself (distance 0) counted, so each point has ``knn - 1`` other neighbours, more on
  ties. ``A`` is not symmetric in general: its eigenvalues come from the general solver (LAPACK ``dgeev``,
  as numpy's ``eigvals`` in the package) and their moduli are used. A subset with fewer than ``knn`` rows
  (a small class or cluster in ASMI) is an error here; the package fails on it with an index error.
- The package's ASMI has no ``knn`` argument: its kNN variant always uses 10, so ``asmi_knn_*`` equals the
  package only for ``knn=10`` (the default); ``ase_knn`` follows ``knn``.
- All MI subsets are drawn and capped (``max_n``) as in its DSMI (:func:`metrics.dse.subset_mutual_information`).

Computed in float64 (float32 inputs upcast, so values equal the package's on ``x.astype(float64)``), CSE
in the input's dtype, as :mod:`metrics.dse`. The kNN adjacency and the general eigenvalue solver run on
the CPU; the Gaussian kernels run on the embeddings' device.
"""
from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable

import numpy as np
import torch

from metrics.dse import (
    _as_array,
    _as_data,
    _check_options,
    _diffusion_entropy,
    _subsample,
    classic_shannon_entropy,
    diffusion_kernel,
    gaussian_kernel,
    reference_clusters,
    spectral_entropy,
    subset_mutual_information,
    symmetric_eigenvalues,
)
from utils.errors import UserError

ArrayLike = np.ndarray | torch.Tensor
EntropyFactory = Callable[..., Callable[[ArrayLike], float]]

ADJACENCY_KERNELS = ("gaussian", "anisotropic", "knn")
DEFAULT_KNN = 10  # the package's knn, and the value its ASMI always uses


# -- the adjacency spectral entropy ----------------------------------------------------------------
def adjacency_matrix(points: ArrayLike, *, kernel: str = "gaussian", sigma: float = 10.0,
                     knn: int = DEFAULT_KNN) -> ArrayLike:
    """Adjacency ``(N, N)`` of ``points`` ``(N, D)`` as dse-dsmi's ASE builds it: ``gaussian`` ``G``,
    ``anisotropic`` ``D^-1/2 G D^-1/2`` (float64, on the points' device) or ``knn`` (0/1, a numpy array)."""
    if kernel == "gaussian":
        return gaussian_kernel(points, sigma=sigma)
    if kernel == "anisotropic":
        return diffusion_kernel(points, sigma=sigma)
    if kernel == "knn":
        return knn_adjacency(points, knn=knn)
    raise UserError(f"unknown adjacency kernel {kernel!r}; choose one of {', '.join(ADJACENCY_KERNELS)}")


def knn_adjacency(points: ArrayLike, *, knn: int = DEFAULT_KNN) -> np.ndarray:
    """0/1 float64 ``(N, N)``: row ``i`` marks every point within its ``knn``-th smallest distance (itself
    included, ties kept). Distances are scikit-learn's ``pairwise_distances``, the package's, so that ties
    and near-ties fall the same way."""
    from sklearn.metrics import pairwise_distances

    x = _as_array(points).astype(np.float64, copy=False)
    n = len(x)
    if n < knn:
        raise UserError(f"the kNN adjacency needs at least knn={knn} points, got {n} (in ASMI: a class or "
                        f"cluster smaller than knn); use a larger probe or a smaller knn")
    distances = pairwise_distances(x)
    kth = np.partition(distances, knn - 1, axis=1)[:, knn - 1]
    return (distances <= kth[:, None]).astype(np.float64)


def adjacency_eigenvalues(adjacency: ArrayLike) -> np.ndarray:
    """Eigenvalues of ``adjacency`` (overwritten): the symmetric solver when it is symmetric (the package's
    ``allclose`` test), else the general one (complex values; the entropy uses their moduli)."""
    if isinstance(adjacency, torch.Tensor):
        return symmetric_eigenvalues(adjacency)  # the Gaussian kernels: symmetric by construction
    if np.allclose(adjacency, adjacency.T, rtol=1e-5, atol=1e-8):
        return symmetric_eigenvalues(adjacency)
    return np.linalg.eigvals(adjacency)


def adjacency_spectral_entropy(embeddings: ArrayLike, *, kernel: str = "gaussian", sigma: float = 10.0,
                               knn: int = DEFAULT_KNN, max_n: int | None = 10000, seed: int | None = 0) -> float:
    """ASE in bits of ``embeddings`` ``(N, D)``: entropy of ``|eigenvalues|`` of :func:`adjacency_matrix`,
    normalized (no power ``t``). Rows beyond ``max_n`` are dropped by the package's seeded draw."""
    _check_variant_options(sigma=sigma, max_n=max_n, knn=knn, kernel=kernel)
    entropy = _adjacency_entropy_function(kernel=kernel, sigma=sigma, knn=knn)
    return entropy(_subsample(_as_data(embeddings, classic_shannon=False), max_n, random.Random(seed), reseed=None))


def _adjacency_entropy(points: ArrayLike, *, kernel: str, sigma: float, knn: int) -> float:
    return spectral_entropy(adjacency_eigenvalues(adjacency_matrix(points, kernel=kernel, sigma=sigma, knn=knn)))


def _adjacency_entropy_function(*, kernel: str, sigma: float, knn: int) -> Callable[[ArrayLike], float]:
    return functools.partial(_adjacency_entropy, kernel=kernel, sigma=sigma, knn=knn)


# -- the registry of variants ----------------------------------------------------------------------
def _cse(*, bins_per_dim: int, **_) -> Callable[[ArrayLike], float]:
    return functools.partial(classic_shannon_entropy, bins_per_dim=bins_per_dim)


def _matrix_entry(*, sigma: float, t: float, **_) -> Callable[[ArrayLike], float]:
    return functools.partial(_diffusion_entropy, sigma=sigma, t=t, matrix_entry=True)


def _adjacency(kernel: str) -> EntropyFactory:
    def factory(*, sigma: float, knn: int, **_) -> Callable[[ArrayLike], float]:
        return _adjacency_entropy_function(kernel=kernel, sigma=sigma, knn=knn)
    return factory


ENTROPIES: dict[str, EntropyFactory] = {  # name -> its entropy, given the settings
    "cse": _cse,
    "matrix_entry": _matrix_entry,
    **{f"ase_{kernel}": _adjacency(kernel) for kernel in ADJACENCY_KERNELS},
}
MUTUAL_INFORMATIONS: dict[str, str] = {  # name -> the entropy the package's MI estimator is built on
    "csmi": "cse",
    "matrix_entry_mi": "matrix_entry",
    **{f"asmi_{kernel}": f"ase_{kernel}" for kernel in ADJACENCY_KERNELS},
}
GROUPS: dict[str, tuple[str, ...]] = {
    "ase": tuple(f"ase_{kernel}" for kernel in ADJACENCY_KERNELS),
    "asmi": tuple(f"asmi_{kernel}" for kernel in ADJACENCY_KERNELS),
}
VARIANT_NAMES: tuple[str, ...] = ("cse", "csmi", "matrix_entry", "matrix_entry_mi", "ase", "asmi",
                                  *GROUPS["ase"], *GROUPS["asmi"])
REFERENCES = ("y", "x")  # the suffixes of MI keys: class labels, input cluster ids


def resolve_variants(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` with groups expanded, duplicates dropped, in order; an unknown name is a :class:`UserError`."""
    if isinstance(names, str):
        names = [names]
    resolved: list[str] = []
    for name in names:
        if name not in VARIANT_NAMES:
            raise UserError(f"unknown DSE variant {name!r}; choose from {' '.join(VARIANT_NAMES)}")
        for member in GROUPS.get(name, (name,)):
            if member not in resolved:
                resolved.append(member)
    return tuple(resolved)


def variant_keys(names: Iterable[str], *, labels: bool = True, inputs: bool = True) -> tuple[str, ...]:
    """The keys :func:`dse_variants` returns for ``names`` when labels / input ids are given (table columns)."""
    suffixes = [suffix for suffix, given in zip(REFERENCES, (labels, inputs)) if given]
    keys: list[str] = []
    for name in resolve_variants(names):
        keys += [name] if name in ENTROPIES else [f"{name}_{suffix}" for suffix in suffixes]
    return tuple(keys)


def dse_variants(
    embeddings: ArrayLike,
    names: Iterable[str],
    labels: ArrayLike | None = None,
    input_ids: ArrayLike | None = None,
    *,
    sigma: float = 10.0,
    t: float = 1,
    max_n: int | None = 10000,
    seed: int | None = 0,
    repetitions: int = 5,
    bins_per_dim: int = 2,
    knn: int = DEFAULT_KNN,
) -> dict[str, float]:
    """``{key: value in bits}`` of the variants ``names`` of ``embeddings`` Z ``(N, D)`` (keys: the module's table).

    ``labels`` ``(N,)`` class ids and ``input_ids`` ``(N,)`` input cluster ids are the Y of the MI keys
    (``*_y``, ``*_x``), used as given; an MI name with neither is a :class:`UserError`. ``sigma``, ``max_n``,
    ``seed``, ``repetitions`` and ``bins_per_dim`` mean what they mean in :mod:`metrics.dse`; ``knn`` is the
    kNN adjacency's neighbour count. ``t`` is accepted so that DSE's settings pass through, but no variant
    uses it: the package ignores it for the matrix-entry entropy too.
    """
    resolved = resolve_variants(names)
    _check_variant_options(sigma=sigma, max_n=max_n, knn=knn, bins_per_dim=bins_per_dim)
    if repetitions < 1:
        raise UserError(f"repetitions={repetitions} must be at least 1")
    settings = {"sigma": sigma, "t": t, "bins_per_dim": bins_per_dim, "knn": knn}
    data = _DataForms(embeddings)
    references = _group_ids(data.n, labels=labels, input_ids=input_ids)
    values: dict[str, float] = {}
    for name in resolved:
        base = MUTUAL_INFORMATIONS.get(name, name)
        entropy, points = ENTROPIES[base](**settings), data.of(base)
        if name in ENTROPIES:
            values[name] = entropy(_subsample(points, max_n, random.Random(seed), reseed=None))
            continue
        if not references:
            raise UserError(f"the DSE variant {name} is a mutual information: give labels or input cluster ids")
        for suffix, ids in references.items():
            values[f"{name}_{suffix}"] = subset_mutual_information(points, ids, entropy, max_n=max_n, seed=seed,
                                                                   repetitions=repetitions)
    return values


class _DataForms:
    """The embeddings as each entropy reads them, converted once: CSE bins the input's dtype, the others
    work in float64 on the input's device (:mod:`metrics.dse`)."""

    def __init__(self, embeddings: ArrayLike):
        self._embeddings, self._forms = embeddings, {}
        self.n = len(self.of("matrix_entry"))  # validates the shape and the values

    def of(self, base: str) -> ArrayLike:
        classic = base == "cse"
        if classic not in self._forms:
            self._forms[classic] = _as_data(self._embeddings, classic_shannon=classic)
        return self._forms[classic]


def _group_ids(n: int, *, labels: ArrayLike | None, input_ids: ArrayLike | None) -> dict[str, np.ndarray]:
    ids = {}
    for suffix, given in zip(REFERENCES, (labels, input_ids)):
        if given is None:
            continue
        ids[suffix] = reference_clusters(given, discrete=True)
        if len(ids[suffix]) != n:
            what = "labels" if suffix == "y" else "input cluster ids"
            raise UserError(f"the DSE variants need one of the {what} per embedding: got {n} embeddings and "
                            f"{len(ids[suffix])} {what}")
    return ids


def _check_variant_options(*, sigma: float, max_n: int | None, knn: int, bins_per_dim: int = 2,
                           kernel: str = "gaussian") -> None:
    _check_options(sigma=sigma, max_n=max_n, bins_per_dim=bins_per_dim)
    if knn < 1:
        raise UserError(f"knn={knn} must be at least 1")
    if kernel not in ADJACENCY_KERNELS:
        raise UserError(f"unknown adjacency kernel {kernel!r}; choose one of {', '.join(ADJACENCY_KERNELS)}")
