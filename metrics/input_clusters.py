"""Cluster ids of a probe's inputs, the discrete X of DSMI(Z; X) (DSE paper, its third headline curve).

dse-dsmi 1.1 computes DSMI(Z; X) by grouping the flattened inputs X ``(N, D')`` and taking DSMI against the
group ids. Its grouping, reproduced here label for label:

- ``D' > 1`` (images): scikit-learn's ``SpectralClustering(n_clusters, affinity="nearest_neighbors",
  assign_labels="cluster_qr", random_state=0)`` on the array as given (no scaling, no centring, no upcast);
- ``D' == 1``: integer values are used as they are, other scalars are min-max binned into ``n_clusters``
  equal bins (the package's quirk for one-column references, kept so the values agree).

The probe is fixed across snapshots, so the ids are computed once per probe and reused::

    ids = input_cluster_ids(probe_inputs)                       # once
    dsmi_x = diffusion_spectral_mutual_information(z, ids)      # per snapshot (metrics.dse)

Pure function: arrays or tensors in, an integer array out; no I/O.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import torch

from metrics.dse import bin_per_dimension
from utils.errors import UserError

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor

DEFAULT_CLUSTERS = 10  # dse-dsmi's n_clusters
# scikit-learn's default for affinity="nearest_neighbors" (the package does not change it): the kNN graph
# needs at least this many samples.
_NEIGHBOURS = 10


class InputClusteringError(UserError, ValueError):
    """The inputs cannot be clustered as asked (too few samples, bad ``n_clusters``, non-finite values).

    A :class:`ValueError` for library callers and a :class:`UserError` for the CLIs (one line, exit 2).
    """


def input_cluster_ids(inputs: ArrayLike, n_clusters: int = DEFAULT_CLUSTERS, random_state: int = 0) -> np.ndarray:
    """Group ids ``(N,)`` (int64) of ``inputs`` ``(N, ...)``, flattened per sample, as dse-dsmi forms them for
    DSMI(Z; X).

    ``random_state`` seeds the spectral embedding (the package fixes 0). Raises
    :class:`InputClusteringError` when there are too few samples for ``n_clusters`` clusters of a
    10-nearest-neighbour graph, when ``n_clusters < 2`` or when an input is NaN or infinite.
    """
    flat = _flat_inputs(inputs)
    _check_clusters(len(flat), n_clusters)
    if flat.shape[1] == 1:
        if np.issubdtype(flat.dtype, np.integer):
            return flat[:, 0].astype(np.int64)
        return bin_per_dimension(flat, n_clusters)[:, 0].astype(np.int64)
    return _spectral_ids(flat, n_clusters=n_clusters, random_state=random_state)


def minimum_samples(n_clusters: int = DEFAULT_CLUSTERS) -> int:
    """The fewest samples :func:`input_cluster_ids` accepts for ``n_clusters`` clusters."""
    return max(_NEIGHBOURS, n_clusters + 1)


def _spectral_ids(flat: np.ndarray, *, n_clusters: int, random_state: int) -> np.ndarray:
    from sklearn.cluster import SpectralClustering

    clustering = SpectralClustering(n_clusters=n_clusters, affinity="nearest_neighbors", assign_labels="cluster_qr",
                                    random_state=random_state)
    with warnings.catch_warnings(record=True) as caught:
        # Well-separated inputs give a disconnected kNN graph; sklearn warns, the package silences all warnings.
        warnings.simplefilter("always")
        labels = clustering.fit(flat).labels_
    for warning in caught:
        logger.debug("spectral clustering of the inputs: %s", warning.message)
    return np.asarray(labels, dtype=np.int64)


def _flat_inputs(inputs: ArrayLike) -> np.ndarray:
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu()
        if inputs.dtype in (torch.bfloat16, torch.float16):
            inputs = inputs.float()
        inputs = inputs.numpy()
    array = np.asarray(inputs)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise InputClusteringError("the inputs to cluster for DSMI(Z; X) must be a numeric array or tensor")
    if array.ndim == 0 or array.shape[0] == 0:
        raise InputClusteringError(f"the inputs to cluster for DSMI(Z; X) must be (N, ...) with N >= 1, "
                                   f"got shape {tuple(array.shape)}")
    flat = array.reshape(array.shape[0], -1)
    if flat.shape[1] == 0:
        raise InputClusteringError(f"the inputs to cluster for DSMI(Z; X) are empty per sample: shape {array.shape}")
    if np.issubdtype(flat.dtype, np.floating) and not np.isfinite(flat).all():
        raise InputClusteringError("the inputs to cluster for DSMI(Z; X) contain NaN or infinite values")
    return flat


def _check_clusters(n: int, n_clusters: int) -> None:
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 2:
        raise InputClusteringError(f"n_clusters={n_clusters!r} for DSMI(Z; X) must be an integer of at least 2")
    if n < minimum_samples(n_clusters):
        raise InputClusteringError(
            f"DSMI(Z; X) cannot cluster {n} input samples into {n_clusters} clusters: it needs at least "
            f"{minimum_samples(n_clusters)} (more than the clusters, and {_NEIGHBOURS} for the nearest-neighbour "
            f"graph); use a larger probe or fewer clusters")
