"""rank_measures.py --pgdl on PGDL tasks written in the competition's exact formats (tests/pgdl_helpers.py:
a complete 2x2x2 grid of small VGG-like Keras models, HDF5 weights in Keras 2's layout, TFRecord shards,
model_configs.json whose train_acc Keras itself measured): the self-check, the outputs, resumption, the
competition's score on hand-built tables, bad input (one line, exit 2, nothing written), the launcher."""
from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rank_measures
from comparison.pgdl import MEAN, Reference, scores
from sweeper.calls import CallLaunch, run_calls
from tests.pgdl_helpers import GRID, fails_on_two, keras_model, keras_outputs, write_task
from utils.cli import run_main

pytest.importorskip("keras")  # the oracle that writes the tasks' reference train_acc (requirements-dev.txt)
TASK = "task9_t"
FAST = ["--analyses", "norms", "--resamples", "0", "--formats", "png"]


@pytest.fixture(scope="module")
def public_data(tmp_path_factory) -> Path:
    """``public_data/{input_data,reference_data}/task9_t`` (8 models, 64 training examples in 2 shards)."""
    root = tmp_path_factory.mktemp("public_data")
    write_task(root, task=TASK)
    return root


def copy_of(public_data: Path, tmp_path: Path) -> Path:
    shutil.copytree(public_data, tmp_path / "public_data")
    return tmp_path / "public_data"


def test_a_task_is_read_checked_measured_and_scored(public_data, tmp_path):
    out = tmp_path / "out"
    task_dir = public_data / "input_data" / TASK
    argv = ["--pgdl", str(task_dir), "--out", str(out), "--pgdl-logits", "6", "--analyses", "norms", "projections",
            "--resamples", "0", "--formats", "png"]
    assert run_main(rank_measures.main, argv) == 0
    check = pd.read_csv(out / "pgdl_check.csv")
    assert list(check.columns) == ["task", "model", "reference_train_acc", "measured_train_acc"]
    assert len(check) == 8 and (check.measured_train_acc - check.reference_train_acc).abs().max() <= 0.1
    found = pd.read_csv(out / "pgdl_scores.csv")
    assert list(found.columns) == ["measure", "task", "score"] and set(found.task) == {TASK, MEAN}
    per_task = found[found.task == TASK].set_index("measure").score
    assert {"path_norm", "log_prod_spec", "bias_mean"} <= set(per_task.index)
    means = found[found.task == MEAN].set_index("measure").score
    assert np.allclose(means[per_task.index], 100 * per_task)
    predicted = json.loads((out / "predict" / "path_norm" / f"{TASK}.predict").read_text())
    table = pd.read_csv(out / "measures.csv")
    path_norms = table[table.measure == "path_norm"].set_index("model").value
    assert predicted == {f"model_{i}": pytest.approx(path_norms[f"{TASK}/model_{i}"]) for i in range(8)}
    turned = json.loads((out / "predict" / "bias_mean" / f"{TASK}.predict").read_text())  # +1: less gap, negated
    bias = table[table.measure == "bias_mean"].set_index("model").value
    assert turned == {f"model_{i}": pytest.approx(-bias[f"{TASK}/model_{i}"]) for i in range(8)}
    assert set(table.source) == {"pgdl"} and set(GRID) <= set(table.columns)
    ranking = pd.read_csv(out / "ranking.csv")
    assert {"gen_gap", "test_top1", "train_top1"} == set(ranking.target)
    assert {f"granulated_{axis}" for axis in GRID} <= set(ranking.columns)
    report = (out / "report.md").read_text()
    assert "## The PGDL competition's score" in report and "8 PGDL model(s) of task(s) task9_t" in report
    assert_logits_are_keras_s(task_dir, out)
    documents = sorted((out / "models").rglob("*.json"))
    before = {path: path.stat().st_mtime_ns for path in documents}
    assert run_main(rank_measures.main, argv) == 0  # a second run reuses every result
    assert {path: path.stat().st_mtime_ns for path in documents} == before


def assert_logits_are_keras_s(task_dir: Path, out: Path) -> None:
    """``--pgdl-logits N``: each model's logits on the first N training examples, in the shards' order;
    their softmax is what Keras computes on the same shards."""
    from datasets.pgdl import read_examples

    images, _ = read_examples(task_dir, limit=6)
    config = json.loads((task_dir / "model_5" / "config.json").read_text())
    oracle = keras_model(config["model_config"], config["input_shape"])
    oracle.load_weights(str(task_dir / "model_5" / "weights.hdf5"))
    theirs = keras_outputs(oracle, images.permute(0, 2, 3, 1).numpy())
    ours = np.load(out / "logits" / TASK / "model_5.npy")
    assert ours.shape == (6, 10)
    softmax = np.exp(ours - ours.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), theirs, atol=1e-5, rtol=0)


def _unknown_layer(root: Path) -> None:
    path = root / "input_data" / TASK / "model_3" / "config.json"
    config = json.loads(path.read_text())
    config["model_config"].insert(2, {"layer_name": "LSTM", "units": 4})
    path.write_text(json.dumps(config))


def _incomplete_grid(root: Path) -> None:
    shutil.rmtree(root / "input_data" / TASK / "model_5")
    path = root / "reference_data" / TASK / "model_configs.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "5"}))


def _truncated(relative: str):
    def cut(root: Path) -> None:
        path = root / "input_data" / TASK / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    return cut


@pytest.mark.parametrize(("spoil", "expected"), [
    (_unknown_layer, f"task {TASK}, model model_3, layer 2 (LSTM): unknown layer"),
    (lambda root: (root / "reference_data" / TASK / "model_configs.json").unlink(), "no model_configs.json at"),
    (_incomplete_grid, f"task {TASK}: the grid over conv_width, dropout, weight_decay is incomplete: 1 of 8"),
    (_truncated("model_2/weights.hdf5"), f"task {TASK}, model model_2: cannot read"),
    (_truncated("dataset_1/train/shard_2.tfrecord"), "shard_2.tfrecord: record"),
], ids=["unknown layer", "no model_configs.json", "incomplete grid", "truncated HDF5", "truncated TFRecord"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(public_data, tmp_path, capsys, spoil, expected):
    root = copy_of(public_data, tmp_path)
    spoil(root)
    out = tmp_path / "out"
    assert run_main(rank_measures.main, ["--pgdl", str(root / "input_data" / TASK), "--out", str(out), *FAST]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and expected in err[0], err
    assert not out.exists()


def test_an_initialization_that_does_not_fit_is_a_note_and_the_model_goes_on_without(public_data, tmp_path):
    """As the competition's loader, which prints the error and goes on."""
    from analyses.pgdl import check_task, task_models

    root = copy_of(public_data, tmp_path)
    _truncated("model_4/weights_init.hdf5")(root)
    notes: list[str] = []
    models, facts = check_task(task_models(root / "input_data" / TASK), notes)
    assert [model.model for model in models if model.init_path is None] == ["model_4"]
    assert len(notes) == 1 and "model model_4: cannot read" in notes[0] and "without an initialization" in notes[0]
    assert facts == {"classes": 10, "examples": 64, "input_shape": (3, 8, 8)}


# -- the competition's score on hand-built tables -----------------------------------------------------------------
def reference(task: str = "t", seed: int = 0) -> Reference:
    """A complete 2x2x2 grid with gaps that differ within every cell of every pair of axes."""
    rng = np.random.default_rng(seed)
    axes = {"a": [1, 2], "b": [0.0, 0.5], "c": ["x", "y"]}
    hparams, metrics = {}, {}
    for number, values in enumerate(itertools.product(*axes.values())):
        folder = f"model_{number}"
        hparams[folder] = dict(zip(axes, values))
        train = 0.9 + 0.1 * rng.random()
        metrics[folder] = {"train_acc": train, "test_acc": train - (0.05 + 0.3 * rng.random())}
    return Reference(task, Path("model_configs.json"), hparams, metrics, axes)


def gaps(ref: Reference) -> dict[str, float]:
    return {m: value["train_acc"] - value["test_acc"] for m, value in ref.metrics.items()}


def test_a_measure_equal_to_the_gap_scores_highest_and_a_constant_zero():
    ref = reference()
    rng = np.random.default_rng(1)
    found = {("gap", "t"): gaps(ref), ("constant", "t"): {m: 3.0 for m in ref.metrics},
             ("noise", "t"): {m: float(rng.normal()) for m in ref.metrics},
             ("half", "t"): {m: g + 0.1 * rng.normal() for m, g in gaps(ref).items()}}
    table = scores(found, [ref]).set_index(["measure", "task"]).score
    assert table["gap", "t"] == pytest.approx(1.0, abs=1e-9)
    assert table["constant", "t"] == 0.0
    assert all(table[name, "t"] < table["gap", "t"] for name in ("noise", "half", "constant"))
    assert table["gap", MEAN] == pytest.approx(100.0, abs=1e-7)


def test_the_mean_is_over_the_tasks_times_100_and_needs_every_task():
    first, second = reference("t1", 0), reference("t2", 1)
    found = {("gap", "t1"): gaps(first), ("gap", "t2"): {m: -g for m, g in gaps(second).items()},
             ("only_t1", "t1"): gaps(first)}
    table = scores(found, [first, second]).set_index(["measure", "task"]).score
    assert table["gap", MEAN] == pytest.approx(50.0 * (table["gap", "t1"] + table["gap", "t2"]))
    assert np.isnan(table["only_t1", MEAN])


# -- the launcher --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: processes, which import torch
def test_a_failing_call_is_one_line_and_the_others_go_on(jobs):
    outcomes = run_calls(fails_on_two, [(f"item {n}", n) for n in range(4)], CallLaunch("local", jobs))
    assert [outcome.result for outcome in outcomes] == [0, 10, None, 30]
    assert outcomes[2].error == "ValueError: two is not allowed" and not outcomes[1].failed


@pytest.mark.slow
def test_every_analysis_on_two_tasks_at_once(public_data, tmp_path):
    """The default analyses, two tasks: each task's axes are its own (prefixed), both scored, the mean over both."""
    root = copy_of(public_data, tmp_path)
    write_task(root, task="task8_t", seed=5)
    out = tmp_path / "out"
    tasks = [str(root / "input_data" / task) for task in (TASK, "task8_t")]
    assert run_main(rank_measures.main, ["--pgdl", *tasks, "--out", str(out), "--jobs", "2", "--resamples", "0",
                                         "--formats", "png"]) == 0
    found = pd.read_csv(out / "pgdl_scores.csv")
    assert set(found.task) == {TASK, "task8_t", MEAN}
    measures = set(found.measure)
    assert {"bias_mean", "dsmi_y", "hsic_y", "alpha", "path_norm", "margin", "pacbayes_flatness"} <= measures
    table = pd.read_csv(out / "measures.csv")
    assert {f"{TASK}_conv_width", "task8_t_conv_width"} <= set(table.columns) and len(set(table.model)) == 16
    for model in ("model_0", "model_7"):
        dse = json.loads((out / "models" / TASK / model / "none" / f"dse_{model}.json").read_text())
        assert dse["probe"]["split"] == "train" and dse["probe"]["size"] == 64
    check = pd.read_csv(out / "pgdl_check.csv")
    assert len(check) == 16 and (check.measured_train_acc - check.reference_train_acc).abs().max() <= 0.1
    assert "PGDL models get no reinit analysis: it evaluates a test set" in (out / "report.md").read_text()


@pytest.mark.slurm
def test_the_models_run_as_a_slurm_job_array(public_data, tmp_path):
    from sweeper.slurm import controller_problem

    problem = controller_problem()
    if problem is not None:
        pytest.skip(f"needs a running SLURM ({problem}); start one with: bash ci/slurm.sh start")
    out = tmp_path / "out"
    argv = ["--pgdl", str(public_data / "input_data" / TASK), "--out", str(out), "--launcher", "slurm",
            "--slurm-time", "10", *FAST]
    assert run_main(rank_measures.main, argv) == 0
    assert len(list((out / "models" / TASK).glob("*/none/norms_model_*.json"))) == 8
    assert list((out / "logs" / "submitit").glob("*_log.out"))
    check = pd.read_csv(out / "pgdl_check.csv")
    assert (check.measured_train_acc - check.reference_train_acc).abs().max() <= 0.1
