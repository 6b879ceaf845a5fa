"""train.py --stop-train-loss/--stop-train-acc (Jiang et al.'s protocol) and the parametric ConvNet's flags.

The converged run is trained once per module; its final snapshot is evaluated here independently of
the training code (our own loop over the training split, plain cross-entropy).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import compute_projections
import datasets
import train
from analyses.loading import load_snapshot_model
from tests.train_helpers import read_run, run_dir, run_train
from training.arguments import data_options, get_args_parser
from utils.checkpoints import load_checkpoint, snapshot_filename
from utils.cli import run_main

CRITERION = 0.05  # cross-entropy, reached in about four epochs on three digit classes
CAP = 25
DATA = ["--dataset", "digits", "--subsample-classes", "3", "--seed", "0", "--optimizer", "adam", "--batch-size", "32",
        "--no-dse"]
CONVERGING = [*DATA, "--arch", "convnet", "--depth", "4", "--width", "16", "--lr", "0.01"]
LENET = [*DATA, "--arch", "lenet", "--lr", "0.003"]


@pytest.fixture(scope="module")
def converged(tmp_path_factory):
    """``(root, run.json)`` of a ConvNet trained to cross-entropy CRITERION (cap CAP epochs)."""
    root = tmp_path_factory.mktemp("criterion")
    assert run_train(root, *CONVERGING, "--epochs", str(CAP), "--stop-train-loss", str(CRITERION)) == 0
    return root, read_run(root, arch="convnet", sub="digits_3")


def training_cross_entropy(snapshot_path) -> tuple[float, int]:
    """Mean cross-entropy of a snapshot on its whole training split (the labels it trained on), in eval
    mode and without augmentation: rebuilt from the file alone, evaluated with a plain loop."""
    subject = load_snapshot_model(snapshot_path)
    args = get_args_parser().parse_args([])
    vars(args).update(subject.args)
    train_split = datasets.build_data(subject.dataset, data_options(args)).train
    losses = []
    with torch.no_grad():
        for inputs, labels in train_split.batches(100):
            losses.append(nn.functional.cross_entropy(subject.model(inputs), labels, reduction="none"))
    losses = torch.cat(losses)
    return losses.mean().item(), len(losses)


@pytest.mark.slow  # trains to the criterion: about 5 s on two idle cores
def test_a_run_trained_to_a_loss_has_that_loss_when_evaluated_independently(converged):
    root, record = converged
    stopping = record["stopping"]
    assert stopping["criterion"] == {"train_loss": CRITERION} and stopping["outcome"] == "converged"
    epoch = stopping["epoch"]
    assert 1 <= epoch < CAP and record["status"]["state"] == "finished" and record["status"]["last_epoch"] == epoch
    losses = [row["train_eval_loss"] for row in record["epochs"]]
    assert [row["epoch"] for row in record["epochs"]] == list(range(1, epoch + 1))
    assert losses[-1] <= CRITERION and all(loss > CRITERION for loss in losses[:-1])  # stopped at the first
    snapshot = run_dir(root, arch="convnet", sub="digits_3") / snapshot_filename("convnet", epoch)
    assert snapshot.is_file() and {s["epoch"] for s in record["snapshots"]} == {0, epoch}
    loss, samples = training_cross_entropy(snapshot)
    assert samples == record["data"]["sizes"]["train"]
    assert loss <= CRITERION
    assert loss == pytest.approx(losses[-1], rel=1e-4)
    assert record["epochs"][-1]["train_eval_top1"] == pytest.approx(
        load_checkpoint(snapshot)["metrics"]["train_eval_top1"])


@pytest.mark.slow
def test_resuming_a_converged_run_does_nothing_and_says_so(converged, capsys):
    root, record = converged
    folder = run_dir(root, arch="convnet", sub="digits_3")
    before = sorted(p.name for p in folder.iterdir())
    capsys.readouterr()
    assert run_train(root, "--resume-from", str(folder / "last.pt"), "--epochs", str(CAP + 5)) == 0
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and f"already converged at epoch {record['stopping']['epoch']}" in said
    assert sorted(p.name for p in folder.iterdir()) == before
    assert read_run(root, arch="convnet", sub="digits_3") == record


def test_the_cap_ends_a_run_that_does_not_converge(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert run_train(tmp_path, *LENET, "--epochs", "1", "--stop-train-acc", "100") == 0
    record = read_run(tmp_path, sub="digits_3")
    assert record["stopping"] == {"criterion": {"train_top1": 100.0}, "outcome": "cap reached", "epoch": 1}
    assert 0 <= record["epochs"][0]["train_eval_top1"] < 100
    assert (run_dir(tmp_path, sub="digits_3") / snapshot_filename("lenet", 1)).is_file()
    events = EventAccumulator(str(tmp_path / "tb" / "digits_3" / "lenet" / "0"))
    events.Reload()
    assert {"Loss/train_eval", "Accuracy/train_eval/top1"} <= set(events.Tags()["scalars"])


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--stop-train-loss", "0"], "--stop-train-loss 0.0 must be positive"),
        (["--stop-train-loss", "-1"], "--stop-train-loss -1.0 must be positive"),
        (["--stop-train-acc", "0"], "must be a percentage in (0, 100]"),
        (["--stop-train-acc", "100.5"], "must be a percentage in (0, 100]"),
        (["--stop-train-loss", "0.1", "--stop-train-acc", "90"], "exclude each other"),
        (["--depth", "3"], "architecture 'lenet' has a fixed shape"),
        (["--width", "8", "--dropout", "0.1"], "--width --dropout: architecture 'lenet'"),
        (["--arch", "convnet", "--depth", "0"], "--depth 0 must be at least 1"),
        (["--arch", "convnet", "--dropout", "1"], "--dropout 1.0 must be in [0, 1)"),
    ],
)
def test_bad_criterion_and_shape_flags_exit_2_with_one_line(tmp_path, capsys, extra, match):
    argv = [*LENET, "--epochs", "1", "--models-path", str(tmp_path / "m"), *extra]
    assert run_main(train.main, argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_convnet_snapshot_rebuilds_from_the_file_alone(tmp_path, capsys):
    shape = ["--arch", "convnet", "--depth", "5", "--width", "4", "--dropout", "0.25"]
    assert run_train(tmp_path, *DATA, *shape, "--epochs", "1", "--stop-train-acc", "99") == 0
    folder = run_dir(tmp_path, arch="convnet", sub="digits_3")
    snapshot = load_checkpoint(folder / "last.pt")
    assert {k: snapshot["args"][k] for k in ("depth", "width", "dropout", "stop_train_acc")} == {
        "depth": 5, "width": 4, "dropout": 0.25, "stop_train_acc": 99.0}
    # compute_projections is given the run directory only: the five convolutions of the recorded shape
    results = tmp_path / "results"
    assert compute_projections.main(["--load-from", str(folder), "--results", str(results), "--no-init"]) == 0
    document = next(results.rglob("projections_convnet_epoch0001.json")).read_text()
    assert all(f'"features.{i}"' in document for i in (0, 3, 8, 11, 16))  # stage sizes 2, 2, 1
    # the shape identifies the run: a resume cannot change it
    assert run_main(train.main, ["--resume-from", str(folder / "last.pt"), "--depth", "4"]) == 2
    assert "--depth 4 differs from the resumed snapshot's 5" in capsys.readouterr().err
