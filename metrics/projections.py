"""Oriented-hyperplane projection statistics (Gamba, Carlsson, Azizpour, Björkman, "Hyperplane
Arrangements of Trained ConvNets Are Biased", 2020).

A filter ``w`` (one row of a layer's ``(out_units, fan_in)`` weight matrix, ``d = fan_in``) is the
normal of the hyperplanes it induces. Inputs that follow a ReLU live in the positive orthant, so the
orientation of a hyperplane relative to that orthant is measured by the projection of the
all-ones direction on the normal::

    p(w) = <w, 1>                                  (raw)
    p(w) = <w, 1> / (||w||_2 * sqrt(d))            (normalized: a cosine in [-1, 1])

Conventions, chosen so that no statistic is ever NaN:

- A zero filter induces no hyperplane. Its raw projection is exactly 0 and its normalized one is
  *defined* as 0, so it counts in ``mass = P(p <= 0)`` like any filter with ``<w, 1> <= 0``;
  ``n_zero`` counts projections that are exactly 0.
- Weights that are NaN or infinite raise :class:`UserError` naming the layer.
- The sign test is the exact two-sided binomial test of ``mass = 0.5`` with ``k = #{p <= 0}``
  (ties count as non-positive, exactly as in ``mass``).
- A relative distance is ``None`` when the initialization is all zeros, and the cosine is
  ``None`` when either weight tensor is all zeros (they are undefined, not infinite).

Every function takes tensors and returns tensors or plain Python values; no I/O, no printing.
Reductions over weights run in torch on the tensors' device, in float64, over blocks of
about a million weights copied into reused buffers (no full-size float64 copy of a 100M-weight
layer); only the ``(n_filters,)`` projection vectors go to numpy/scipy for quantiles and tests.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from utils.errors import UserError

HISTOGRAM_BINS = 20
PERCENTILES = (5, 25, 75, 95)
# Weights per float64 block: bounds the temporaries (VGG19's first linear layer has 103M weights)
# and stays cache-friendly (measured fastest among 2^16..2^22 on a 2-core CPU).
_CHUNK_ELEMENTS = 1 << 20


# -- per-filter projections ------------------------------------------------------------------------
def _row_blocks(filters: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """``(first_row, block)``: consecutive row blocks of ``filters`` ``(n, d)``, about
    ``_CHUNK_ELEMENTS`` weights each, copied into one reused float64 buffer."""
    n_rows, fan_in = filters.shape
    rows = max(1, _CHUNK_ELEMENTS // fan_in)
    buffer = torch.empty(min(rows, n_rows), fan_in, dtype=torch.float64, device=filters.device)
    for start in range(0, n_rows, rows):
        block = buffer[: min(rows, n_rows - start)]
        block.copy_(filters[start:start + rows])
        yield start, block


def _row_reductions(filters: torch.Tensor, *, with_norms: bool, layer: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(<w, 1>, ||w|| or None)`` per row, float64 ``(n_filters,)``.

    A NaN/inf weight makes its row's sum non-finite, so checking the results suffices.
    """
    filters = filters.detach()
    sums = torch.empty(filters.shape[0], dtype=torch.float64, device=filters.device)
    norms = torch.empty_like(sums) if with_norms else None
    for start, block in _row_blocks(filters):
        rows = slice(start, start + block.shape[0])
        torch.sum(block, dim=1, out=sums[rows])
        if norms is not None:
            torch.linalg.vector_norm(block, dim=1, out=norms[rows])
    finite = torch.isfinite(sums) if norms is None else torch.isfinite(sums) & torch.isfinite(norms)
    if not bool(finite.all()):
        raise UserError(
            f"layer {layer} has non-finite weights (NaN or inf) in {int((~finite).sum())} of {finite.numel()} "
            "filters; the snapshot is corrupt or training diverged, analyse another snapshot"
        )
    return sums, norms


def filter_projections(filters: torch.Tensor, *, normalize: bool = False, layer: str = "?") -> torch.Tensor:
    """Projections of the all-ones direction on each filter.

    ``filters``: ``(n_filters, fan_in)``, one hyperplane normal per row. Returns ``(n_filters,)``
    float64 on the same device: ``<w, 1>``, or with ``normalize`` ``<w, 1> / (||w|| sqrt(d))``
    clipped to [-1, 1] (0 for a zero filter). ``layer`` names the layer in errors.
    """
    if filters.dim() != 2 or filters.shape[0] == 0 or filters.shape[1] == 0:
        raise ValueError(f"layer {layer}: expected a non-empty (n_filters, fan_in) matrix, got {tuple(filters.shape)}")
    sums, norms = _row_reductions(filters, with_norms=normalize, layer=layer)
    if not normalize:
        return sums
    nonzero = norms > 0
    scale = torch.where(nonzero, norms * math.sqrt(filters.shape[1]), torch.ones_like(norms))
    return torch.where(nonzero, sums / scale, torch.zeros_like(sums)).clamp_(-1.0, 1.0)


def projection_mass(projections: torch.Tensor) -> float:
    """``P(p <= 0)``: the fraction of filters whose hyperplane does not face the positive orthant."""
    return float((projections <= 0).sum()) / projections.numel()


# -- summaries of one distribution of projections --------------------------------------------------
def _histogram(values: np.ndarray, bins: int) -> dict:
    """Equal-width bins on ``[-r, r]`` with ``r = max |p|``: symmetric about 0, so with an even
    ``bins`` 0 is an edge and the left half of the bins holds the negative projections."""
    radius = float(np.abs(values).max()) or 1.0
    counts, edges = np.histogram(values, bins=bins, range=(-radius, radius))
    return {"bin_edges": edges.tolist(), "counts": counts.tolist()}


def sign_test(projections: torch.Tensor) -> tuple[int, float]:
    """Exact two-sided binomial test of ``P(p <= 0) = 0.5``: ``(k = #{p <= 0}, p-value)``."""
    from scipy import stats  # here: every CLI's --help imports this module, and scipy.stats takes a while

    n = projections.numel()
    k = int((projections <= 0).sum())
    return k, float(stats.binomtest(k, n, 0.5, alternative="two-sided").pvalue)


def projection_summary(projections: torch.Tensor, *, bins: int = HISTOGRAM_BINS) -> dict:
    """Statistics of one layer's (or the pooled network's) projections ``(n_filters,)``.

    Returns plain values: ``mean``, ``std`` (population, ddof=0), ``median``, ``p5 p25 p75 p95``
    (linear interpolation), ``min``, ``max``, ``histogram`` (see :func:`_histogram`), ``mass``,
    ``n_filters``, ``n_zero`` (projections exactly 0), ``sign_test_k`` and ``sign_test_p``.
    """
    values = projections.detach().double().cpu().numpy()
    quantiles = np.percentile(values, [5, 25, 50, 75, 95])
    k, p_value = sign_test(projections)
    summary = {"mean": float(values.mean()), "std": float(values.std()), "median": float(quantiles[2])}
    summary |= {f"p{q}": float(v) for q, v in zip(PERCENTILES, quantiles[[0, 1, 3, 4]])}
    summary |= {
        "min": float(values.min()),
        "max": float(values.max()),
        "histogram": _histogram(values, bins),
        "mass": projection_mass(projections),
        "n_filters": int(values.size),
        "n_zero": int((values == 0).sum()),
        "sign_test_k": k,
        "sign_test_p": p_value,
    }
    return summary


def ks_test(projections: torch.Tensor, init_projections: torch.Tensor) -> dict:
    """Two-sample Kolmogorov-Smirnov test (two-sided, scipy's exact/asymptotic choice) between a
    layer's projections and the same layer's at initialization: ``{ks_stat, ks_p}``."""
    from scipy import stats

    with warnings.catch_warnings():
        # scipy warns when its exact method falls back to the asymptotic one (ties); both are valid.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ks_2samp(projections.detach().double().cpu().numpy(),
                                init_projections.detach().double().cpu().numpy())
    return {"ks_stat": float(result.statistic), "ks_p": float(result.pvalue)}


# -- distance from initialization ------------------------------------------------------------------
@dataclass(frozen=True)
class DistanceTerms:
    """Sufficient sums for the distances of one layer; they add up over layers for the network."""

    diff_sq: float  # ||W - W0||_F^2
    init_sq: float  # ||W0||_F^2
    weight_sq: float  # ||W||_F^2
    dot: float  # <W, W0>
    diff_max: float  # max |W - W0|
    init_max: float  # max |W0|

    def __add__(self, other: DistanceTerms) -> DistanceTerms:
        return DistanceTerms(
            self.diff_sq + other.diff_sq, self.init_sq + other.init_sq, self.weight_sq + other.weight_sq,
            self.dot + other.dot, max(self.diff_max, other.diff_max), max(self.init_max, other.init_max),
        )


def distance_terms(weights: torch.Tensor, init_weights: torch.Tensor, *, layer: str = "?") -> DistanceTerms:
    """Sums over all elements of ``weights`` and ``init_weights`` (same shape, any layout), in
    float64 over flat blocks. ``W - W0`` is formed explicitly, so a layer compared with itself
    has distance exactly 0."""
    if weights.shape != init_weights.shape:
        raise UserError(
            f"layer {layer} has shape {tuple(weights.shape)} but {tuple(init_weights.shape)} at initialization; "
            "the init snapshot belongs to another architecture or dataset"
        )
    flat = weights.detach().reshape(-1)
    flat_init = init_weights.detach().reshape(-1).to(flat.device)
    size = min(_CHUNK_ELEMENTS, flat.numel())
    w_buffer, w0_buffer, diff_buffer = (torch.empty(size, dtype=torch.float64, device=flat.device) for _ in range(3))
    totals, extremes = [], []
    for start in range(0, flat.numel(), _CHUNK_ELEMENTS):
        count = min(_CHUNK_ELEMENTS, flat.numel() - start)
        w = w_buffer[:count].copy_(flat[start:start + count])
        w0 = w0_buffer[:count].copy_(flat_init[start:start + count])
        diff = torch.sub(w, w0, out=diff_buffer[:count])
        totals.append(torch.stack([diff @ diff, w0 @ w0, w @ w, w @ w0]))
        extremes.append(torch.stack([*torch.aminmax(diff), *torch.aminmax(w0)]))  # cheaper than abs().max()
    sums, lows_highs = torch.stack(totals).sum(0).tolist(), torch.stack(extremes)
    # max |x| is at the smallest or the largest element
    diff_max = max(abs(lows_highs[:, 0].min().item()), abs(lows_highs[:, 1].max().item()))
    init_max = max(abs(lows_highs[:, 2].min().item()), abs(lows_highs[:, 3].max().item()))
    values = sums + [diff_max, init_max]
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"layer {layer} has non-finite weights (NaN or inf) in the snapshot or its initialization")
    return DistanceTerms(*values)


def distances(terms: DistanceTerms) -> dict:
    """Relative distances and cosine from :class:`DistanceTerms`:
    ``l2_dist = ||W - W0||_F / ||W0||_F``, ``l_inf_dist = max|W - W0| / max|W0|``,
    ``cosine = <W, W0> / (||W||_F ||W0||_F)`` (clipped to [-1, 1]); ``None`` where undefined."""
    l2 = math.sqrt(terms.diff_sq / terms.init_sq) if terms.init_sq > 0 else None
    l_inf = terms.diff_max / terms.init_max if terms.init_max > 0 else None
    denominator = math.sqrt(terms.weight_sq) * math.sqrt(terms.init_sq)
    cosine = max(-1.0, min(1.0, terms.dot / denominator)) if denominator > 0 else None
    return {"l2_dist": l2, "l_inf_dist": l_inf, "cosine": cosine}


def distance_from_init(weights: torch.Tensor, init_weights: torch.Tensor) -> dict:
    """``{l2_dist, l_inf_dist, cosine}`` of one layer from its initialization (see :func:`distances`)."""
    return distances(distance_terms(weights, init_weights))


# -- whole network ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerWeights:
    """One analysed layer: its module name and its filters ``(n_filters, fan_in)``."""

    name: str
    filters: torch.Tensor


def layer_statistics(
    filters: torch.Tensor,
    *,
    normalize: bool = False,
    init_filters: torch.Tensor | None = None,
    layer: str = "?",
    bins: int = HISTOGRAM_BINS,
) -> dict:
    """Statistics of one layer's filters ``(n_filters, fan_in)`` as a plain dict.

    Holds ``projections`` (list), ``fan_in`` and everything of :func:`projection_summary`; with
    ``init_filters`` (same shape) also ``l2_dist``, ``l_inf_dist``, ``cosine``, ``ks_stat``,
    ``ks_p``, ``init_mean`` and ``init_mass``.
    """
    return _analyse_layer(filters, init_filters, normalize=normalize, layer=layer, bins=bins).record


@dataclass
class _LayerResult:
    record: dict
    projections: torch.Tensor  # (n_filters,)
    init_projections: torch.Tensor | None = None  # (n_filters,)
    terms: DistanceTerms | None = None


def _analyse_layer(filters: torch.Tensor, init_filters: torch.Tensor | None, *, normalize: bool, layer: str,
                   bins: int) -> _LayerResult:
    projections = filter_projections(filters, normalize=normalize, layer=layer)
    record = {"projections": projections.tolist(), "fan_in": int(filters.shape[1])}
    record |= projection_summary(projections, bins=bins)
    if init_filters is None:
        return _LayerResult(record, projections)
    terms = distance_terms(filters, init_filters, layer=layer)
    init_projections = filter_projections(init_filters.to(filters.device), normalize=normalize,
                                          layer=f"{layer} (initialization)")
    record |= distances(terms) | ks_test(projections, init_projections)
    record |= {"init_mean": float(init_projections.mean()), "init_mass": projection_mass(init_projections)}
    return _LayerResult(record, projections, init_projections, terms)


def network_statistics(
    layers: Sequence[LayerWeights],
    *,
    normalize: bool = False,
    init: Mapping[str, torch.Tensor] | None = None,
    bins: int = HISTOGRAM_BINS,
) -> tuple[list[dict], dict]:
    """Per-layer records (in the order of ``layers``, see :func:`layer_statistics`) and the
    pooled ``net`` record.

    ``init`` maps layer names to initial filters; every layer must be in it. The net record has
    the summary of all projections together and ``n_layers``; with ``init`` also the distances
    over all analysed weights at once and the KS test of pooled vs pooled-init projections.
    """
    if not layers:
        raise UserError("the model has no layers to analyse (no conv layer with a kernel larger than 1x1); "
                        "try --include-1x1 or --with-linear")
    results = [_analyse_layer(layer.filters, _init_for(layer, init), normalize=normalize, layer=layer.name,
                              bins=bins) for layer in layers]
    return [r.record for r in results], _net_record(results, bins=bins)


def _init_for(layer: LayerWeights, init: Mapping[str, torch.Tensor] | None) -> torch.Tensor | None:
    if init is None:
        return None
    if layer.name not in init:
        raise UserError(f"layer {layer.name} is missing from the initialization; the init snapshot belongs to "
                        "another architecture")
    return init[layer.name]


def _net_record(results: Sequence[_LayerResult], *, bins: int) -> dict:
    pooled = torch.cat([r.projections for r in results])
    record = {"projections": pooled.tolist(), **projection_summary(pooled, bins=bins), "n_layers": len(results)}
    if results[0].terms is not None:
        terms = results[0].terms
        for result in results[1:]:
            terms = terms + result.terms
        init_projections = torch.cat([r.init_projections for r in results])
        record |= distances(terms) | ks_test(pooled, init_projections)
        record |= {"init_mean": float(init_projections.mean()), "init_mass": projection_mass(init_projections)}
    return record
