"""HSIC (metrics/hsic.py), the information-plane analyzer, compute_dse.py --hsic and its figure."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

import compute_dse
import datasets
import plot_results
from analyses.hsic import HSICSettings, measure_layers
from analyses.loading import load_snapshot_model
from analyses.registry import declaration
from analyses.snapshots import SnapshotAnalysis
from metrics.hsic import (
    CenteredKernel,
    gaussian_kernel,
    hsic,
    information_plane,
    median_bandwidth,
    one_hot,
    squared_distances,
)
from schema import read_json as read_result
from tests.checks import assert_real_png as _assert_real_png
from tests.checks import tiny_vit
from tests.train_helpers import read_run, run_train
from utils.cli import run_main
from utils.errors import UserError


def samples(m: int, d: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(m, d)))


def numpy_hsic(x: np.ndarray, y: np.ndarray, sigma_x: float, sigma_y: float) -> float:
    """The textbook O(m^2) formula: tr(K H L H) / (m - 1)^2 with explicit matrices."""
    m = len(x)
    kernel_k = np.exp(-squareform(pdist(x, "sqeuclidean")) / (2 * sigma_x ** 2))
    kernel_l = np.exp(-squareform(pdist(y, "sqeuclidean")) / (2 * sigma_y ** 2))
    centering = np.eye(m) - np.ones((m, m)) / m
    return float(np.trace(kernel_k @ centering @ kernel_l @ centering)) / (m - 1) ** 2


def numpy_median(x: np.ndarray) -> float:
    distances = pdist(x)
    return float(np.median(distances[distances > 0]))


# -- the estimator ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [None, 0.7])
def test_estimator_equals_the_direct_numpy_formula(sigma):
    x = samples(80, 5, seed=0)
    y = torch.sin(x[:, :2]) + 0.3 * samples(80, 2, seed=1)
    sigma_x = sigma or numpy_median(x.numpy())
    sigma_y = sigma or numpy_median(y.numpy())
    expected = numpy_hsic(x.numpy(), y.numpy(), sigma_x, sigma_y)
    kernel_x, used_x = gaussian_kernel(x, sigma)
    kernel_y, used_y = gaussian_kernel(y, sigma)
    assert (used_x, used_y) == pytest.approx((sigma_x, sigma_y), rel=1e-12)
    assert hsic(kernel_x, kernel_y) == pytest.approx(expected, rel=1e-10)
    plane = information_plane(y, CenteredKernel.of(x, sigma), CenteredKernel.of(y, sigma), sigma=sigma)
    assert plane["hsic_x"] == pytest.approx(expected, rel=1e-10)
    self_x, self_y = (numpy_hsic(a, a, s, s) for a, s in ((x.numpy(), sigma_x), (y.numpy(), sigma_y)))
    assert plane["nhsic_x"] == pytest.approx(expected / np.sqrt(self_x * self_y), rel=1e-10)
    assert plane["hsic_y"] == pytest.approx(self_y, rel=1e-10) and plane["nhsic_y"] == pytest.approx(1.0)


def test_squared_distances_and_median_bandwidth():
    x = samples(31, 3, seed=2)
    x[5] = x[4]  # a duplicate: its zero distance does not count
    assert squared_distances(x).numpy() == pytest.approx(squareform(pdist(x.numpy(), "sqeuclidean")), abs=1e-12)
    assert median_bandwidth(squared_distances(x)) == pytest.approx(numpy_median(x.numpy()), rel=1e-12)
    assert median_bandwidth(torch.zeros(4, 4, dtype=torch.float64)) == 1.0


def test_independent_samples_have_near_zero_hsic():
    x, independent = samples(400, 4, seed=3), samples(400, 4, seed=4)
    dependent = x + 0.3 * independent
    reference = CenteredKernel.of(x)
    against_independent = information_plane(independent, reference, reference)
    against_dependent = information_plane(dependent, reference, reference)
    assert against_independent["hsic_x"] < 0.05 * reference.self_hsic
    assert against_independent["nhsic_x"] < 0.05
    assert against_dependent["nhsic_x"] > 0.6


def test_hsic_of_x_with_itself_is_maximal():
    """nHSIC(X, Y) <= 1 = nHSIC(X, X) by Cauchy-Schwarz. The raw HSIC(X, Y) is bounded by
    sqrt(HSIC(X, X) HSIC(Y, Y)) only, so with median bandwidths a tanh of X can exceed HSIC(X, X)
    slightly; independent or noisier Y stay below it."""
    x = samples(300, 4, seed=5)
    reference = CenteredKernel.of(x)
    assert information_plane(x, reference, reference)["nhsic_x"] == pytest.approx(1.0, abs=1e-12)
    assert information_plane(x, reference, reference)["hsic_x"] == pytest.approx(reference.self_hsic, rel=1e-12)
    noise = samples(300, 4, seed=6)
    for transformed in (noise, torch.tanh(x), x + 0.5 * noise, x[:, :1], x ** 2, torch.relu(x)):
        plane = information_plane(transformed, reference, reference)
        assert plane["nhsic_x"] < 0.99
    for weaker in (noise, x + 0.5 * noise, x ** 2):
        assert information_plane(weaker, reference, reference)["hsic_x"] < reference.self_hsic


def test_median_heuristic_makes_hsic_scale_free():
    x, y = samples(60, 3, seed=7), samples(60, 2, seed=8) + samples(60, 3, seed=7)[:, :2]
    plain = information_plane(y, CenteredKernel.of(x), CenteredKernel.of(x))
    scaled = information_plane(10 * y, CenteredKernel.of(x), CenteredKernel.of(x))
    assert scaled["hsic_x"] == pytest.approx(plain["hsic_x"], rel=1e-9)
    assert scaled["sigma"] == pytest.approx(10 * plain["sigma"], rel=1e-12)


def test_one_class_gives_zero_and_no_normalized_value():
    x = samples(20, 3, seed=9)
    labels = CenteredKernel.of(one_hot(torch.zeros(20, dtype=torch.long), 3))
    plane = information_plane(x, labels, labels)
    assert plane["hsic_y"] == pytest.approx(0.0, abs=1e-15) and plane["nhsic_y"] is None
    assert one_hot(torch.tensor([2, 0]), 4).tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]


def test_user_errors():
    with pytest.raises(UserError, match="at least 2 samples"):
        gaussian_kernel(torch.zeros(1, 3))
    with pytest.raises(UserError, match="must be positive"):
        gaussian_kernel(samples(5, 2, seed=0), sigma=0.0)
    with pytest.raises(UserError, match="NaN"):
        gaussian_kernel(torch.full((3, 2), float("nan")))
    with pytest.raises(UserError, match="square"):
        hsic(torch.eye(3), torch.eye(4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_tensors_give_the_cpu_values():
    x, y = samples(500, 16, seed=10), samples(500, 4, seed=11)
    y = y + x[:, :4]
    on_cpu = information_plane(y, CenteredKernel.of(x), CenteredKernel.of(y))
    on_gpu = information_plane(y.cuda().float(), CenteredKernel.of(x.cuda()), CenteredKernel.of(y.cuda()))
    y32 = y.float().double()
    exact = information_plane(y32, CenteredKernel.of(x), CenteredKernel.of(y))
    assert on_gpu["hsic_x"] == pytest.approx(exact["hsic_x"], rel=1e-9)
    assert on_gpu["hsic_x"] == pytest.approx(on_cpu["hsic_x"], rel=1e-5)


class TensorProbe:
    """A probe held as tensors, batched in order as ``Split.batches`` does."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor):
        self.inputs, self.targets = inputs, targets.numpy()

    def batches(self, batch_size: int, *, device="cpu", shuffle: bool = False):
        for start in range(0, len(self.inputs), batch_size):
            stop = start + batch_size
            yield self.inputs[start:stop].to(device), torch.as_tensor(self.targets[start:stop], device=device)


def test_an_attention_block_is_one_hsic_layer_measured_at_its_output():
    model = tiny_vit(seed=0)
    inputs = torch.randn(60, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    probe = TensorProbe(inputs, torch.arange(60) % 5)
    measured = measure_layers(model, probe, HSICSettings(samples=60, batch_size=25), device=torch.device("cpu"),
                              input_shape=(3, 16, 16), num_classes=5)
    layers = {record["name"]: record for record in measured["layers"]}
    attention = "encoder.layers.encoder_layer_1.self_attention"
    assert layers[attention]["kind"] == "attention" and not any(name.endswith("out_proj") for name in layers)
    assert len(layers) == 1 + 2 * 3 + 1  # conv_proj, per block its attention and two MLP layers, the head
    # the oracle: the block called by hand on its input (ln_1's output), the textbook HSIC of its output
    captured = []
    norm = model.get_submodule("encoder.layers.encoder_layer_1.ln_1")
    handle = norm.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    with torch.no_grad():
        model(inputs)
        output = model.get_submodule(attention)(captured[0], captured[0], captured[0], need_weights=False)[0]
    handle.remove()
    assert layers[attention]["feature_dim"] == output[0].numel() == 5 * 16  # 4 patches and the class token
    flat = output.reshape(60, -1).double().numpy()
    expected = numpy_hsic(flat, inputs.reshape(60, -1).double().numpy(), layers[attention]["sigma"], measured["sigma_x"])
    assert layers[attention]["hsic_x"] == pytest.approx(expected, rel=1e-5)


# -- the analyzer ----------------------------------------------------------------------------------
def analyzer_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    declaration("dse").train_arguments(parser)
    declaration("hsic").train_arguments(parser)
    return parser


def test_analyzer_flags():
    parser = analyzer_parser()
    assert declaration("hsic").train_analyzer(parser.parse_args([])) is None
    analyzer = declaration("hsic").train_analyzer(parser.parse_args(["--hsic", "--dse-samples", "70", "--dse-seed", "2"]))
    assert isinstance(analyzer, SnapshotAnalysis) and analyzer.name == "hsic"
    assert analyzer.settings.record() == {"samples": 70, "seed": 2, "sigma": None, "normalized": False}
    custom = declaration("hsic").train_analyzer(parser.parse_args(["--hsic", "--hsic-sigma", "3", "--hsic-normalized"]))
    assert (custom.settings.sigma, custom.settings.normalized) == (3.0, True)
    with pytest.raises(UserError, match="--hsic-sigma"):
        declaration("hsic").train_analyzer(parser.parse_args(["--hsic", "--hsic-sigma", "-1"]))


def test_train_logs_the_information_plane_per_snapshot(tmp_path):
    code = run_train(tmp_path, "--arch", "lenet", "--dataset", "digits", "--seed", "1", "--epochs", "1",
                     "--batch-size", "64", "--no-projection-logging", "--no-dse", "--hsic", "--hsic-normalized",
                     "--dse-samples", "60")
    assert code == 0
    out = tmp_path / "results" / "digits" / "lenet" / "1"
    summary = read_result(out / "hsic_summary.json")
    assert summary["kind"] == "hsic_summary" and summary["epochs"] == [0, 1]
    assert summary["settings"] == {"samples": 60, "seed": 0, "sigma": None, "normalized": True}
    assert len(summary["layers"]) == 9 and np.array(summary["metrics"]["nhsic_y"], dtype=float).shape == (9, 2)
    last = read_result(out / "hsic_lenet_epoch0001.json")
    logged = read_run(tmp_path, seed=1)["snapshots"][1]["analyses"]["hsic"]
    assert logged["classifier.6/y"] == last["layers"][-1]["nhsic_y"]
    assert logged["features.0/x"] == last["layers"][0]["nhsic_x"]


# -- compute_dse.py --hsic -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hsic_results(digits_run, tmp_path_factory):
    results = tmp_path_factory.mktemp("hsic_results")
    assert compute_dse.main(["--load-from", str(digits_run / "lenet_epoch000[03].pt"), "--results", str(results),
                             "--dse-samples", "120", "--hsic"]) == 0
    return results / "digits" / "lenet" / "0"


def test_cli_writes_hsic_on_the_dse_probe(hsic_results, digits_run):
    documents = [read_result(hsic_results / f"hsic_lenet_epoch000{epoch}.json") for epoch in (0, 3)]
    dse = read_result(hsic_results / "dse_lenet_epoch0003.json")
    assert documents[1]["probe"] == dse["probe"]  # the same samples
    assert [layer["name"] for layer in documents[1]["layers"]][-3:] == ["classifier.0", "classifier.3", "classifier.6"]
    # One layer by hand: its output on the probe, against the inputs and one-hot labels.
    data = datasets.build_data("digits")
    positions = np.sort(np.random.default_rng(0).choice(len(data.test), size=120, replace=False))
    assert data.test.indices[positions].tolist() == dse["probe"]["indices"]
    inputs = torch.cat([batch for batch, _ in data.test.batches(512, shuffle=False)])[torch.from_numpy(positions)]
    labels = np.eye(10)[data.test.targets[positions]]
    model = load_snapshot_model(digits_run / "lenet_epoch0003.pt").model
    with torch.no_grad():
        hidden = model.classifier[:4](torch.flatten(model.avgpool(model.features(inputs)), 1)).double().numpy()
    flat = inputs.reshape(len(inputs), -1).double().numpy()
    record = documents[1]["layers"][-2]
    assert (record["name"], record["feature_dim"]) == ("classifier.3", 84)
    sigma_h = numpy_median(hidden)
    assert record["sigma"] == pytest.approx(sigma_h, rel=1e-5)
    assert record["hsic_x"] == pytest.approx(numpy_hsic(hidden, flat, sigma_h, numpy_median(flat)), rel=1e-5)
    assert record["hsic_y"] == pytest.approx(numpy_hsic(hidden, labels, sigma_h, numpy_median(labels)), rel=1e-5)
    summary = json.loads((hsic_results / "hsic_summary.json").read_text())
    assert summary["epochs"] == [0, 3] and summary["files"] == ["hsic_lenet_epoch0000.json", "hsic_lenet_epoch0003.json"]
    assert summary["metrics"]["hsic_y"][-2] == [documents[0]["layers"][-2]["hsic_y"], record["hsic_y"]]


def test_cli_bad_hsic_options_are_one_line(digits_run, tmp_path, capsys):
    snapshot = str(digits_run / "lenet_epoch0001.pt")
    for flags, message in ((["--hsic", "--hsic-sigma", "0"], "--hsic-sigma"),
                           (["--hsic", "--dse-samples", "1"], "--dse-samples")):
        assert run_main(compute_dse.main, ["--load-from", snapshot, "--results", str(tmp_path / "bad"), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
    assert not list((tmp_path / "bad").rglob("*.json"))


def test_plot_results_draws_the_information_plane(hsic_results, tmp_path):
    plots = tmp_path / "plots"
    assert plot_results.main([str(hsic_results), "--plots", str(plots), "--figures", "hsic_plane",
                              "--formats", "png"]) == 0
    _assert_real_png(plots / "hsic_plane.png")
    only_summary = tmp_path / "summary"
    only_summary.mkdir()
    (only_summary / "hsic_summary.json").write_text((hsic_results / "hsic_summary.json").read_text())
    assert plot_results.main([str(only_summary), "--plots", str(plots / "s"), "--figures", "hsic_plane",
                              "--formats", "png"]) == 0
    _assert_real_png(plots / "s" / "hsic_plane.png")
