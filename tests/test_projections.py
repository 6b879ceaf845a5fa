"""Projection statistics: analytic cases for the metrics, compute_projections.py in-process, the analyzer."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

import compute_projections
import metrics.projections as projections_module
import models
from analyses.projections import ProjectionLogging
from analyses.registry import declaration
from metrics.projections import (
    LayerWeights,
    distance_from_init,
    filter_projections,
    layer_statistics,
    network_statistics,
    projection_summary,
    sign_test,
)
from schema import read_json as read_result
from tests.train_helpers import read_run, run_dir, run_train
from utils.cli import run_main
from utils.errors import UserError


def run_cli(*argv: str) -> int:
    return run_main(compute_projections.main, list(argv))


def oracle_projections(weight: torch.Tensor, *, normalize: bool) -> np.ndarray:
    """Straight from the definition, in float64 numpy."""
    w = weight.detach().double().numpy().reshape(weight.shape[0], -1)
    sums = w.sum(axis=1)
    return sums / (np.linalg.norm(w, axis=1) * math.sqrt(w.shape[1])) if normalize else sums


def snapshot_state(path) -> dict:
    return torch.load(path, weights_only=True)["model_state_dict"]


# -- metrics: analytic cases -----------------------------------------------------------------------
@pytest.mark.parametrize("fan_in", [1, 9, 27, 75, 4608])
def test_all_ones_filter_gives_one_and_its_negation_minus_one(fan_in):
    ones = torch.ones(3, fan_in)
    assert filter_projections(ones, normalize=True).tolist() == pytest.approx([1.0] * 3, abs=1e-12)
    assert filter_projections(-ones, normalize=True).tolist() == pytest.approx([-1.0] * 3, abs=1e-12)
    assert filter_projections(ones).tolist() == [float(fan_in)] * 3
    assert filter_projections(0.01 * ones, normalize=True).tolist() == pytest.approx([1.0] * 3, abs=1e-12)


def test_normalized_projection_is_the_cosine_with_the_ones_direction():
    filters = torch.tensor([[3.0, 4.0], [30.0, 40.0], [1.0, -1.0]])
    expected = [7 / (5 * math.sqrt(2)), 7 / (5 * math.sqrt(2)), 0.0]
    assert filter_projections(filters, normalize=True).tolist() == pytest.approx(expected, abs=1e-12)


def test_zero_sum_and_zero_filters_count_in_mass():
    filters = torch.tensor([[1.0, -1.0, 0.0], [2.0, -2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0],
                            [-1.0, -1.0, 1.0], [3.0, 0.0, 0.0]])
    for normalize in (False, True):
        values = filter_projections(filters, normalize=normalize)
        assert torch.isfinite(values).all()
        summary = projection_summary(values)
        assert summary["mass"] == pytest.approx(4 / 6)
        assert summary["n_zero"] == 3 and summary["sign_test_k"] == 4 and summary["n_filters"] == 6


def test_gaussian_filters_are_unbiased_and_shifted_ones_are_not():
    generator = torch.Generator().manual_seed(0)
    filters = torch.randn(4000, 27, generator=generator)
    unbiased = projection_summary(filter_projections(filters, normalize=True))
    assert abs(unbiased["mass"] - 0.5) < 0.03 and unbiased["sign_test_p"] > 0.05
    assert abs(unbiased["mean"]) < 0.02
    biased = projection_summary(filter_projections(filters + 0.5, normalize=True))
    assert biased["mass"] < 0.05 and biased["sign_test_p"] < 1e-100
    assert projection_summary(filter_projections(filters - 0.5))["mass"] > 0.95


def test_sign_test_is_the_exact_binomial_tail():
    all_positive = torch.arange(1.0, 11.0)  # k = 0 of n = 10
    assert sign_test(all_positive) == (0, pytest.approx(2 * 0.5**10))
    assert sign_test(torch.tensor([-1.0, 1.0]))[1] == pytest.approx(1.0)


def test_summary_of_a_known_sample():
    values = torch.arange(101.0) - 50  # -50..50
    summary = projection_summary(values)
    assert summary["mean"] == 0 and summary["median"] == 0
    assert (summary["p5"], summary["p25"], summary["p75"], summary["p95"]) == (-45, -25, 25, 45)
    assert (summary["min"], summary["max"]) == (-50, 50)
    assert summary["std"] == pytest.approx(math.sqrt(850))  # population std of -50..50
    assert summary["mass"] == pytest.approx(51 / 101)
    histogram = summary["histogram"]
    assert sum(histogram["counts"]) == 101 and len(histogram["bin_edges"]) == len(histogram["counts"]) + 1
    assert histogram["bin_edges"][0] == -50 and histogram["bin_edges"][-1] == 50
    assert histogram["bin_edges"][10] == pytest.approx(0.0) and sum(histogram["counts"][:10]) == 50


def test_a_layer_compared_with_itself_has_distance_zero_and_cosine_one():
    weight = torch.randn(64, 3, 3, 3)
    assert distance_from_init(weight, weight.clone()) == {"l2_dist": 0.0, "l_inf_dist": 0.0,
                                                          "cosine": pytest.approx(1.0, abs=1e-6)}
    record = layer_statistics(weight.reshape(64, -1), normalize=True, init_filters=weight.reshape(64, -1).clone())
    assert (record["l2_dist"], record["ks_stat"], record["ks_p"]) == (0.0, 0.0, 1.0)
    assert record["init_mass"] == record["mass"]


def test_distances_of_scaled_negated_and_orthogonal_weights():
    init = torch.randn(32, 5, 3, 3)
    assert distance_from_init(2 * init, init) == pytest.approx({"l2_dist": 1.0, "l_inf_dist": 1.0, "cosine": 1.0})
    assert distance_from_init(-init, init) == pytest.approx({"l2_dist": 2.0, "l_inf_dist": 2.0, "cosine": -1.0})
    orthogonal = distance_from_init(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    assert orthogonal == pytest.approx({"l2_dist": math.sqrt(5) / 2, "l_inf_dist": 1.0, "cosine": 0.0})
    assert distance_from_init(init, torch.zeros_like(init)) == {"l2_dist": None, "l_inf_dist": None, "cosine": None}


def test_chunked_distances_match_a_float64_computation(monkeypatch):
    monkeypatch.setattr(projections_module, "_CHUNK_ELEMENTS", 7)
    weight, init = torch.randn(10, 13), torch.randn(10, 13)
    w, w0 = weight.double(), init.double()
    expected = {
        "l2_dist": float((w - w0).norm() / w0.norm()),
        "l_inf_dist": float((w - w0).abs().max() / w0.abs().max()),
        "cosine": float((w * w0).sum() / (w.norm() * w0.norm())),
    }
    assert distance_from_init(weight, init) == pytest.approx(expected, rel=1e-6)


def test_network_statistics_pools_projections_and_distances():
    a0, b0 = torch.randn(8, 27), torch.randn(16, 72)
    layers = [LayerWeights("a", 2 * a0), LayerWeights("b", b0.clone())]
    records, net = network_statistics(layers, normalize=False, init={"a": a0, "b": b0})
    assert net["n_filters"] == 24 and net["n_layers"] == 2
    assert net["projections"] == records[0]["projections"] + records[1]["projections"]
    expected_l2 = float(a0.double().norm() / torch.cat([a0.flatten(), b0.flatten()]).double().norm())
    assert net["l2_dist"] == pytest.approx(expected_l2, rel=1e-6) and records[1]["l2_dist"] == 0.0
    with pytest.raises(UserError, match="layer b is missing"):
        network_statistics(layers, init={"a": a0})
    with pytest.raises(UserError, match="shape"):
        network_statistics(layers, init={"a": a0, "b": b0[:, :10]})


def test_ks_test_detects_a_shift_from_init():
    init = torch.randn(500, 27)
    record = layer_statistics(init - 0.3, init_filters=init)
    assert record["ks_p"] < 1e-10 and record["ks_stat"] > 0.3


def test_non_finite_weights_raise_a_user_error_naming_the_layer():
    weight = torch.randn(4, 9)
    weight[2, 3] = float("nan")
    for normalize in (False, True):
        with pytest.raises(UserError, match="layer features.3 has non-finite"):
            filter_projections(weight, normalize=normalize, layer="features.3")
    weight[2, 3] = float("inf")
    with pytest.raises(UserError, match="layer features.3"):
        network_statistics([LayerWeights("features.3", weight)])
    with pytest.raises(UserError, match="layer conv1"):
        network_statistics([LayerWeights("conv1", torch.randn(4, 9))], init={"conv1": weight})


# -- the CLI ---------------------------------------------------------------------------------------
def test_cli_on_a_snapshot_keeps_the_reference_nesting(digits_run, tmp_path):
    snapshot = digits_run / "lenet_epoch0003.pt"
    assert run_cli("--load-from", str(snapshot), "--results", str(tmp_path), "--normalize") == 0
    out = tmp_path / "digits" / "lenet" / "0"
    path = out / "projections_lenet_epoch0003.json"
    document = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert read_result(path) == document
    assert (document["arch"], document["dataset"], document["seed"], document["epoch"]) == ("lenet", "digits", 0, 3)
    assert document["kind"] == "projections" and document["schema_version"] >= 1 and document["args"]["normalize"]
    assert (out / "positive_orthant.log").is_file()

    state, init_state = snapshot_state(snapshot), snapshot_state(digits_run / "lenet_epoch0000.pt")
    model = models.get_model("lenet", 10, 1)
    convs = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert [layer["name"] for layer in document["layers"]] == convs
    assert document["init_from"] == str(digits_run / "lenet_epoch0000.pt")
    for layer in document["layers"]:
        nested = document[str(layer["stage"])][str(layer["block"])]
        assert {"projections", "mean", "mass", "l2_dist", "l_inf_dist"} <= set(nested)
        expected = oracle_projections(state[f"{layer['name']}.weight"], normalize=True)
        assert nested["projections"] == pytest.approx(expected.tolist(), abs=1e-6)
        assert nested["mean"] == pytest.approx(expected.mean(), abs=1e-6)
        assert nested["mass"] == pytest.approx(np.mean(expected <= 0))
        w, w0 = state[f"{layer['name']}.weight"].double(), init_state[f"{layer['name']}.weight"].double()
        assert nested["l2_dist"] == pytest.approx(float((w - w0).norm() / w0.norm()), rel=1e-5)
        assert layer["mean"] == nested["mean"] and layer["fan_in"] == w[0].numel()
    pooled = np.concatenate([oracle_projections(state[f"{n}.weight"], normalize=True) for n in convs])
    assert document["net"]["mass"] == pytest.approx(np.mean(pooled <= 0))
    assert document["net"]["n_filters"] == pooled.size


def test_cli_on_a_run_directory_writes_every_snapshot_and_a_summary(digits_run, tmp_path):
    assert run_cli("--arch", "lenet", "--dataset", "digits", "--load-from", str(digits_run),
                   "--results", str(tmp_path)) == 0
    out = tmp_path / "digits" / "lenet" / "0"
    documents = [read_result(out / f"projections_lenet_epoch000{e}.json") for e in range(4)]
    summary = read_result(out / "projections_summary.json")
    assert summary["kind"] == "projections_summary" and summary["epochs"] == [0, 1, 2, 3]
    names = [layer["name"] for layer in summary["layers"]]
    assert names == [layer["name"] for layer in documents[0]["layers"]]
    for metric in ("mean", "mass", "sign_test_p", "ks_p", "l2_dist", "l_inf_dist", "cosine"):
        matrix = summary["metrics"][metric]
        assert np.array(matrix, dtype=float).shape == (len(names), 4)
        assert matrix == [[doc["layers"][i][metric] for doc in documents] for i in range(len(names))]
    assert summary["net"]["mass"] == [doc["net"]["mass"] for doc in documents]
    l2 = np.array(summary["metrics"]["l2_dist"])
    assert (l2[:, 0] == 0).all() and (l2[:, 3] > 0).all()  # epoch 0 is the run's own init
    first = snapshot_state(digits_run / "lenet_epoch0001.pt")["features.0.weight"]
    assert documents[1]["0"]["0"]["projections"] == pytest.approx(oracle_projections(first, normalize=False).tolist(),
                                                                  abs=1e-5)


def test_no_init_and_an_explicit_init(digits_run, tmp_path):
    snapshot = str(digits_run / "lenet_epoch0002.pt")
    log = tmp_path / "logs" / "projections.log"
    assert run_cli("--load-from", snapshot, "--results", str(tmp_path / "a"), "--no-init", "--log", str(log)) == 0
    assert "lenet_epoch0002" in log.read_text()
    document = read_result(tmp_path / "a" / "digits" / "lenet" / "0" / "projections_lenet_epoch0002.json")
    assert document["init_from"] is None and "l2_dist" not in document["0"]["0"] and "l2_dist" not in document["net"]
    assert run_cli("--load-from", snapshot, "--results", str(tmp_path / "b"), "--init-from", snapshot) == 0
    document = read_result(tmp_path / "b" / "digits" / "lenet" / "0" / "projections_lenet_epoch0002.json")
    assert document["net"]["l2_dist"] == 0.0 and document["net"]["ks_p"] == 1.0


def test_with_linear_adds_the_classifier_as_a_last_stage(digits_run, tmp_path):
    assert run_cli("--load-from", str(digits_run / "lenet_epoch0001.pt"), "--results", str(tmp_path),
                   "--with-linear", "--no-init") == 0
    document = read_result(tmp_path / "digits" / "lenet" / "0" / "projections_lenet_epoch0001.json")
    linear = [layer for layer in document["layers"] if layer["kind"] == "linear"]
    model = models.get_model("lenet", 10, 1)
    expected = [(n, m.in_features) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert [(layer["name"], layer["fan_in"]) for layer in linear] == expected
    last_conv_stage = max(layer["stage"] for layer in document["layers"] if layer["kind"] == "conv")
    assert {layer["stage"] for layer in linear} == {last_conv_stage + 1}
    assert str(last_conv_stage + 1) in document


def test_reference_format_files_load_with_arch_and_dataset(digits_run, tmp_path, capsys):
    reference_run = tmp_path / "reference_run"
    reference_run.mkdir()
    trained, init = snapshot_state(digits_run / "lenet_epoch0002.pt"), snapshot_state(digits_run / "lenet_epoch0000.pt")
    torch.save({"model_state_dict": trained, "epoch": 4}, reference_run / "lenet_4.tar")
    torch.save(init, reference_run / "lenet_init.tar")
    out = tmp_path / "results"
    assert run_cli("--arch", "lenet", "--dataset", "digits", "--seed", "7", "--load-from",
                   str(reference_run / "lenet_4.tar"), "--results", str(out)) == 0
    document = read_result(out / "digits" / "lenet" / "7" / "projections_lenet_4.json")
    assert (document["epoch"], document["seed"]) == (5, 7)
    assert document["init_from"] == str(reference_run / "lenet_init.tar")
    w, w0 = trained["features.2.weight"].double(), init["features.2.weight"].double()
    assert document["0"]["1"]["l2_dist"] == pytest.approx(float((w - w0).norm() / w0.norm()), rel=1e-5)
    capsys.readouterr()
    assert run_cli("--load-from", str(reference_run / "lenet_4.tar"), "--results", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--arch and --dataset" in err


def test_a_default_init_that_does_not_fit_is_skipped_but_an_explicit_one_is_an_error(digits_run, tmp_path, capsys):
    reference_run = tmp_path / "reference_run"
    reference_run.mkdir()
    torch.save({"model_state_dict": snapshot_state(digits_run / "lenet_epoch0002.pt")}, reference_run / "lenet_4.tar")
    torch.save(models.get_model("lenet", 5, 1).state_dict(), reference_run / "lenet_init.tar")  # a 5-class head
    common = ["--arch", "lenet", "--dataset", "digits", "--load-from", str(reference_run / "lenet_4.tar"),
              "--results", str(tmp_path / "out")]
    assert run_cli(*common) == 0
    document = read_result(tmp_path / "out" / "digits" / "lenet" / "none" / "projections_lenet_4.json")
    assert document["init_from"] is None and "l2_dist" not in document["net"]
    assert "not comparing with" in capsys.readouterr().err
    assert run_cli(*common, "--init-from", str(reference_run / "lenet_init.tar")) == 2
    assert "does not fit" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--arch", "vgg11"], ["--dataset", "mnist"], ["--seed", "5"]])
def test_flags_disagreeing_with_the_snapshot_exit_2_with_one_line(digits_run, tmp_path, capsys, flags):
    code = run_cli("--load-from", str(digits_run / "lenet_epoch0001.pt"), "--results", str(tmp_path), *flags)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "disagrees" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.json"))


def test_non_finite_snapshot_exits_2_naming_the_layer_and_the_file(digits_run, tmp_path, capsys):
    checkpoint = torch.load(digits_run / "lenet_epoch0001.pt", weights_only=True)
    checkpoint["model_state_dict"]["features.5.weight"][0, 0, 0, 0] = float("nan")
    broken = tmp_path / "lenet_epoch0001.pt"
    torch.save(checkpoint, broken)
    assert run_cli("--load-from", str(broken), "--results", str(tmp_path / "out"), "--no-init") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "features.5" in err and str(broken) in err
    assert not list((tmp_path / "out").rglob("*.json"))


def test_without_a_snapshot_a_seeded_random_init_is_analysed(tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert run_cli("--arch", "lenet", "--dataset", "digits", "--seed", seed, "--results", str(tmp_path / name)) == 0
    a, b, c = (read_result(tmp_path / name / "digits" / "lenet" / seed / "projections_init_lenet.json")
               for name, seed in (("a", "3"), ("b", "3"), ("c", "4")))
    assert (a["epoch"], a["source"], a["snapshot"]) == (0, "init", None)
    assert a["net"]["projections"] == b["net"]["projections"] != c["net"]["projections"]
    torch.manual_seed(3)
    expected = oracle_projections(models.get_model("lenet", 10, 1).features[0].weight, normalize=False)
    assert a["0"]["0"]["projections"] == pytest.approx(expected.tolist(), abs=1e-6)


# -- the train.py analyzer -------------------------------------------------------------------------
def test_analyzer_flag_turns_it_off():
    parser = argparse.ArgumentParser()
    declaration("projections").train_arguments(parser)
    assert isinstance(declaration("projections").train_analyzer(parser.parse_args([])), ProjectionLogging)
    assert declaration("projections").train_analyzer(parser.parse_args(["--no-projection-logging"])) is None


def test_analyzer_logs_mean_mass_and_histograms_through_train(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code = run_train(tmp_path, "--arch", "lenet", "--dataset", "digits", "--seed", "1", "--epochs", "1",
                     "--batch-size", "64", "--optimizer", "adam", "--lr", "0.003", analyzers=[ProjectionLogging()])
    assert code == 0
    snapshots = read_run(tmp_path, seed=1)["snapshots"]
    assert [s["epoch"] for s in snapshots] == [0, 1]
    for entry in snapshots:
        logged = entry["analyses"]["projections"]
        state = snapshot_state(run_dir(tmp_path, seed=1) / entry["file"])
        for name in ("features.0", "features.12"):
            expected = oracle_projections(state[f"{name}.weight"], normalize=True)
            assert logged[f"{name}/mean"] == pytest.approx(expected.mean(), abs=1e-6)
            assert logged[f"{name}/mass"] == pytest.approx(np.mean(expected <= 0))
        assert 0.0 <= logged["net/mass"] <= 1.0
    events = EventAccumulator(str(tmp_path / "tb" / "digits" / "lenet" / "1"), size_guidance={"histograms": 0}).Reload()
    assert "projections/features.0/histogram" in events.Tags()["histograms"]
    assert "projections/features.0/mass" in events.Tags()["scalars"]
