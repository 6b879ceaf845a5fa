"""Diffusion Spectral Entropy: analytic cases, oracle equality with dse-dsmi 1.1, embeddings, the probe,
the train.py analyzer and compute_dse.py in-process."""
from __future__ import annotations

import argparse
import functools
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import compute_dse
import datasets
import train
from analyses.dse import DSE, DSESettings
from analyses.loading import load_snapshot_model
from analyses.registry import declaration
from analyses.snapshots import SnapshotAnalysis
from metrics.dse import (
    CPU_SOLVERS,
    diffusion_kernel,
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    spectral_entropy,
    symmetric_eigenvalues,
)
from metrics.dse_variants import dse_variants
from metrics.embeddings import collect_embeddings, penultimate_layer
from schema import read_json as read_result
from tests.checks import probe_inputs
from tests.train_helpers import read_run, run_dir, run_train
from utils.cli import run_main
from utils.errors import UserError

dse_dsmi = pytest.importorskip("dse_dsmi")
TOLERANCE = 1e-6  # bits: the bar for equality with the reference


def reference_dse(points, **kwargs) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):  # its CSE divides by 0 on constant dimensions
        return float(dse_dsmi.diffusion_spectral_entropy(points, **kwargs))


def reference_dsmi(points, reference, **kwargs) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(dse_dsmi.diffusion_spectral_mutual_information(points, reference, **kwargs)[0])


def clusters(n: int, dim: int, k: int, *, separation: float, spread: float, seed: int = 0):
    """``n`` points in ``k`` equal-size Gaussian clusters and their cluster labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, dim))
    centers *= separation / np.linalg.norm(centers, axis=1, keepdims=True)  # all at distance ~separation
    labels = np.arange(n) % k
    return centers[labels] + spread * rng.normal(size=(n, dim)), labels


def uniform(n: int, dim: int, *, scale: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, scale, size=(n, dim))


# -- analytic cases --------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 50, 400])
def test_identical_points_have_zero_dse_and_zero_cse(n):
    points = np.tile(np.array([[3.0, -1.0, 2.5, 7.0]]), (n, 1))
    eps_term = 1e-9  # the eps added to every probability and rounding-level eigenvalues: ~1e-12 bits
    assert abs(diffusion_spectral_entropy(points)) <= eps_term
    assert abs(diffusion_spectral_entropy(torch.from_numpy(points).float())) <= eps_term
    assert abs(diffusion_spectral_entropy(points, classic_shannon=True)) <= eps_term


@pytest.mark.parametrize("k", [2, 3, 4, 8])
def test_tight_far_apart_equal_clusters_give_log2_k(k):
    points, _ = clusters(40 * k, 16, k, separation=500.0, spread=1e-3, seed=k)
    assert diffusion_spectral_entropy(points) == pytest.approx(math.log2(k), abs=1e-3)


def test_dse_grows_with_the_number_of_clusters():
    values = [diffusion_spectral_entropy(clusters(240, 32, k, separation=40.0, spread=1.0, seed=1)[0])
              for k in (1, 2, 3, 4, 6, 8)]
    assert all(later > earlier + 0.1 for earlier, later in zip(values, values[1:])), values


def test_spectral_entropy_of_a_known_spectrum():
    assert spectral_entropy(np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(2.0, abs=1e-12)
    assert spectral_entropy(np.array([-1.0, 1.0])) == pytest.approx(1.0, abs=1e-12)  # magnitudes only
    # t = 2 squares before normalizing: p = (4, 1) / 5
    expected = -(0.8 * math.log2(0.8) + 0.2 * math.log2(0.2))
    assert spectral_entropy(np.array([2.0, 1.0]), t=2) == pytest.approx(expected, abs=1e-12)


def test_cse_counts_occupied_cells():
    corners = np.array([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)] * 5)
    assert diffusion_spectral_entropy(corners, classic_shannon=True) == pytest.approx(3.0, abs=1e-9)
    halves = np.array([[0.0], [0.1], [0.9], [1.0]])  # two cells, two points each
    assert diffusion_spectral_entropy(halves, classic_shannon=True) == pytest.approx(1.0, abs=1e-9)


def test_dsmi_is_high_for_the_cluster_labels_and_near_zero_for_random_labels():
    points, labels = clusters(240, 16, 4, separation=500.0, spread=1e-3, seed=3)
    shuffled = np.random.default_rng(0).permutation(labels)
    assert diffusion_spectral_mutual_information(points, labels) == pytest.approx(2.0, abs=0.15)
    assert abs(diffusion_spectral_mutual_information(points, shuffled)) < 0.15


def test_kernel_is_the_symmetric_normalization_of_the_gaussian_kernel():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], dtype=torch.float64)
    gram = torch.exp(-torch.cdist(points, points) ** 2 / (2 * 2.0**2))
    degree = gram.sum(dim=1)
    expected = gram / torch.sqrt(degree[:, None] * degree[None, :])
    assert torch.allclose(diffusion_kernel(points, sigma=2.0), expected, atol=1e-15)


def test_user_errors():
    with pytest.raises(UserError, match="shape"):
        diffusion_spectral_entropy(np.zeros(5))
    with pytest.raises(UserError, match="NaN"):
        diffusion_spectral_entropy(np.array([[0.0], [np.nan]]))
    with pytest.raises(UserError, match="sigma"):
        diffusion_spectral_entropy(np.zeros((3, 2)), sigma=0)
    with pytest.raises(UserError, match="one reference row per embedding"):
        diffusion_spectral_mutual_information(np.zeros((4, 2)), np.array([0, 1, 0]))


# -- oracle equality with dse-dsmi -----------------------------------------------------------------
SHAPES = [  # (N, D, data): D from 2 to 512, N from 50 to 1000 (3000 below), clustered and uniform
    (50, 2, "clustered"), (50, 2, "uniform"), (200, 16, "clustered"), (300, 64, "uniform"),
    (600, 128, "clustered"), (400, 512, "uniform"), (1000, 128, "clustered"), (1000, 32, "uniform"),
]


def make_points(n: int, dim: int, data: str, seed: int = 0) -> np.ndarray:
    if data == "clustered":
        return clusters(n, dim, 5, separation=15.0, spread=3.0, seed=seed)[0]
    return uniform(n, dim, scale=8.0, seed=seed)


@pytest.mark.parametrize("n,dim,data", SHAPES)
def test_dse_and_cse_equal_the_reference(n, dim, data):
    points = make_points(n, dim, data)
    assert diffusion_spectral_entropy(points) == pytest.approx(reference_dse(points), abs=TOLERANCE)
    cse = diffusion_spectral_entropy(points, classic_shannon=True)
    assert cse == pytest.approx(reference_dse(points, classic_shannon_entropy=True), abs=TOLERANCE)
    three_bins = diffusion_spectral_entropy(points, classic_shannon=True, bins_per_dim=3)
    assert three_bins == pytest.approx(reference_dse(points, classic_shannon_entropy=True, num_bins_per_dim=3),
                                       abs=TOLERANCE)


def test_a_large_case_equals_the_reference():
    points = make_points(3000, 64, "clustered", seed=5)  # the two-stage LAPACK path where available
    assert diffusion_spectral_entropy(points) == pytest.approx(reference_dse(points), abs=TOLERANCE)


@pytest.mark.parametrize("options,reference_options", [
    ({"sigma": 3.0}, {"gaussian_kernel_sigma": 3.0}),
    ({"t": 2}, {"t": 2}),
    ({"t": 3, "sigma": 25.0}, {"t": 3, "gaussian_kernel_sigma": 25.0}),
    ({"matrix_entry": True}, {"matrix_entry_entropy": True}),
])
def test_options_equal_the_reference(options, reference_options):
    points = make_points(300, 24, "clustered", seed=2)
    assert diffusion_spectral_entropy(points, **options) == pytest.approx(reference_dse(points, **reference_options),
                                                                          abs=TOLERANCE)


@pytest.mark.parametrize("max_n,seed", [(400, 0), (400, 7), (999, 3)])
def test_subsampling_reproduces_the_reference_draw(max_n, seed):
    points = make_points(1000, 16, "uniform", seed=1)
    ours = diffusion_spectral_entropy(points, max_n=max_n, seed=seed)
    assert ours == pytest.approx(reference_dse(points, max_N=max_n, random_seed=seed), abs=TOLERANCE)
    cse = diffusion_spectral_entropy(points, max_n=max_n, seed=seed, classic_shannon=True, bins_per_dim=3)
    assert cse == pytest.approx(reference_dse(points, max_N=max_n, random_seed=seed, classic_shannon_entropy=True,
                                              num_bins_per_dim=3), abs=TOLERANCE)
    # A different draw gives a different value: the draw really is reproduced, not ignored.
    other = reference_dse(points, max_N=max_n, random_seed=seed + 1)
    assert abs(ours - other) > 10 * TOLERANCE


@pytest.mark.parametrize("n,dim,k,seed", [(300, 8, 3, 0), (600, 64, 10, 3), (500, 512, 7, 11)])
def test_dsmi_with_discrete_labels_equals_the_reference(n, dim, k, seed):
    points = make_points(n, dim, "clustered", seed=4)
    labels = np.random.default_rng(9).integers(0, k, size=n)
    labels[: n // 3] = np.arange(n // 3) % k  # some structure, some noise
    ours = diffusion_spectral_mutual_information(points, labels, seed=seed)
    assert ours == pytest.approx(reference_dsmi(points, labels, random_seed=seed), abs=TOLERANCE)
    torch_labels = torch.from_numpy(labels)
    assert diffusion_spectral_mutual_information(torch.from_numpy(points), torch_labels, seed=seed) == \
        pytest.approx(ours, abs=1e-12)


def test_dsmi_cse_and_repetitions_equal_the_reference():
    points, labels = clusters(300, 6, 4, separation=20.0, spread=4.0, seed=8)
    assert diffusion_spectral_mutual_information(points, labels, classic_shannon=True) == \
        pytest.approx(reference_dsmi(points, labels, classic_shannon_entropy=True), abs=TOLERANCE)
    assert diffusion_spectral_mutual_information(points, labels, repetitions=2, t=2) == \
        pytest.approx(reference_dsmi(points, labels, num_repetitions=2, t=2), abs=TOLERANCE)


def test_dsmi_with_binned_scalars_and_clustered_vectors_equals_the_reference():
    points = make_points(400, 12, "clustered", seed=6)
    scalars = points[:, 0] + np.random.default_rng(1).normal(size=400)
    assert diffusion_spectral_mutual_information(points, scalars) == \
        pytest.approx(reference_dsmi(points, scalars), abs=TOLERANCE)
    vectors = points[:, :5] + np.random.default_rng(2).normal(size=(400, 5))
    assert diffusion_spectral_mutual_information(points, vectors, n_clusters=4) == \
        pytest.approx(reference_dsmi(points, vectors, n_clusters=4), abs=TOLERANCE)


def test_dsmi_reproduces_the_reference_reseeding_when_classes_exceed_max_n(monkeypatch):
    # The reference's DSMI calls its DSE with max_N at its default; shrink that default so that
    # classes exceed it, and our max_n to match: the inner draws re-seed the global generator.
    import dse_dsmi.dsmi

    original = dse_dsmi.dsmi.diffusion_spectral_entropy
    monkeypatch.setattr(dse_dsmi.dsmi, "diffusion_spectral_entropy", functools.partial(original, max_N=120))
    points = make_points(400, 8, "uniform", seed=3)
    labels = np.random.default_rng(4).integers(0, 2, size=400)
    for seed in (0, 11):
        ours = diffusion_spectral_mutual_information(points, labels, max_n=120, seed=seed)
        assert ours == pytest.approx(reference_dsmi(points, labels, random_seed=seed), abs=TOLERANCE)


def test_float32_and_tensors_are_upcast_exactly():
    points = make_points(300, 32, "clustered", seed=7).astype(np.float32)
    expected = reference_dse(points.astype(np.float64))  # the reference computes float32 in float32
    assert diffusion_spectral_entropy(points) == pytest.approx(expected, abs=1e-9)
    assert diffusion_spectral_entropy(torch.from_numpy(points)) == pytest.approx(expected, abs=1e-9)
    # CSE bins in the input's dtype, as the reference does
    assert diffusion_spectral_entropy(points, classic_shannon=True) == \
        pytest.approx(reference_dse(points, classic_shannon_entropy=True), abs=TOLERANCE)


@pytest.mark.parametrize("solver", sorted(CPU_SOLVERS))
def test_cpu_solvers_agree_with_numpy(solver):
    points = torch.from_numpy(make_points(500, 16, "clustered", seed=3))
    expected = np.linalg.eigvalsh(diffusion_kernel(points).numpy())
    try:
        eigenvalues = symmetric_eigenvalues(diffusion_kernel(points), solver=solver)
    except UserError as err:
        pytest.skip(str(err))  # no vendored OpenBLAS with the two-stage driver on this platform
    assert np.max(np.abs(np.sort(eigenvalues) - expected)) < 1e-12


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_embeddings_on_a_gpu_give_the_reference_values():
    points = make_points(800, 64, "clustered", seed=1)
    labels = np.arange(800) % 6
    on_gpu = torch.from_numpy(points).float().cuda()
    exact = points.astype(np.float32).astype(np.float64)
    assert diffusion_spectral_entropy(on_gpu) == pytest.approx(reference_dse(exact), abs=TOLERANCE)
    assert diffusion_spectral_mutual_information(on_gpu, torch.from_numpy(labels).cuda()) == \
        pytest.approx(reference_dsmi(exact, labels), abs=TOLERANCE)
    assert diffusion_spectral_entropy(on_gpu, classic_shannon=True) == \
        pytest.approx(reference_dse(points.astype(np.float32), classic_shannon_entropy=True), abs=TOLERANCE)


# -- embeddings ------------------------------------------------------------------------------------
def small_lenet(seed: int = 0) -> nn.Module:
    import models

    torch.manual_seed(seed)
    return models.get_model("lenet", 10, 1)


def test_default_embedding_is_the_input_of_the_last_linear_layer():
    model = small_lenet()
    inputs = torch.randn(10, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    model.train()
    embeddings = collect_embeddings(model, [(inputs[:6], torch.arange(6)), (inputs[6:], torch.arange(6, 10))])
    assert model.training  # mode restored
    assert (embeddings.layer, embeddings.hook, embeddings.feature_dim) == ("classifier.6", "input", 84)
    assert embeddings.labels.tolist() == list(range(10))
    model.eval()
    with torch.no_grad():
        expected = model.classifier[:6](torch.flatten(model.avgpool(model.features(inputs)), 1))
    assert torch.allclose(embeddings.features, expected, atol=1e-6)
    assert not embeddings.features.requires_grad


def test_a_named_module_gives_its_output_before_an_in_place_activation():
    model = small_lenet().eval()
    inputs = torch.randn(5, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    embeddings = collect_embeddings(model, [inputs], layer="classifier.3")
    with torch.no_grad():
        hidden = model.classifier[:3](torch.flatten(model.avgpool(model.features(inputs)), 1))
        expected = model.classifier[3](hidden)  # followed by ReLU(inplace=True) in the model
    assert (expected < 0).any()
    assert torch.allclose(embeddings.features, expected, atol=1e-6)
    conv = collect_embeddings(model, [inputs], layer="features.0")
    assert conv.features.shape == (5, 6 * 32 * 32) and conv.hook == "output"


def test_unknown_and_shared_modules_are_user_errors():
    model = small_lenet()
    with pytest.raises(UserError, match=r"unknown module 'classifer.3'.*classifier.3.*valid names"):
        collect_embeddings(model, [torch.zeros(2, 1, 32, 32)], layer="classifer.3")

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act, self.fc = nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.act(self.act(x) - 1))

    with pytest.raises(UserError, match="ran 2 times"):
        collect_embeddings(Twice(), [torch.zeros(3, 4)], layer="act")
    assert penultimate_layer(Twice(), torch.zeros(1, 4)) == "fc"
    with pytest.raises(UserError, match="no nn.Linear"):
        collect_embeddings(nn.Sequential(nn.Conv2d(1, 2, 3)), [torch.zeros(2, 1, 8, 8)])


# -- the probe and the train.py analyzer ------------------------------------------------------------
def test_analyzer_flags():
    parser = argparse.ArgumentParser()
    declaration("dse").train_arguments(parser)
    analyzer = declaration("dse").train_analyzer(parser.parse_args([]))
    assert isinstance(analyzer, SnapshotAnalysis) and analyzer.name == "dse"
    assert (analyzer.settings.samples, analyzer.settings.seed, analyzer.settings.sigma) == (1000, 0, 10.0)
    custom = declaration("dse").train_analyzer(parser.parse_args(["--dse-samples", "50", "--dse-seed", "3", "--dse-sigma", "2"]))
    assert (custom.settings.samples, custom.settings.seed, custom.settings.sigma) == (50, 3, 2.0)
    assert declaration("dse").train_analyzer(parser.parse_args(["--no-dse"])) is None
    with pytest.raises(UserError, match="--dse-samples"):
        declaration("dse").train_analyzer(parser.parse_args(["--dse-samples", "1"]))
    assert analyzer.settings.dsmi_x_clusters == 10 and analyzer.settings.variants == ()
    assert declaration("dse").train_analyzer(parser.parse_args(["--no-dsmi-x"])).settings.dsmi_x_clusters is None
    chosen = declaration("dse").train_analyzer(parser.parse_args(["--dsmi-x-clusters", "4", "--dse-variants", "ase"]))
    assert (chosen.settings.dsmi_x_clusters, chosen.settings.variants) == (4, ("ase",))
    for flags, message in ((["--dsmi-x-clusters", "1"], "--dsmi-x-clusters 1 must be at least 2"),
                           (["--dse-samples", "8"], "too few to cluster"),
                           (["--dse-variants", "dsmi_z"], "unknown DSE variant")):
        with pytest.raises(UserError, match=message):
            declaration("dse").train_analyzer(parser.parse_args(flags))
    assert declaration("dse").train_analyzer(parser.parse_args(["--dse-samples", "8", "--no-dsmi-x"])) is not None


def dse_flag_off() -> list[str]:
    """``--no-dse`` once train.py has the DSE provider, so that only the analyzer under test runs."""
    options = {option for action in train.get_args_parser()._actions for option in action.option_strings}
    return ["--no-dse"] if "--no-dse" in options else []


def reference_values(model: nn.Module, inputs: torch.Tensor, labels: np.ndarray) -> dict:
    """DSE, DSMI with the labels and with the inputs (the package clusters them itself) and CSE of LeNet's
    penultimate features, by the reference package."""
    features = lenet_features(model, inputs)
    return {"dse": reference_dse(features), "dsmi_y": reference_dsmi(features, labels),
            "dsmi_x": reference_dsmi(features, inputs.flatten(1).numpy()),
            "cse": reference_dse(features, classic_shannon_entropy=True)}


def lenet_features(model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """LeNet's penultimate representation (the input of its last linear layer), float64."""
    model.eval()
    with torch.no_grad():
        return model.classifier[:6](torch.flatten(model.avgpool(model.features(inputs)), 1)).double().numpy()


def test_analyzer_through_train_uses_one_probe_and_matches_the_reference(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    samples = 120
    code = run_train(tmp_path, "--arch", "lenet", "--dataset", "digits", "--seed", "2", "--epochs", "2",
                     "--batch-size", "64", "--optimizer", "adam", "--lr", "0.003", "--split", "0.3",
                     "--snapshot-every", "1", "--no-projection-logging", *dse_flag_off(),
                     analyzers=[SnapshotAnalysis(DSE(DSESettings(samples=samples)))])
    assert code == 0
    out = tmp_path / "results" / "digits" / "lenet" / "2"
    documents = [read_result(out / f"dse_lenet_epoch000{epoch}.json") for epoch in range(3)]
    # The probe: drawn once from the validation split, the same samples at every snapshot.
    data = datasets.build_data("digits", datasets.DataOptions(split=0.3))
    positions = np.sort(np.random.default_rng(0).choice(len(data.val), size=samples, replace=False))
    for document in documents:
        assert document["probe"]["split"] == "val" and document["probe"]["size"] == samples
        assert document["probe"]["indices"] == data.val.indices[positions].tolist()
        assert (document["layer"], document["hook"], document["feature_dim"]) == ("classifier.6", "input", 84)
    inputs, labels = probe_inputs(data.val, positions)
    snapshots = read_run(tmp_path, seed=2)["snapshots"]
    assert [entry["epoch"] for entry in snapshots] == [0, 1, 2]
    for entry, document in zip(snapshots, documents):
        model = load_snapshot_model(run_dir(tmp_path, seed=2) / entry["file"]).model
        expected = reference_values(model, inputs, labels)
        for key in ("dse", "dsmi_y", "dsmi_x", "cse"):
            assert document[key] == pytest.approx(expected[key], abs=TOLERANCE), key
            assert entry["analyses"]["dse"][key] == document[key]
    # The input clusters are computed once and recorded with the probe.
    assert len({tuple(document["input_clusters"]["ids"]) for document in documents}) == 1
    assert documents[0]["input_clusters"]["n_clusters"] == 10 and len(documents[0]["input_clusters"]["ids"]) == samples
    summary = read_result(out / "dse_summary.json")
    assert summary["epochs"] == [0, 1, 2]
    assert summary["dse"] == [document["dse"] for document in documents]
    assert summary["dsmi_x"] == [document["dsmi_x"] for document in documents]
    events = EventAccumulator(str(tmp_path / "tb" / "digits" / "lenet" / "2")).Reload()
    assert {"dse/dse", "dse/dsmi_y", "dse/dsmi_x", "dse/cse"} <= set(events.Tags()["scalars"])


# -- compute_dse.py --------------------------------------------------------------------------------
def run_cli(*argv: str) -> int:
    return run_main(compute_dse.main, list(argv))


def test_cli_on_a_run_directory_matches_the_reference_and_writes_a_summary(digits_run, tmp_path):
    assert run_cli("--load-from", str(digits_run), "--results", str(tmp_path), "--dse-samples", "150") == 0
    out = tmp_path / "digits" / "lenet" / "0"
    documents = [read_result(out / f"dse_lenet_epoch000{epoch}.json") for epoch in range(4)]
    summary = json.loads((out / "dse_summary.json").read_text())
    assert summary["kind"] == "dse_summary" and summary["epochs"] == [0, 1, 2, 3]
    assert summary["files"] == [f"dse_lenet_epoch000{epoch}.json" for epoch in range(4)]
    for key in ("dse", "dsmi_y", "dsmi_x", "cse"):
        assert summary[key] == [document[key] for document in documents]
    data = datasets.build_data("digits")  # the run has no validation split: the probe is from the test set
    positions = np.sort(np.random.default_rng(0).choice(len(data.test), size=150, replace=False))
    assert {document["probe"]["split"] for document in documents} == {"test"}
    assert all(document["probe"]["indices"] == data.test.indices[positions].tolist() for document in documents)
    inputs, labels = probe_inputs(data.test, positions)
    last = load_snapshot_model(digits_run / "lenet_epoch0003.pt").model
    expected = reference_values(last, inputs, labels)
    for key in ("dse", "dsmi_y", "dsmi_x", "cse"):
        assert documents[3][key] == pytest.approx(expected[key], abs=TOLERANCE), key
    assert documents[3]["source"] == "snapshot" and documents[3]["epoch"] == 3


def test_cli_named_layer_sigma_and_errors(digits_run, tmp_path, capsys):
    snapshot = str(digits_run / "lenet_epoch0002.pt")
    assert run_cli("--load-from", snapshot, "--results", str(tmp_path), "--layer", "classifier.3", "--sigma", "2",
                   "--dse-samples", "60") == 0
    out = tmp_path / "digits" / "lenet" / "0"
    document = read_result(out / "dse_layer-classifier-3_lenet_epoch0002.json")
    assert (document["layer"], document["hook"], document["feature_dim"]) == ("classifier.3", "output", 84)
    assert document["settings"]["sigma"] == 2.0
    assert read_result(out / "dse_layer-classifier-3_summary.json")["epochs"] == [2]
    assert not (out / "dse_lenet_epoch0002.json").exists()
    capsys.readouterr()
    for flags, message in ((["--layer", "classifer.3"], "unknown module"), (["--split", "0.5"], "disagrees"),
                           (["--dse-samples", "1"], "--dse-samples")):
        assert run_cli("--load-from", snapshot, "--results", str(tmp_path / "bad"), *flags) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not list((tmp_path / "bad").rglob("*.json"))


def test_cli_measures_a_random_init(tmp_path):
    assert run_cli("--arch", "lenet", "--dataset", "digits", "--seed", "4", "--results", str(tmp_path),
                   "--dse-samples", "80") == 0
    document = read_result(tmp_path / "digits" / "lenet" / "4" / "dse_init_lenet.json")
    assert (document["source"], document["epoch"], document["probe"]["size"]) == ("init", 0, 80)
    assert 0.0 <= document["dse"] <= document["log2_size"] + 1e-9


def test_cli_variants_and_no_dsmi_x(digits_run, tmp_path):
    """--dse-variants stores each estimator under its key (each equal to dse-dsmi's in
    tests/test_dse_variants.py); --no-dsmi-x leaves DSMI(Z; X) out, and records no clusters."""
    snapshot = digits_run / "lenet_epoch0003.pt"
    assert run_cli("--load-from", str(snapshot), "--results", str(tmp_path), "--dse-samples", "100",
                   "--dse-variants", "csmi", "ase_gaussian", "--dsmi-x-clusters", "5") == 0
    document = read_result(tmp_path / "digits" / "lenet" / "0" / "dse_lenet_epoch0003.json")
    data = datasets.build_data("digits")
    positions = np.sort(np.random.default_rng(0).choice(len(data.test), size=100, replace=False))
    inputs, labels = probe_inputs(data.test, positions)
    features = lenet_features(load_snapshot_model(snapshot).model, inputs)
    assert document["input_clusters"]["n_clusters"] == 5
    ids = np.asarray(document["input_clusters"]["ids"])
    assert document["dsmi_x"] == pytest.approx(reference_dsmi(features, ids), abs=TOLERANCE)
    expected = dse_variants(features, ["csmi", "ase_gaussian"], labels, ids, sigma=10.0, max_n=10000, seed=0)
    assert set(document["variants"]) == {"csmi_y", "csmi_x", "ase_gaussian"}
    for key, value in expected.items():
        assert document["variants"][key] == pytest.approx(value, abs=TOLERANCE), key
    assert document["settings"]["variants"] == ["csmi", "ase_gaussian"]
    assert run_cli("--load-from", str(snapshot), "--results", str(tmp_path / "off"), "--dse-samples", "100",
                   "--no-dsmi-x") == 0
    off = read_result(tmp_path / "off" / "digits" / "lenet" / "0" / "dse_lenet_epoch0003.json")
    assert off["dsmi_x"] is None and off["input_clusters"] is None and off["dse"] == document["dse"]
