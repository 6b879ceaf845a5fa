"""Weight-spectrum metrics (metrics/spectral.py), compute_spectra.py and their figures."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.spatial.distance import jensenshannon

import compute_spectra
import plot_results
from analyses.loading import load_snapshot_model
from metrics.layers import enumerate_layers
from metrics.spectral import (
    fit_power_law,
    jensen_shannon_distance,
    layer_matrices,
    layer_spectrum,
    matrix_entropy,
    matrix_rank,
    rand_distance,
    squared_singular_values,
    stable_rank,
    weight_spectrum,
)
from metrics.ww_diagnostics import DIAGNOSTICS, INIT_DISTANCES, layer_diagnostics, training_warning
from schema import read_json as read_result
from tests.checks import assert_real_png as _assert_real_png
from utils.cli import run_main
from utils.errors import UserError


def gaussian(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- matrices and spectra --------------------------------------------------------------------------
def test_conv_slices_flatten_and_linear_matrices():
    conv = torch.randn(8, 3, 3, 2)
    slices = layer_matrices(conv, "slices")
    assert slices.shape == (6, 8, 3)
    assert torch.equal(slices[1], conv[:, :, 0, 1])  # position (i, j) = (0, 1)
    assert layer_matrices(conv, "flatten").shape == (1, 8, 18)
    assert torch.equal(layer_matrices(conv, "flatten")[0], conv.reshape(8, 18))
    assert layer_matrices(torch.randn(5, 7), "flatten").shape == (1, 5, 7)
    with pytest.raises(UserError, match="conv mode"):
        layer_matrices(conv, "stacked")


@pytest.mark.parametrize("mode", ["slices", "flatten"])
def test_eigenvalues_are_squared_singular_values_over_n(mode):
    """sum(lambda) = ||W||_F^2 / N, M eigenvalues per matrix, ascending."""
    conv = torch.randn(16, 4, 3, 3, dtype=torch.float64)
    spec = weight_spectrum(conv, mode)
    expected_n, expected_m, count = (16, 4, 9) if mode == "slices" else (36, 16, 1)
    assert (spec.n, spec.m, spec.n_matrices) == (expected_n, expected_m, count)
    assert spec.eigenvalues.numel() == expected_m * count
    assert torch.all(spec.eigenvalues[1:] >= spec.eigenvalues[:-1])
    assert float(spec.eigenvalues.sum()) == pytest.approx(float((conv ** 2).sum()) / expected_n, rel=1e-12)
    # flatten gives a wide 16 x 36 matrix, decomposed as its transpose: numpy's values of the matrix itself
    singular = np.linalg.svd(layer_matrices(conv, mode).numpy(), compute_uv=False)
    np.testing.assert_allclose(spec.eigenvalues.numpy(), np.sort((singular ** 2).ravel()) / expected_n, rtol=1e-12)


@pytest.mark.parametrize("shape, rank", [((300, 120), 120), ((128, 128), 128), ((300, 120), 70), ((64, 64), 0)])
def test_squared_singular_values_match_numpy_and_keep_the_zeros_of_a_rank_deficient_matrix(shape, rank):
    """Full rank: the Gram matrix's eigenvalues, equal to numpy's s^2. Rank-deficient (or zero): the
    zeros stay below the rank tolerance (the Gram matrix would put them near N * eps * lambda_max)."""
    rows, cols = shape
    matrix = gaussian(rows, max(rank, 1), seed=3) @ gaussian(max(rank, 1), cols, seed=4) * (rank > 0)
    squared = squared_singular_values(matrix.unsqueeze(0))[0]
    expected = np.sort(np.linalg.svd(matrix.numpy(), compute_uv=False) ** 2)
    np.testing.assert_allclose(squared.numpy(), expected, rtol=1e-9, atol=1e-12 * max(expected[-1], 1e-300))
    assert matrix_rank(weight_spectrum(matrix)) == rank == np.linalg.matrix_rank(matrix.numpy())


def test_rank_one_matrix_has_stable_rank_one_and_zero_entropy():
    u, v = gaussian(40, 1, seed=1), gaussian(1, 25, seed=2)
    spec = weight_spectrum(u @ v)
    assert matrix_rank(spec) == 1
    assert stable_rank(spec.eigenvalues) == pytest.approx(1.0, abs=1e-12)
    assert matrix_entropy(spec) == 0.0


def test_flat_spectrum_has_entropy_one_and_full_stable_rank():
    orthogonal, _ = torch.linalg.qr(gaussian(30, 30, seed=3))
    spec = weight_spectrum(orthogonal[:, :12])
    assert matrix_entropy(spec) == pytest.approx(1.0, abs=1e-12)
    assert stable_rank(spec.eigenvalues) == pytest.approx(12.0, rel=1e-10)
    assert fit_power_law(spec.eigenvalues) is None or fit_power_law(spec.eigenvalues).n_tail <= 12


def marchenko_pastur_pdf(x: float, q: float) -> float:
    """Density of the eigenvalues of W^T W / N for an N x M matrix of unit-variance entries, q = M / N."""
    low, high = (1 - math.sqrt(q)) ** 2, (1 + math.sqrt(q)) ** 2
    return math.sqrt(max((high - x) * (x - low), 0.0)) / (2 * math.pi * q * x)


def test_gaussian_matrix_follows_marchenko_pastur():
    """Support, CDF (KS distance) and matrix entropy of a 1000 x 250 Gaussian matrix against the MP law.

    With mu1 = E[lambda] = 1 the normalized entropy tends to 1 - E[lambda log lambda] / log M.
    """
    rows, cols = 1000, 250
    q = cols / rows
    low, high = (1 - math.sqrt(q)) ** 2, (1 + math.sqrt(q)) ** 2
    weight = gaussian(rows, cols, seed=4)
    spec = weight_spectrum(weight)
    eigenvalues = spec.eigenvalues.numpy()
    assert low * 0.85 < eigenvalues[0] and eigenvalues[-1] < high * 1.05

    def pdf(x: float) -> float:
        return marchenko_pastur_pdf(x, q)

    cdf = [integrate.quad(pdf, low, min(max(value, low), high))[0] for value in eigenvalues[::5]]
    empirical = (np.arange(0, cols, 5) + 1) / cols
    assert np.max(np.abs(np.array(cdf) - empirical)) < 0.03
    e_lambda_log_lambda = integrate.quad(lambda x: x * math.log(x) * pdf(x), low, high)[0]
    expected_entropy = 1 - e_lambda_log_lambda / math.log(cols)
    assert matrix_entropy(spec) == pytest.approx(expected_entropy, abs=2e-3)
    # Shuffling i.i.d. entries does not change the law: the spectrum stays (almost) the same.
    assert rand_distance(weight, spec, mode="slices", seed=0) < 0.01


def test_rand_distance_detects_structure_that_shuffling_destroys():
    """Rows with scales from 0.1 to 10: shuffling mixes the scales, and the spectrum changes."""
    scales = torch.logspace(-1, 1, 600, dtype=torch.float64)[:, None]
    structured = gaussian(600, 150, seed=5) * scales
    spec = weight_spectrum(structured)
    assert rand_distance(structured, spec, mode="slices", seed=0) > 0.1
    again = rand_distance(structured, spec, mode="slices", seed=0)
    assert rand_distance(structured, spec, mode="slices", seed=0) == again  # seeded


def test_jensen_shannon_distance():
    p, q = torch.tensor([1.0, 2.0, 3.0, 0.0]), torch.tensor([0.5, 0.5, 2.0, 1.0])
    assert jensen_shannon_distance(p, q) == pytest.approx(jensenshannon(p.numpy(), q.numpy()), abs=1e-12)
    assert jensen_shannon_distance(p, 3 * p) == 0.0
    disjoint = jensen_shannon_distance(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert disjoint == pytest.approx(math.sqrt(math.log(2)), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_law_exponent_is_recovered_from_pareto_samples(seed):
    """3000 Pareto(alpha = 2.5, xmin = 1) values above a uniform bulk of 2000 values in [0.05, 1)."""
    rng = np.random.default_rng(seed)
    tail = rng.uniform(size=3000) ** (-1 / 1.5)
    bulk = rng.uniform(0.05, 1.0, size=2000)
    for values in (tail, np.concatenate([bulk, tail])):
        fit = fit_power_law(rng.permutation(values))
        assert fit.alpha == pytest.approx(2.5, abs=0.1)
        assert 0.9 < fit.xmin < 1.5 and fit.n_tail > 1500
        assert fit.sigma == pytest.approx((fit.alpha - 1) / math.sqrt(fit.n_tail))


def test_power_law_fit_is_the_ks_minimizing_mle():
    """Brute force over every xmin candidate of 40 values."""
    values = np.sort(np.random.default_rng(7).lognormal(size=40))
    best = None
    for i in range(len(values) - 1):
        tail = values[i:]
        alpha = 1 + len(tail) / np.sum(np.log(tail / tail[0]))
        cdf = 1 - (tail / tail[0]) ** (1 - alpha)
        distance = np.max(np.abs(cdf - np.arange(len(tail)) / len(tail)))
        if best is None or distance < best[0]:
            best = (distance, alpha, tail[0])
    fit = fit_power_law(values[::-1].copy())
    assert (fit.ks_distance, fit.alpha, fit.xmin) == pytest.approx(best, rel=1e-12)
    assert fit_power_law(np.ones(5)) is None and fit_power_law(np.array([3.0])) is None


def test_layer_record_distances_and_undefined_values():
    weight = torch.randn(6, 3, 3, 3, dtype=torch.float64)
    record = layer_spectrum(weight, init_weight=weight.clone(), name="conv")
    assert record["l2_dist"] == 0.0 and record["cosine"] == pytest.approx(1.0)
    doubled = layer_spectrum(2 * weight, init_weight=weight, name="conv")
    assert doubled["l2_dist"] == pytest.approx(1.0) and doubled["cosine"] == pytest.approx(1.0)
    # Scale-free metrics do not move; lambda scales by 4.
    for key in ("alpha", "entropy", "stable_rank"):
        assert doubled[key] == pytest.approx(record[key], rel=1e-9)
    assert doubled["spectral_norm"] == pytest.approx(4 * record["spectral_norm"], rel=1e-12)
    zero = layer_spectrum(torch.zeros(4, 5), name="zero")
    assert zero["entropy"] is None and zero["stable_rank"] is None and zero["alpha"] is None
    assert zero["rand_distance"] is None and zero["log_norm"] is None
    with pytest.raises(UserError, match="layer nan"):
        layer_spectrum(torch.full((3, 3), float("nan")), name="nan")
    with pytest.raises(UserError, match="shape"):
        layer_spectrum(weight, init_weight=torch.zeros(6, 3, 1, 1), name="conv")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_metrics_on_a_gpu_equal_the_cpu():
    weight = torch.randn(32, 16, 3, 3)
    on_cpu = layer_spectrum(weight, init_weight=weight * 0.5, name="c")
    on_gpu = layer_spectrum(weight.cuda(), init_weight=weight.cuda() * 0.5, name="c")
    for key in ("entropy", "stable_rank", "spectral_norm", "alpha", "rand_distance", "l2_dist", "cosine"):
        assert on_gpu[key] == pytest.approx(on_cpu[key], rel=1e-9, abs=1e-12), key


# -- WeightWatcher as the oracle -------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Passing a dict to DataFrame.from_records")
def test_metrics_equal_weightwatcher_on_a_trained_lenet(digits_run, monkeypatch):
    """WeightWatcher 0.7.7 ``analyze()`` with its defaults on the same snapshot.

    Its eigenvalues are ``s^2`` (conv layers: ``s^2 / 2``, its conv2d_norm), ours ``s^2 / N``: the
    scale-dependent metrics agree after that factor, the scale-free ones as they are. alpha agrees
    where WeightWatcher uses its standard fit (20 or more eigenvalues); rand_distance uses an
    independent random shuffle on each side (ours permutes the whole tensor, WeightWatcher each slice).
    """
    weightwatcher = pytest.importorskip("weightwatcher")
    from weightwatcher.RMT_Util import jensen_shannon_distance as ww_jensen_shannon

    loaded = load_snapshot_model(digits_run / "lenet_epoch0003.pt")
    layers = enumerate_layers(loaded.model, loaded.input_shape, include_1x1=True, with_linear=True)
    # Its Marchenko-Pastur fit of the randomized ESD (KDE residuals, 90% of its time) is not compared.
    monkeypatch.setattr(weightwatcher.WeightWatcher, "apply_mp_fit", lambda self, layer, *args, **kwargs: layer)
    np.random.seed(0)
    details = weightwatcher.WeightWatcher(model=loaded.model).analyze(randomize=True, vectors=False, detX=False)
    assert list(details["N"]) == [max(layer.weight.shape[:2]) for layer in layers]
    compared_alpha = 0
    for (_, theirs), layer in zip(details.iterrows(), layers):
        ours = layer_spectrum(layer.weight, name=layer.name)
        scale = ours["N"] * (0.5 if layer.kind == "conv" else 1.0)
        assert ours["num_evals"] == theirs["num_evals"]
        assert ours["entropy"] == pytest.approx(theirs["entropy"], abs=1e-6)
        assert ours["stable_rank"] == pytest.approx(theirs["stable_rank"], rel=1e-9)
        assert ours["spectral_norm"] * scale == pytest.approx(theirs["spectral_norm"], rel=1e-9)
        assert ours["log_norm"] + math.log10(scale) == pytest.approx(theirs["log_norm"], abs=1e-9)
        if ours["num_evals"] >= 20:
            compared_alpha += 1
            assert ours["alpha"] == pytest.approx(theirs["alpha"], rel=1e-9)
            assert ours["xmin"] * scale == pytest.approx(theirs["xmin"], rel=1e-9)
            assert ours["ks_distance"] == pytest.approx(theirs["D"], rel=1e-9)
            assert ours["alpha_weighted"] + ours["alpha"] * math.log10(scale) == \
                pytest.approx(theirs["alpha_weighted"], rel=1e-9)
        # One random shuffle on each side: compared where 50+ eigenvalues make it stable (measured
        # differences <= 0.005; the 10-eigenvalue head moves by 0.02 between shuffles). WeightWatcher's
        # shuffle of an (out, 1) slice is no shuffle (its value is ~0 or NaN there).
        if ours["M"] > 1 and ours["num_evals"] >= 50:
            assert ours["rand_distance"] == pytest.approx(theirs["rand_distance"], abs=0.015)
    assert compared_alpha == 7  # all but the 9-eigenvalue first conv and the 10-eigenvalue head
    # Equal totals, as for a spectrum and its shuffle (WeightWatcher mixes before normalizing).
    p, q = np.random.default_rng(1).uniform(size=(2, 50))
    q *= p.sum() / q.sum()
    assert jensen_shannon_distance(torch.from_numpy(p), torch.from_numpy(q)) == \
        pytest.approx(ww_jensen_shannon(p, q), abs=1e-12)


# -- compute_spectra.py ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spectra_results(digits_run, tmp_path_factory):
    """compute_spectra.py on the whole digits run (epochs 0..3, init = epoch 0)."""
    results = tmp_path_factory.mktemp("spectra_results")
    assert compute_spectra.main(["--load-from", str(digits_run), "--results", str(results)]) == 0
    return results


def test_cli_on_a_run_directory(spectra_results, digits_run):
    out = spectra_results / "digits" / "lenet" / "0"
    documents = [read_result(out / f"spectra_lenet_epoch000{epoch}.json") for epoch in range(4)]
    names = ["features.0", "features.2", "features.5", "features.7", "features.10", "features.12",
             "classifier.0", "classifier.3", "classifier.6"]
    for epoch, document in enumerate(documents):
        assert (document["kind"], document["epoch"], document["conv_mode"]) == ("spectra", epoch, "slices")
        assert document["init_from"] == str(digits_run / "lenet_epoch0000.pt")
        assert [layer["name"] for layer in document["layers"]] == names
        assert document["net"]["n_layers"] == 9
    assert all(layer["l2_dist"] == 0.0 and layer["cosine"] == pytest.approx(1.0) for layer in documents[0]["layers"])
    assert all(layer["l2_dist"] > 0 for layer in documents[3]["layers"])
    # The file holds what the metric gives for the snapshot's weights.
    model = load_snapshot_model(digits_run / "lenet_epoch0003.pt").model
    init = load_snapshot_model(digits_run / "lenet_epoch0000.pt").model
    record = documents[3]["layers"][5]
    expected = layer_spectrum(model.features[12].weight, init_weight=init.features[12].weight, name="features.12")
    assert record["eigenvalues"] == pytest.approx(expected["eigenvalues"], rel=1e-12)
    for key in ("alpha", "entropy", "stable_rank", "rand_distance", "l2_dist", "cosine"):
        assert record[key] == pytest.approx(expected[key], rel=1e-12), key
    assert (record["N"], record["M"], record["n_matrices"], record["num_evals"]) == (64, 64, 9, 576)
    # WeightWatcher's diagnostics of the same layer, from the same weights and seed (metrics/ww_diagnostics.py,
    # each equal to weightwatcher 0.7.7 in tests/test_ww_diagnostics.py).
    diagnostics = layer_diagnostics(model.features[12].weight.detach(), expected,
                                    init_weight=init.features[12].weight.detach(), name="features.12")
    for key in (*DIAGNOSTICS, *INIT_DISTANCES):
        value = diagnostics[key]
        assert record[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    assert record["rand_eigenvalues"] == pytest.approx(diagnostics["rand_eigenvalues"], rel=1e-12)
    assert all(layer["warning"] == training_warning(layer["alpha"]) for layer in documents[3]["layers"])
    assert all(layer["euclidean"] == 0.0 and layer["cka"] == pytest.approx(1.0) for layer in documents[0]["layers"])
    summary = json.loads((out / "spectra_summary.json").read_text())
    assert summary["kind"] == "spectra_summary" and summary["epochs"] == [0, 1, 2, 3]
    alpha = np.array(summary["metrics"]["alpha"], dtype=float)
    assert alpha.shape == (9, 4)
    assert alpha[5, 3] == record["alpha"]
    assert summary["net"]["alpha"][3] == pytest.approx(np.mean(alpha[:, 3]))
    assert summary["metrics"]["num_traps"][5][3] == record["num_traps"]
    assert summary["net"]["mp_softrank"][3] == pytest.approx(np.mean([layer["mp_softrank"]
                                                                       for layer in documents[3]["layers"]]))


def test_cli_flatten_mode_and_random_init(tmp_path, digits_run):
    snapshot = digits_run / "lenet_epoch0002.pt"
    assert compute_spectra.main(["--load-from", str(snapshot), "--results", str(tmp_path), "--no-init",
                                 "--conv-mode", "flatten", "--shuffle-seed", "5", "--no-traps"]) == 0
    document = read_result(tmp_path / "digits" / "lenet" / "0" / "spectra_conv-flatten_lenet_epoch0002.json")
    assert document["conv_mode"] == "flatten"
    conv = document["layers"][1]
    assert (conv["name"], conv["N"], conv["M"], conv["n_matrices"], conv["num_evals"]) == ("features.2", 54, 6, 1, 6)
    assert "l2_dist" not in conv and document["init_from"] is None and document["shuffle_seed"] == 5
    # --no-traps skips the randomized spectra only; the MP fit stays.
    assert document["traps"] is False and conv["num_traps"] is None and conv["rand_eigenvalues"] is None
    assert "cka" not in conv and isinstance(conv["num_spikes"], int) and conv["mp_softrank"] is not None
    assert not list((tmp_path / "digits" / "lenet" / "0").glob("spectra*summary.json"))
    assert not (tmp_path / "digits" / "lenet" / "0" / "spectra_lenet_epoch0002.json").exists()
    assert compute_spectra.main(["--arch", "lenet", "--dataset", "digits", "--seed", "3", "--results",
                                 str(tmp_path)]) == 0
    assert plot_results.main([str(tmp_path / "digits" / "lenet" / "0"), "--plots", str(tmp_path / "plots"),
                              "--figures", "spectra", "--formats", "png"]) == 0
    _assert_real_png(tmp_path / "plots" / "spectra_heatmaps_conv-flatten.png")
    init = read_result(tmp_path / "digits" / "lenet" / "3" / "spectra_init_lenet.json")
    assert (init["source"], init["epoch"]) == ("init", 0)


def test_cli_user_errors_are_one_line(tmp_path, digits_run, capsys):
    cases = ((["--load-from", str(tmp_path / "missing.pt")], "no snapshot matches"),
             (["--load-from", str(digits_run / "lenet_epoch0001.pt"), "--init-from", str(tmp_path / "none.pt")],
              "does not exist"),
             (["--load-from", str(digits_run / "lenet_epoch0001.pt"), "--arch", "vgg11"], "disagrees"))
    for flags, message in cases:
        assert run_main(compute_spectra.main, [*flags, "--results", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").rglob("*"))


# -- figures ---------------------------------------------------------------------------------------
def test_plot_results_draws_heatmaps_and_the_esd(spectra_results, tmp_path, capsys):
    plots = tmp_path / "plots"
    run = spectra_results / "digits" / "lenet" / "0"
    assert plot_results.main([str(run), "--plots", str(plots), "--figures", "spectra", "spectra_esd",
                              "--formats", "png"]) == 0
    _assert_real_png(plots / "spectra_heatmaps.png")
    _assert_real_png(plots / "spectra_esd_classifier-0.png")  # 120 x 576: the largest matrix
    assert plot_results.main([str(run), "--plots", str(plots), "--figures", "spectra_esd", "--formats", "png",
                              "--spectra-layer", "features.7", "--epochs", "0", "3"]) == 0
    _assert_real_png(plots / "spectra_esd_features-7.png")
    capsys.readouterr()
    # A layer the run does not have: a notice naming the valid ones (other runs may have it).
    assert plot_results.main([str(run), "--plots", str(plots / "none"), "--figures", "spectra_esd",
                              "--spectra-layer", "features.99"]) == 0
    err = capsys.readouterr().err
    assert "skipped spectra_esd" in err and "'features.99'" in err and "features.12" in err
    assert not (plots / "none").exists()


def test_heatmaps_from_the_summary_alone(spectra_results, tmp_path):
    summary = spectra_results / "digits" / "lenet" / "0" / "spectra_summary.json"
    plots = tmp_path / "plots"
    assert plot_results.main([str(summary), "--plots", str(plots), "--figures", "spectra", "--formats", "png"]) == 0
    _assert_real_png(plots / "spectra_heatmaps.png")
