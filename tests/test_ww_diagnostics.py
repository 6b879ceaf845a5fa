"""WeightWatcher's per-layer diagnostics and init distances (metrics/mp_fit.py, metrics/ww_diagnostics.py).

Oracle: weightwatcher 0.7.7 ``analyze(randomize=True, mp_fit=True)`` and ``distances()`` on two small
seeded models (a Linear-only MLP and a tiny conv net), run once per module. Units: WeightWatcher's
eigenvalues are ``s^2`` (conv layers ``s^2 / 2``), ours ``s^2 / N``; ``scale`` converts.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from torch import nn

from metrics.mp_fit import fit_marchenko_pastur, linear_kde
from metrics.spectral import layer_spectrum, shuffled_spectrum
from metrics.ww_diagnostics import (
    DIAGNOSTICS,
    INIT_DISTANCES,
    correlation_traps,
    init_distances,
    layer_diagnostics,
    log_alpha_norm,
    mp_diagnostics,
    randomized_eigenvalues,
    training_warning,
    uncentered_cka,
)
from utils.errors import UserError

WW_SEED = 7  # NumPy's global seed before analyze(): its randomization draws from it


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _power_law_matrix(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Singular values 1/k: a heavy-tailed spectrum (alpha < 2)."""
    g = _generator(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g))
    k = min(rows, cols)
    return (u[:, :k] / torch.arange(1, k + 1)) @ v[:, :k].T


def _with_large_entries(weight: torch.Tensor, seed: int, count: int, size: float) -> torch.Tensor:
    """``count`` entries set to ``size`` standard deviations: they survive a shuffle (correlation traps)."""
    weight = weight.clone()
    weight.view(-1)[torch.randperm(weight.numel(), generator=_generator(seed))[:count]] = size * weight.std()
    return weight


def _mlp() -> nn.Module:
    """128x256 with traps (1 randomized draw), a square heavy-tailed 48x48, a Gaussian 40x64, a 10-unit head."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(64, 40), nn.ReLU(),
                          nn.Linear(40, 10))
    with torch.no_grad():
        model[0].weight.copy_(_with_large_entries(torch.randn(128, 256, generator=_generator(1)), 2, 4, 60.0))
        model[2].weight.copy_(_power_law_matrix(48, 48, 3))
        model[4].weight.copy_(0.1 * torch.randn(40, 64, generator=_generator(4)))
    return model


def _convnet() -> nn.Module:
    """3->16 (27 eigenvalues, 5 draws), 16->16 with traps, 16->8 (slices transposed, 5 draws, traps), a head."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.Conv2d(16, 8, 3),
                          nn.ReLU(), nn.Flatten(), nn.Linear(8, 10))
    with torch.no_grad():
        model[2].weight.copy_(_with_large_entries(model[2].weight, 5, 3, 15.0))
        model[4].weight.copy_(_with_large_entries(model[4].weight, 6, 2, 20.0))
    return model


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [module.weight.detach() for module in model.modules() if isinstance(module, (nn.Linear, nn.Conv2d))]


def _moved(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every parameter moved by noise (its 'initialization')."""
    build = _mlp if isinstance(model[0], nn.Linear) else _convnet
    moved = build()
    with torch.no_grad():
        for parameter in moved.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=_generator(seed)))
    return moved


@pytest.fixture(scope="module")
def watched():
    """WeightWatcher run once per model: ``{name: (model, init, details, {method: delta_W list})}``."""
    weightwatcher = pytest.importorskip("weightwatcher")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    state = np.random.get_state()
    results = {}
    try:
        for name, build in (("mlp", _mlp), ("convnet", _convnet)):
            model = build()
            init = _moved(model, seed=11)  # the distances are symmetric; the planted spectra stay in `model`
            np.random.seed(WW_SEED)
            details = weightwatcher.WeightWatcher(model=model).analyze(randomize=True, mp_fit=True, vectors=False,
                                                                       detX=False)
            distances = {method: list(weightwatcher.WeightWatcher().distances(model, init, method=method)[2]["delta_W"])
                         for method in ("euclidean", "raw", "cka")}
            results[name] = (model, init, details, distances)
    finally:
        np.random.set_state(state)
    return results


def _eigenvalues(record: dict) -> torch.Tensor:
    return torch.tensor(record["eigenvalues"], dtype=torch.float64)


def _layers(watched, name):
    """``(weight, our record, their row, scale)`` per layer, aligned on WeightWatcher's rows."""
    model, _, details, _ = watched[name]
    weights = _weights(model)
    assert len(details) == len(weights)
    for weight, (_, theirs) in zip(weights, details.iterrows()):
        ours = layer_spectrum(weight, name="x")
        assert (ours["N"], ours["M"], ours["num_evals"]) == (theirs["N"], theirs["M"], theirs["num_evals"])
        yield weight, ours, theirs, ours["N"] * (0.5 if weight.dim() == 4 else 1.0)


# -- against WeightWatcher --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "convnet"])
def test_mp_fit_equals_weightwatcher(watched, name):
    """Counts exact; scale-free values and edges (after the unit factor) within 1e-9 relative."""
    spikes = []
    for _, ours, theirs, scale in _layers(watched, name):
        fit = mp_diagnostics(_eigenvalues(ours), ours["N"], ours["M"])
        assert fit["num_spikes"] == theirs["num_spikes"]
        assert fit["mp_softrank"] == pytest.approx(theirs["mp_softrank"], rel=1e-9)
        assert fit["sigma_mp"] == pytest.approx(theirs["sigma_mp"], rel=1e-9)
        assert fit["bulk_max"] * scale == pytest.approx(theirs["bulk_max"], rel=1e-9)
        assert fit["bulk_min"] * scale == pytest.approx(theirs["bulk_min"], rel=1e-9, abs=1e-12)
        spikes.append(fit["num_spikes"])
    assert max(spikes) > 0 and min(spikes) == 0


@pytest.mark.parametrize("name", ["mlp", "convnet"])
def test_correlation_traps_equal_weightwatcher_given_its_draws(watched, name):
    """Replaying WeightWatcher's draws from NumPy's global generator (per layer: its pooled draws for
    the traps, then one draw for rand_distance) gives the same randomized spectra: counts exact,
    edges within 1e-9 relative. The square heavy-tailed layer covers the quarter-circle branch."""
    replay = np.random.RandomState(WW_SEED)
    traps = []
    for weight, _, theirs, scale in _layers(watched, name):
        ours = correlation_traps(weight, rng=replay)
        randomized_eigenvalues(weight, rng=replay, replicas=1)  # its rand_distance draw
        assert ours["num_traps"] == theirs["num_traps"]
        assert ours["rand_bulk_max"] * scale == pytest.approx(theirs["rand_bulk_max"], rel=1e-9)
        assert max(ours["rand_eigenvalues"]) * scale == pytest.approx(theirs["max_rand_eval"], rel=1e-9)
        traps.append(ours["num_traps"])
    assert max(traps) > 0 and min(traps) == 0


def test_warning_and_log_alpha_norm_equal_weightwatcher(watched):
    """Where alpha is WeightWatcher's (20+ eigenvalues): the same flag, and log_alpha_norm within 1e-9
    once the unit factor is added (``alpha * log10(scale)``)."""
    flags = set()
    for name in watched:
        for _, ours, theirs, scale in _layers(watched, name):
            if ours["num_evals"] < 20:
                continue
            assert ours["alpha"] == pytest.approx(theirs["alpha"], rel=1e-9)
            assert training_warning(ours["alpha"]) == theirs["warning"]
            value = log_alpha_norm(_eigenvalues(ours), ours["alpha"])
            assert value + ours["alpha"] * math.log10(scale) == pytest.approx(theirs["log_alpha_norm"], abs=1e-9)
            flags.add(theirs["warning"])
    assert flags == {"", "over-trained", "under-trained"}


@pytest.mark.parametrize("name", ["mlp", "convnet"])
def test_init_distances_equal_weightwatcher(watched, name):
    """euclidean / raw / cka within 1e-6 relative (WeightWatcher computes them in float32)."""
    model, init, _, distances = watched[name]
    for i, (weight, init_weight) in enumerate(zip(_weights(model), _weights(init))):
        ours = init_distances(weight, init_weight)
        assert ours["euclidean"] == pytest.approx(distances["euclidean"][i], rel=1e-6)
        assert ours["frobenius_dist"] == pytest.approx(distances["raw"][i], rel=1e-6)
        assert ours["cka"] == pytest.approx(distances["cka"][i], rel=1e-6)
        relative = layer_spectrum(weight, init_weight=init_weight, name="x")["l2_dist"]
        assert ours["frobenius_dist"] == pytest.approx(relative * float(init_weight.double().norm()), rel=1e-9)


# -- analytic cases ---------------------------------------------------------------------------------
def _gaussian(rows: int, cols: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, cols, generator=_generator(seed), dtype=torch.float64)


def test_gaussian_bulk_and_planted_spikes():
    """A 400x100 Gaussian matrix: no spike, the MP edge (1 + sqrt(1/4))^2 within 5%; three planted
    rank-one signals far above the edge: three spikes; scaling the eigenvalues scales the edges only."""
    noise = _gaussian(400, 100, seed=1)
    clean = mp_diagnostics(_eigenvalues(layer_spectrum(noise)), 400, 100)
    assert clean["num_spikes"] == 0 and clean["mp_softrank"] == pytest.approx(1.0, abs=0.1)
    assert clean["bulk_max"] == pytest.approx(1.5 ** 2, rel=0.05)
    u, v = _gaussian(400, 3, seed=2), _gaussian(3, 100, seed=3)
    signal = noise + 0.5 * u @ v
    eigenvalues = _eigenvalues(layer_spectrum(signal))
    spiked = mp_diagnostics(eigenvalues, 400, 100)
    assert spiked["num_spikes"] == 3 and spiked["mp_softrank"] < 0.5
    scaled = mp_diagnostics(8.0 * eigenvalues, 400, 100)  # a power of 2: the rescaled spectrum is the same
    assert scaled["num_spikes"] == 3 and scaled["mp_softrank"] == spiked["mp_softrank"]
    assert scaled["bulk_max"] == pytest.approx(8.0 * spiked["bulk_max"], rel=1e-12)
    assert fit_marchenko_pastur(np.zeros(10), 20, 10) is None and fit_marchenko_pastur([], 20, 10) is None


def test_linear_kde_is_a_triangle_kernel_density():
    points = np.linspace(-1, 2, 3001)
    density = linear_kde(np.array([0.0, 1.0]), points, bandwidth=0.1)
    assert density.sum() * (points[1] - points[0]) == pytest.approx(1.0, abs=1e-6)
    assert density[np.argmin(np.abs(points - 1.0))] == pytest.approx(5.0)  # (1 / 2 samples) / 0.1
    assert density[np.argmin(np.abs(points - 0.5))] == 0.0


def test_traps_are_large_entries_that_survive_the_shuffle():
    """Three entries at 60 standard deviations: three traps in every randomized draw; none without them."""
    noise = _gaussian(200, 100, seed=4)
    planted = _with_large_entries(noise, seed=5, count=3, size=60.0)
    assert correlation_traps(noise, seed=0)["num_traps"] == 0
    traps = correlation_traps(planted, seed=0)
    assert traps["num_traps"] == 3 and len(traps["rand_eigenvalues"]) == 100  # 100 eigenvalues: one draw
    assert correlation_traps(planted, seed=0) == traps  # seeded
    small = _with_large_entries(_gaussian(90, 30, seed=6), seed=7, count=1, size=60.0)
    pooled = correlation_traps(small, seed=1)
    assert len(pooled["rand_eigenvalues"]) == 5 * 30 and pooled["num_traps"] == 5  # five draws, one trap each


def test_randomized_eigenvalues_keep_each_matrix_norm():
    conv = torch.randn(8, 16, 3, 3, generator=_generator(8), dtype=torch.float64)
    eigenvalues = randomized_eigenvalues(conv, rng=np.random.default_rng(0))
    assert eigenvalues.numel() == 5 * 9 * 8  # 72 eigenvalues < 100: five draws of the 9 slices
    assert float(eigenvalues.sum()) == pytest.approx(5 * float((conv ** 2).sum()) / 16, rel=1e-12)
    assert torch.all(eigenvalues[1:] >= eigenvalues[:-1])


def test_warning_thresholds_and_log_alpha_norm():
    assert [training_warning(a) for a in (1.99, 2.0, 4.0, 6.0, 6.01)] == \
        ["over-trained", "", "", "", "under-trained"]
    assert training_warning(None) is None and training_warning(float("nan")) is None
    assert log_alpha_norm(torch.tensor([0.0, 1.0, 2.0, 3.0]), 2.0) == pytest.approx(math.log10(14.0), abs=1e-12)
    assert log_alpha_norm(torch.tensor([1e10, 1e10]), 40.0) == pytest.approx(400 + math.log10(2), abs=1e-9)
    assert log_alpha_norm(torch.zeros(3), 2.0) is None and log_alpha_norm(torch.ones(3), None) is None


def test_init_distances_analytic_cases():
    conv = torch.randn(16, 8, 3, 3, generator=_generator(9), dtype=torch.float64)
    same = init_distances(conv, conv.clone())
    assert same["euclidean"] == 0.0 and same["frobenius_dist"] == 0.0 and same["cka"] == pytest.approx(1.0)
    doubled = init_distances(2 * conv, conv)
    assert doubled["cka"] == pytest.approx(1.0)  # scale-free
    assert doubled["frobenius_dist"] == pytest.approx(float(conv.norm()), rel=1e-12)
    slices = conv.permute(2, 3, 0, 1).reshape(9, 16, 8)
    assert doubled["euclidean"] == pytest.approx(float(slices.norm(dim=(1, 2)).mean()), rel=1e-12)
    # Wide matrices use the row Gram matrices: the same value as the definition.
    a, b = _gaussian(5, 40, seed=10), _gaussian(5, 40, seed=11)
    direct = torch.linalg.matrix_norm(a.T @ b) / torch.sqrt(torch.linalg.matrix_norm(a.T @ a) *
                                                             torch.linalg.matrix_norm(b @ b.T))
    assert float(uncentered_cka(a[None], b[None])[0]) == pytest.approx(float(direct), rel=1e-12)
    with pytest.raises(UserError, match="shape"):
        init_distances(conv, torch.zeros(16, 8, 1, 1), name="conv")


def test_layer_diagnostics_record():
    weight = torch.randn(32, 16, 3, 3, generator=_generator(12))
    record = layer_spectrum(weight, name="features.0")
    result = layer_diagnostics(weight, record, init_weight=0.5 * weight, seed=3, name="features.0")
    assert set(result) == {*DIAGNOSTICS, *INIT_DISTANCES, "rand_eigenvalues"}
    assert result == layer_diagnostics(weight, record, init_weight=0.5 * weight, seed=3, name="features.0")
    assert result["warning"] == training_warning(record["alpha"])
    zero = layer_diagnostics(torch.zeros(6, 4), layer_spectrum(torch.zeros(6, 4)), name="zero")
    assert all(zero[key] is None for key in DIAGNOSTICS)


def test_a_single_matrix_layer_takes_its_traps_from_the_rand_distance_draw():
    """A linear layer with 100 or more eigenvalues: the permutation behind rand_distance is the traps'
    randomization too (one SVD fewer), and the planted traps survive it; a conv layer draws its own."""
    planted = _with_large_entries(_gaussian(200, 120, seed=4), seed=5, count=3, size=60.0).float()
    shuffled = shuffled_spectrum(planted, seed=2, name="fc")
    record = layer_spectrum(planted, seed=2, name="fc", randomized=shuffled)
    assert record == layer_spectrum(planted, seed=2, name="fc")  # the same draw as rand_distance's own
    shared = layer_diagnostics(planted, record, seed=2, name="fc", shuffled=shuffled.eigenvalues)
    assert shared["rand_eigenvalues"] == shuffled.eigenvalues.tolist() and shared["num_traps"] == 3
    assert shared["num_traps"] == layer_diagnostics(planted, record, seed=2, name="fc")["num_traps"]
    conv = torch.randn(32, 16, 3, 3, generator=_generator(12))
    conv_record = layer_spectrum(conv, name="features.0")
    own = layer_diagnostics(conv, conv_record, name="features.0",
                            shuffled=shuffled_spectrum(conv, name="features.0").eigenvalues)
    assert own == layer_diagnostics(conv, conv_record, name="features.0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_diagnostics_on_a_gpu_equal_the_cpu():
    weight = torch.randn(64, 32, 3, 3, generator=_generator(13))
    on_cpu = layer_diagnostics(weight, layer_spectrum(weight, name="c"), init_weight=0.5 * weight, name="c")
    cuda = weight.cuda()
    on_gpu = layer_diagnostics(cuda, layer_spectrum(cuda, name="c"), init_weight=0.5 * cuda, name="c")
    for key in ("num_spikes", "num_traps", "warning"):
        assert on_gpu[key] == on_cpu[key], key
    for key in ("mp_softrank", "bulk_max", "rand_bulk_max", "log_alpha_norm", "euclidean", "cka"):
        assert on_gpu[key] == pytest.approx(on_cpu[key], rel=1e-9), key
