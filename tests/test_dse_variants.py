"""dse-dsmi 1.1's other estimators by name (CSE/CSMI, matrix-entry entropy and MI, ASE/ASMI with the
Gaussian, anisotropic and kNN adjacencies): equality with the package, analytic cases, names and errors."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from metrics.dse import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from metrics.dse_variants import (
    ADJACENCY_KERNELS,
    VARIANT_NAMES,
    adjacency_spectral_entropy,
    dse_variants,
    knn_adjacency,
    resolve_variants,
    variant_keys,
)
from metrics.input_clusters import input_cluster_ids
from utils.errors import UserError

dse_dsmi = pytest.importorskip("dse_dsmi")
TOLERANCE = 1e-6  # bits: the bar for equality with the reference
EVERY_VARIANT = ("cse", "csmi", "matrix_entry", "matrix_entry_mi", "ase", "asmi")
ENTROPY_KEYS = ("cse", "matrix_entry", "ase_gaussian", "ase_anisotropic", "ase_knn")
MI_NAMES = ("csmi", "matrix_entry_mi", "asmi_gaussian", "asmi_anisotropic", "asmi_knn")


# -- the package's values, one per key -------------------------------------------------------------
def _quiet(function, *args, **kwargs) -> float:
    """The package's value; it divides by zero on constant dimensions (CSE) and clusters disconnected graphs."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        value = function(*args, **kwargs)
    return float(value[0] if isinstance(value, tuple) else value)


REFERENCE_ENTROPIES = {  # key -> the package's estimator and its options
    "cse": (dse_dsmi.diffusion_spectral_entropy, {"classic_shannon_entropy": True}),
    "matrix_entry": (dse_dsmi.diffusion_spectral_entropy, {"matrix_entry_entropy": True}),
    "ase_gaussian": (dse_dsmi.adjacency_spectral_entropy, {}),
    "ase_anisotropic": (dse_dsmi.adjacency_spectral_entropy, {"anisotropic": True}),
    "ase_knn": (dse_dsmi.adjacency_spectral_entropy, {"use_knn": True}),
}
REFERENCE_MIS = {  # MI name -> the package's estimator and its options (its ASMI has no knn: always 10)
    "csmi": (dse_dsmi.diffusion_spectral_mutual_information, {"classic_shannon_entropy": True}),
    "matrix_entry_mi": (dse_dsmi.diffusion_spectral_mutual_information, {"matrix_entry_entropy": True}),
    "asmi_gaussian": (dse_dsmi.adjacency_spectral_mutual_information, {}),
    "asmi_anisotropic": (dse_dsmi.adjacency_spectral_mutual_information, {"anisotropic": True}),
    "asmi_knn": (dse_dsmi.adjacency_spectral_mutual_information, {"use_knn": True}),
}


def reference_values(z, labels, inputs, *, keys=None, sigma: float = 10.0, knn: int = 10, max_n: int = 10000,
                     seed: int = 0) -> dict[str, float]:
    """The package's value of every key (or of ``keys``); ``*_x`` clusters the flattened ``inputs`` inside it."""
    values = {}
    for key, (function, options) in REFERENCE_ENTROPIES.items():
        if keys is not None and key not in keys:
            continue
        extra = {"max_N": max_n, "random_seed": seed}
        if key != "cse":
            extra["gaussian_kernel_sigma"] = sigma
        if key == "ase_knn":
            extra["knn"] = knn
        values[key] = _quiet(function, z, **options, **extra)
    for name, (function, options) in REFERENCE_MIS.items():
        for suffix, reference in (("y", labels), ("x", inputs.reshape(len(inputs), -1))):
            if keys is None or f"{name}_{suffix}" in keys:
                values[f"{name}_{suffix}"] = _quiet(function, z, reference, gaussian_kernel_sigma=sigma,
                                                    random_seed=seed, **options)
    return values


# -- probes ----------------------------------------------------------------------------------------
def probe(n: int, k: int, input_shape: tuple[int, ...], *, width: int, seed: int):
    """Inputs in ``k`` blobs, their blob labels, and Z: a random ReLU layer of the inputs (mean norm 12)."""
    rng = np.random.default_rng(seed)
    dim = math.prod(input_shape)
    centers = rng.normal(size=(k, dim))
    centers *= 10.0 / np.linalg.norm(centers, axis=1, keepdims=True)
    labels = np.arange(n) % k
    inputs = centers[labels] + rng.normal(size=(n, dim))
    features = np.maximum(inputs @ rng.normal(size=(dim, width)), 0.0)
    return inputs.reshape(n, *input_shape), labels, features * 12.0 / np.linalg.norm(features, axis=1).mean()


PROBES = {  # every class and input cluster has at least knn = 10 members (the kNN ASMI needs it)
    "n160_d8": dict(n=160, k=4, input_shape=(16,), width=8, seed=0),
    "n240_d32_images": dict(n=240, k=5, input_shape=(1, 6, 6), width=32, seed=3),
    "n320_d64": dict(n=320, k=6, input_shape=(48,), width=64, seed=2),
}


@pytest.fixture(scope="module", params=sorted(PROBES))
def measured(request):
    inputs, labels, z = probe(**PROBES[request.param])
    ids = input_cluster_ids(inputs)
    assert min(np.bincount(ids).min(), np.bincount(labels).min()) >= 10
    return z, labels, inputs, ids


# -- oracle equality with dse-dsmi -----------------------------------------------------------------
def test_every_variant_equals_the_reference(measured):
    z, labels, inputs, ids = measured
    values = dse_variants(z, EVERY_VARIANT, labels=labels, input_ids=ids)
    expected = reference_values(z, labels, inputs)
    assert tuple(values) == variant_keys(EVERY_VARIANT) and set(values) == set(expected)
    wrong = {key: (values[key], expected[key]) for key in values if abs(values[key] - expected[key]) > TOLERANCE}
    assert not wrong
    assert max(abs(values[f"{name}_y"]) for name in MI_NAMES) > 0.05  # labels carry information here


def test_other_sigma_knn_and_subsampling_equal_the_reference():
    inputs, labels, z = probe(**PROBES["n240_d32_images"])
    ids = input_cluster_ids(inputs)
    # the package's ASMI always uses knn = 10, so asmi_knn is compared at the default only (above)
    names = ("csmi", "matrix_entry_mi", "asmi_gaussian", "asmi_anisotropic", "ase_knn")
    values = dse_variants(z, names, labels=labels, input_ids=ids, sigma=4.0, knn=6, seed=3, repetitions=2)
    flat = inputs.reshape(len(inputs), -1)
    expected = {key: _quiet(REFERENCE_MIS[key[:-2]][0], z, labels if key.endswith("_y") else flat,
                            gaussian_kernel_sigma=4.0, random_seed=3, num_repetitions=2, **REFERENCE_MIS[key[:-2]][1])
                for key in values if key != "ase_knn"}
    expected |= reference_values(z, labels, inputs, keys={"ase_knn"}, knn=6)
    for key, value in values.items():
        assert value == pytest.approx(expected[key], abs=TOLERANCE), key
    subsampled = dse_variants(z, ("cse", "matrix_entry", "ase"), max_n=150, seed=7, sigma=4.0, knn=6)
    expected = reference_values(z, labels, inputs, keys=set(subsampled), sigma=4.0, knn=6, max_n=150, seed=7)
    for key, value in subsampled.items():
        assert value == pytest.approx(expected[key], abs=TOLERANCE), key


def test_float32_tensors_equal_the_reference_on_their_values():
    inputs, labels, z = probe(**PROBES["n160_d8"])
    z32 = z.astype(np.float32)
    ids = input_cluster_ids(inputs)
    values = dse_variants(torch.from_numpy(z32), ("cse", "matrix_entry", "ase", "asmi_anisotropic"),
                          labels=torch.from_numpy(labels), input_ids=ids)
    expected = reference_values(z32.astype(np.float64), labels, inputs, keys=set(values))
    # CSE bins in the input's dtype, as the package does
    expected["cse"] = _quiet(dse_dsmi.diffusion_spectral_entropy, z32, classic_shannon_entropy=True)
    for key, value in values.items():
        assert value == pytest.approx(expected[key], abs=TOLERANCE), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_embeddings_on_a_gpu_give_the_reference_values():
    inputs, labels, z = probe(**PROBES["n160_d8"])
    ids = input_cluster_ids(inputs)
    values = dse_variants(torch.from_numpy(z).cuda(), EVERY_VARIANT, labels=labels, input_ids=ids)
    expected = reference_values(z, labels, inputs)
    for key, value in values.items():
        assert value == pytest.approx(expected[key], abs=TOLERANCE), key


def test_the_kernel_adjacency_entropy_function_equals_the_reference():
    _, _, z = probe(**PROBES["n160_d8"])
    for kernel, options in zip(ADJACENCY_KERNELS, ({}, {"anisotropic": True}, {"use_knn": True, "knn": 4})):
        value = adjacency_spectral_entropy(z, kernel=kernel, sigma=6.0, knn=4)
        expected = _quiet(dse_dsmi.adjacency_spectral_entropy, z, gaussian_kernel_sigma=6.0, **options)
        assert value == pytest.approx(expected, abs=TOLERANCE), kernel


# -- analytic cases --------------------------------------------------------------------------------
def tight_clusters(sizes: list[int], *, dim: int = 8, seed: int = 0):
    """Clusters of the given sizes, spread 1e-4, 500 apart: block-diagonal kernels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(sizes), dim))
    centers *= 500.0 / np.linalg.norm(centers, axis=1, keepdims=True)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return centers[labels] + 1e-4 * rng.normal(size=(len(labels), dim)), labels


def shannon_bits(weights) -> float:
    p = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    return float(-np.sum(p * np.log2(p)))


def test_identical_points():
    n = 30
    values = dse_variants(np.tile([[1.0, -2.0, 3.0]], (n, 1)), ("matrix_entry", "ase"))
    # P = 1/N everywhere: N^2 equal entries; every adjacency is all ones: one nonzero eigenvalue
    assert values["matrix_entry"] == pytest.approx(2 * math.log2(n), abs=1e-9)
    for kernel in ADJACENCY_KERNELS:
        assert abs(values[f"ase_{kernel}"]) < 1e-9, kernel


def test_tight_clusters_give_the_entropy_of_their_block_spectra():
    sizes = [10, 20, 40, 10]
    points, labels = tight_clusters(sizes)
    values = dse_variants(points, ["ase"])
    # G: all-ones blocks, one eigenvalue = the block's size each; K: eigenvalue 1 per block
    assert values["ase_gaussian"] == pytest.approx(shannon_bits(sizes), abs=1e-6)
    assert values["ase_anisotropic"] == pytest.approx(2.0, abs=1e-6)
    # clusters of exactly knn = 10 points: the kNN adjacency is their all-ones blocks too
    equal, labels = tight_clusters([10] * 8, seed=1)
    assert dse_variants(equal, ["ase_knn"])["ase_knn"] == pytest.approx(3.0, abs=1e-6)
    # each class alone has ASE 0 and random subsets of its size meet (nearly) every class: ASMI = log2 k
    equal, labels = tight_clusters([20] * 4, seed=2)
    mutual = dse_variants(equal, ["asmi_gaussian", "asmi_anisotropic"], labels=labels)
    assert mutual["asmi_gaussian_y"] == pytest.approx(2.0, abs=0.1)
    assert mutual["asmi_anisotropic_y"] == pytest.approx(2.0, abs=0.1)


def test_anisotropic_ase_and_asmi_are_dse_and_dsmi_at_t_1():
    _, labels, z = probe(**PROBES["n160_d8"])
    values = dse_variants(z, ["ase_anisotropic", "asmi_anisotropic"], labels=labels)
    assert values["ase_anisotropic"] == pytest.approx(diffusion_spectral_entropy(z), abs=1e-12)
    assert values["asmi_anisotropic_y"] == pytest.approx(diffusion_spectral_mutual_information(z, labels), abs=1e-12)


def test_knn_adjacency_counts_the_point_itself_and_keeps_ties():
    line = np.array([[0.0], [1.0], [2.0], [4.0]])
    expected = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=np.float64)
    assert np.array_equal(knn_adjacency(line, knn=2), expected)  # point 1: 0 and 2 tie at distance 1


# -- names, keys and errors ------------------------------------------------------------------------
def test_groups_expand_in_order_without_duplicates():
    assert resolve_variants(["ase", "cse", "ase_knn"]) == ("ase_gaussian", "ase_anisotropic", "ase_knn", "cse")
    assert resolve_variants("asmi") == ("asmi_gaussian", "asmi_anisotropic", "asmi_knn")
    assert set(resolve_variants(VARIANT_NAMES)) == set(ENTROPY_KEYS) | set(MI_NAMES)


def test_keys_follow_the_references_given():
    points, labels = tight_clusters([12, 12])
    assert variant_keys(["cse", "csmi"], inputs=False) == ("cse", "csmi_y")
    assert tuple(dse_variants(points, ["cse", "csmi"], labels=labels)) == ("cse", "csmi_y")
    assert tuple(dse_variants(points, ["csmi"], input_ids=labels)) == variant_keys(["csmi"], labels=False)


def test_user_errors():
    points, labels = tight_clusters([12, 12])
    with pytest.raises(UserError, match="unknown DSE variant 'dse'; choose from cse csmi"):
        dse_variants(points, ["dse"])
    with pytest.raises(UserError, match="csmi is a mutual information: give labels or input cluster ids"):
        dse_variants(points, ["cse", "csmi"])
    with pytest.raises(UserError, match="one of the labels per embedding: got 24 embeddings and 23"):
        dse_variants(points, ["csmi"], labels=labels[:-1])
    with pytest.raises(UserError, match="knn=10 points, got 4"):
        dse_variants(points, ["asmi_knn"], labels=np.repeat([0, 1, 2], [4, 10, 10]))
    for bad in ({"sigma": 0.0}, {"knn": 0}, {"repetitions": 0}, {"max_n": 0}):
        with pytest.raises(UserError):
            dse_variants(points, ["ase"], **bad)
    with pytest.raises(UserError, match="NaN"):
        dse_variants(np.full((5, 2), np.nan), ["cse"])
