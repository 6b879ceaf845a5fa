"""DSMI(Z; X) against the inputs: the input cluster ids and DSMI on them, equal to dse-dsmi 1.1's
``diffusion_spectral_mutual_information(Z, X)``, analytic cases and the errors a CLI reports."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from metrics.dse import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from metrics.input_clusters import InputClusteringError, input_cluster_ids, minimum_samples
from utils.errors import UserError

dse_dsmi = pytest.importorskip("dse_dsmi")
TOLERANCE = 1e-6  # bits: the bar for equality with the reference


def blobs(n: int, shape: tuple[int, ...], k: int, *, separation: float, seed: int = 0):
    """``n`` inputs of ``shape`` in ``k`` equal Gaussian blobs (unit spread) and their blob labels."""
    rng = np.random.default_rng(seed)
    dim = math.prod(shape)
    centers = rng.normal(size=(k, dim))
    centers *= separation / np.linalg.norm(centers, axis=1, keepdims=True)
    labels = np.arange(n) % k
    return (centers[labels] + rng.normal(size=(n, dim))).reshape(n, *shape), labels


def representation(inputs: np.ndarray, width: int = 24, seed: int = 0) -> np.ndarray:
    """A random one-layer ReLU network's features of the flattened inputs: Z that depends on X, scaled to a
    mean norm of 15 so that the default sigma = 10 sees its structure."""
    flat = inputs.reshape(len(inputs), -1).astype(np.float64)
    features = np.maximum(flat @ np.random.default_rng(seed).normal(size=(flat.shape[1], width)), 0.0)
    return features * 15.0 / np.linalg.norm(features, axis=1).mean()


def digits(n: int) -> np.ndarray:
    """The first ``n`` of scikit-learn's bundled handwritten digits, (n, 1, 8, 8) float32 in [0, 1]."""
    return (load_digits().images[:n, None] / 16.0).astype(np.float32)


PROBES = {  # N from 200 to 1500; inputs of 64, 192 and 64 values, 2-D, 4-D, float64 and float32
    "blobs_200x64": lambda: blobs(200, (64,), 6, separation=10.0, seed=1)[0],
    "images_600x3x8x8": lambda: blobs(600, (3, 8, 8), 12, separation=8.0, seed=2)[0].astype(np.float32),
    "digits_1500x1x8x8": lambda: digits(1500),
}


@pytest.fixture(scope="module", params=sorted(PROBES))
def probe(request):
    """(inputs, Z, the reference's DSMI(Z; X), the reference's cluster ids) of one probe, computed once."""
    inputs = PROBES[request.param]()
    z = representation(inputs, seed=len(inputs))
    with warnings.catch_warnings():  # a disconnected kNN graph; the package silences every warning itself
        warnings.simplefilter("ignore")
        value, reference_ids = dse_dsmi.diffusion_spectral_mutual_information(z, inputs.reshape(len(inputs), -1))
    return inputs, z, float(value), np.asarray(reference_ids).reshape(-1)


# -- oracle equality with dse-dsmi -----------------------------------------------------------------
def test_input_cluster_ids_are_the_reference_s(probe):
    inputs, _, _, reference_ids = probe
    ids = input_cluster_ids(inputs)
    assert ids.shape == (len(inputs),) and ids.dtype == np.int64
    assert np.array_equal(ids, reference_ids)
    assert set(np.unique(ids)) == set(range(10))


def test_dsmi_on_the_input_ids_equals_the_reference(probe):
    inputs, z, reference_value, _ = probe
    value = diffusion_spectral_mutual_information(z, input_cluster_ids(inputs))
    assert value == pytest.approx(reference_value, abs=TOLERANCE)
    assert value > 0.05  # Z depends on X: a case where the equality says something


def test_other_cluster_counts_equal_the_reference():
    inputs = digits(400)
    z = representation(inputs, seed=3)
    for n_clusters in (2, 5, 16):
        value, reference_ids = dse_dsmi.diffusion_spectral_mutual_information(z, inputs.reshape(400, -1),
                                                                               n_clusters=n_clusters)
        ids = input_cluster_ids(inputs, n_clusters=n_clusters)
        assert np.array_equal(ids, np.asarray(reference_ids).reshape(-1))
        assert diffusion_spectral_mutual_information(z, ids) == pytest.approx(float(value), abs=TOLERANCE)


def test_tensors_give_the_ids_of_their_arrays():
    inputs = digits(300)
    assert np.array_equal(input_cluster_ids(torch.from_numpy(inputs)), input_cluster_ids(inputs))
    assert np.array_equal(input_cluster_ids(torch.from_numpy(inputs).half()),
                          input_cluster_ids(inputs.astype(np.float16).astype(np.float32)))


def test_one_value_per_input_follows_the_reference_s_binning():
    # a single scalar per input: the package bins it into n_clusters equal bins instead of clustering
    values = np.random.default_rng(0).uniform(-1, 1, size=(250, 1))
    z = representation(values, seed=4)
    reference_value, reference_ids = dse_dsmi.diffusion_spectral_mutual_information(z, values)
    ids = input_cluster_ids(values)
    assert np.array_equal(ids, np.asarray(reference_ids).reshape(-1))
    assert diffusion_spectral_mutual_information(z, ids) == pytest.approx(float(reference_value), abs=TOLERANCE)


# -- analytic cases --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def separated():
    """400 inputs in 10 far-apart blobs and their cluster ids."""
    inputs, labels = blobs(400, (32,), 10, separation=50.0, seed=5)
    return inputs, labels, input_cluster_ids(inputs)


def test_well_separated_inputs_are_clustered_into_their_blobs(separated):
    _, labels, ids = separated
    assert adjusted_rand_score(labels, ids) == 1.0


def test_z_equal_to_the_cluster_one_hot_gives_dsmi_near_dse(separated):
    _, _, ids = separated
    one_hot = np.eye(10)[ids]
    # a narrow kernel sees ten separate points: DSE = log2 10, and every class alone has DSE 0
    narrow = diffusion_spectral_mutual_information(one_hot, ids, sigma=0.1)
    assert diffusion_spectral_entropy(one_hot, sigma=0.1) == pytest.approx(math.log2(10), abs=1e-6)
    assert narrow == pytest.approx(math.log2(10), abs=0.1)
    # the default kernel blurs them (DSE ~0.1 bits): DSMI still recovers all of it
    dse = diffusion_spectral_entropy(one_hot)
    assert diffusion_spectral_mutual_information(one_hot, ids) == pytest.approx(dse, rel=0.1)


def test_z_independent_of_x_gives_about_zero(separated):
    _, _, ids = separated
    z = np.random.default_rng(6).uniform(0, 8, size=(400, 16))
    assert diffusion_spectral_entropy(z) > 4.0
    assert abs(diffusion_spectral_mutual_information(z, ids)) < 0.1


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,n_clusters", [(9, 3), (10, 10), (5, 2), (30, 40)])
def test_too_few_samples_is_one_clear_error(n, n_clusters):
    inputs = np.random.default_rng(0).normal(size=(n, 2, 3))
    with pytest.raises(InputClusteringError, match=f"cannot cluster {n} input samples into {n_clusters} clusters") \
            as raised:
        input_cluster_ids(inputs, n_clusters=n_clusters)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, UserError)
    assert "\n" not in str(raised.value)


def test_the_fewest_samples_accepted_are_clustered():
    for n_clusters in (3, 10):
        n = minimum_samples(n_clusters)
        ids = input_cluster_ids(np.random.default_rng(1).normal(size=(n, 6)), n_clusters=n_clusters)
        assert len(np.unique(ids)) == n_clusters


@pytest.mark.parametrize("n_clusters", [1, 0, -3, 2.5, True])
def test_fewer_than_two_clusters_is_an_error(n_clusters):
    with pytest.raises(InputClusteringError, match="must be an integer of at least 2"):
        input_cluster_ids(np.zeros((50, 4)), n_clusters=n_clusters)


def test_bad_inputs_are_errors():
    with pytest.raises(InputClusteringError, match="NaN"):
        input_cluster_ids(np.full((50, 4), np.nan))
    with pytest.raises(InputClusteringError, match="shape"):
        input_cluster_ids(np.zeros((0, 4)))
    with pytest.raises(InputClusteringError, match="numeric"):
        input_cluster_ids(np.array([["a", "b"]] * 20))
    with pytest.raises(UserError, match="one reference row per embedding"):
        diffusion_spectral_mutual_information(np.zeros((60, 2)), input_cluster_ids(np.eye(50)))
