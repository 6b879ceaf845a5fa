"""train.py: snapshots, run.json, TensorBoard, resume, evaluation modes, early stops, errors."""
from __future__ import annotations

import pytest
import torch

import models
import train
from tests.train_helpers import read_run, run_dir, run_train
from training.trainer import should_snapshot
from utils.checkpoints import load_checkpoint
from utils.cli import run_main

FAST = ["--arch", "lenet", "--dataset", "digits", "--seed", "0", "--optimizer", "adam", "--lr", "0.003", "--batch-size", "32"]


def test_three_epochs_write_snapshots_run_json_and_tensorboard(tmp_path):
    assert run_train(tmp_path, *FAST, "--epochs", "3", "--snapshot-every", "1") == 0
    folder = run_dir(tmp_path)
    names = sorted(p.name for p in folder.glob("lenet_epoch*.pt"))
    assert names == [f"lenet_epoch000{e}.pt" for e in range(4)]
    assert (folder / "last.pt").is_file() and (folder / "train.log").is_file()
    record = read_run(tmp_path)
    assert record["status"]["state"] == "finished" and record["status"]["last_epoch"] == 3
    assert [row["epoch"] for row in record["epochs"]] == [1, 2, 3]
    assert record["data"]["sizes"] == {"train": 1347, "val": 0, "test": 450}
    assert set(record["versions"]) >= {"torch", "torchvision", "python"}
    assert record["epochs"][-1]["val_top1"] > 50  # it learns
    assert record["stopping"] is None and "train_eval_loss" not in record["epochs"][0]  # no criterion
    tb_files = list((tmp_path / "tb" / "digits" / "lenet" / "0").glob("events.out.tfevents.*"))
    assert tb_files


def test_snapshot_describes_itself_and_rebuilds_the_model(tmp_path):
    run_train(tmp_path, *FAST, "--epochs", "1")
    snapshot = load_checkpoint(run_dir(tmp_path) / "lenet_epoch0001.pt")
    for key in ("format_version", "arch", "num_classes", "in_channels", "dataset", "epoch", "args",
                "model_state_dict", "optimizer_state_dict", "rng_state", "metrics"):
        assert key in snapshot, key
    assert isinstance(snapshot["args"], dict) and snapshot["epoch"] == 1
    model = models.get_model(snapshot["arch"], snapshot["num_classes"], snapshot["in_channels"],
                             image_size=snapshot["image_size"])
    model.load_state_dict(snapshot["model_state_dict"])
    init = load_checkpoint(run_dir(tmp_path) / "lenet_epoch0000.pt")
    assert init["epoch"] == 0
    assert not torch.equal(init["model_state_dict"]["features.0.weight"], snapshot["model_state_dict"]["features.0.weight"])


def test_tensorboard_train_loss_is_the_epoch_mean(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_train(tmp_path, *FAST, "--epochs", "2")
    events = EventAccumulator(str(tmp_path / "tb" / "digits" / "lenet" / "0"))
    events.Reload()
    logged = [e.value for e in events.Scalars("Loss/train")]
    recorded = [row["train_loss"] for row in read_run(tmp_path)["epochs"]]
    assert logged == pytest.approx(recorded, rel=1e-6)
    assert {"Loss/test", "Accuracy/test/top1", "Accuracy/test/top5", "Lr"} <= set(events.Tags()["scalars"])


@pytest.mark.parametrize(
    "epoch,every,all_until,expected",
    [(1, 0, 0, False), (5, 0, 0, True), (2, 0, 3, True), (4, 2, 3, True), (5, 2, 3, True), (3, 2, 0, False)],
)
def test_snapshot_policy(epoch, every, all_until, expected):
    assert should_snapshot(epoch, every=every, all_until=all_until, last_epoch=5) is expected


def _final_weights(folder, epoch):
    return load_checkpoint(folder / f"lenet_epoch{epoch:04d}.pt")["model_state_dict"]


def test_resume_is_bit_exact_on_cpu_with_deterministic(tmp_path):
    common = [*FAST, "--deterministic", "--augmentation", "--split", "0.1", "--snapshot-every", "1"]
    full, parts = tmp_path / "full", tmp_path / "parts"
    assert run_train(full, *common, "--epochs", "4") == 0
    assert run_train(parts, *common, "--epochs", "2") == 0
    assert run_train(parts, "--resume-from", str(run_dir(parts) / "last.pt"), "--epochs", "4") == 0
    expected, got = _final_weights(run_dir(full), 4), _final_weights(run_dir(parts), 4)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    record = read_run(parts)
    assert [row["epoch"] for row in record["epochs"]] == [1, 2, 3, 4]
    for resumed, uninterrupted in zip(record["epochs"], read_run(full)["epochs"]):
        for key in ("train_loss", "val_loss", "val_top1", "lr"):
            assert resumed[key] == uninterrupted[key], (resumed["epoch"], key)
    assert record["resumed_at_epoch"] == [2]


def test_resume_keeps_snapshot_hyperparameters_unless_override(tmp_path):
    run_train(tmp_path, *FAST, "--epochs", "1")
    last = str(run_dir(tmp_path) / "lenet_epoch0001.pt")
    assert run_train(tmp_path, "--resume-from", last, "--epochs", "2", "--lr", "0.2") == 0
    assert read_run(tmp_path)["epochs"][-1]["lr"] == pytest.approx(0.003)
    assert run_train(tmp_path, "--resume-from", last, "--epochs", "2", "--lr", "0.2", "--override") == 0
    assert read_run(tmp_path)["epochs"][-1]["lr"] == pytest.approx(0.2)


def test_evaluate_and_regularization_loss_modes(tmp_path, capsys):
    run_train(tmp_path, *FAST, "--epochs", "1")
    snapshot = run_dir(tmp_path) / "lenet_epoch0001.pt"
    assert train.main(["--resume-from", str(snapshot), "--evaluate"]) == 0
    out = capsys.readouterr().out
    assert "test:" in out and "top1" in out
    assert train.main(["--resume-from", str(snapshot), "--eval-regularization-loss", "--weight-decay", "0.01",
                       "--override"]) == 0
    model = models.get_model("lenet", 10, 1)
    model.load_state_dict(load_checkpoint(snapshot)["model_state_dict"])
    expected = 0.01 / 2 * sum(float((p.detach().double() ** 2).sum()) for p in model.parameters())
    printed = float(capsys.readouterr().out.strip().split()[-1])
    assert printed == pytest.approx(expected, rel=1e-5)


def test_kill_plateaus_stops_and_records_why(tmp_path):
    assert run_train(tmp_path, *FAST, "--lr", "0", "--epochs", "8", "--kill-plateaus") == 0
    record = read_run(tmp_path)
    assert record["status"]["state"] == "plateau" and record["status"]["last_epoch"] == 4
    assert "did not improve" in record["status"]["reason"]
    assert (run_dir(tmp_path) / "lenet_epoch0004.pt").is_file()


def test_non_finite_loss_stops_with_epoch_and_step(tmp_path, capsys):
    code = run_main(lambda argv: run_train(tmp_path, *FAST, "--lr", "1e12", "--epochs", "3"))
    err = capsys.readouterr().err
    assert code == 2 and "epoch 1, step" in err
    assert read_run(tmp_path)["status"]["state"] == "non_finite"
    assert load_checkpoint(run_dir(tmp_path) / "lenet_epoch0000.pt")["epoch"] == 0


class CountingAnalyzer:
    name = "counter"

    def __init__(self):
        self.epochs = []

    def analyze(self, context):
        assert not context.model.training
        self.epochs.append(context.epoch)
        return {"epoch_seen": float(context.epoch), "weights": context.model.features[0].weight.detach().flatten()}


def test_snapshot_analyzers_run_on_every_snapshot(tmp_path):
    analyzer = CountingAnalyzer()
    run_train(tmp_path, *FAST, "--epochs", "3", "--snapshot-all-until", "1", analyzers=[analyzer])
    assert analyzer.epochs == [0, 1, 3]
    snapshots = read_run(tmp_path)["snapshots"]
    assert [s["analyses"]["counter"]["epoch_seen"] for s in snapshots] == [0.0, 1.0, 3.0]


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--arch", "lenet9"], "unknown architecture"),
        (["--dataset", "digitz"], "unknown dataset"),
        (["--noise", "1.5"], "--noise"),
        (["--split", "1.0"], "--split"),
        (["--subsample-classes", "11"], "--subsample-classes"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--lr", "-0.1"], "--lr"),
        (["--upscale", "--upscale-padding"], "exclude each other"),
        (["--dataset", "cifar10", "--data-path", "/nonexistent"], "/nonexistent"),
        (["--resume-from", "/nonexistent/last.pt"], "does not exist"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, extra, match):
    argv = [*FAST, "--epochs", "1", "--models-path", str(tmp_path / "m"), *extra]
    assert run_main(train.main, argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_resume_with_another_architecture_is_refused(tmp_path, capsys):
    run_train(tmp_path, *FAST, "--epochs", "1")
    last = str(run_dir(tmp_path) / "last.pt")
    assert run_main(train.main, ["--resume-from", last, "--arch", "mlp"]) == 2
    assert "--arch mlp differs" in capsys.readouterr().err
    # Plain weights of another architecture do not fit either.
    plain = tmp_path / "plain.pt"
    torch.save(load_checkpoint(last)["model_state_dict"], plain)
    assert run_main(train.main, ["--resume-from", str(plain), "--arch", "resnet18", "--dataset", "digits",
                                 "--evaluate"]) == 2
    assert "does not fit the model" in capsys.readouterr().err


def test_channels_last_computes_the_same_gradients(tmp_path):
    from training.performance import SpeedOptions, prepare_model

    torch.manual_seed(0)
    plain = models.get_model("lenet", 10, 1).eval()
    fast = prepare_model(models.get_model("lenet", 10, 1).eval(), SpeedOptions(channels_last=True))
    fast.load_state_dict(plain.state_dict())
    inputs, labels = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    speed = SpeedOptions(channels_last=True)
    torch.nn.functional.cross_entropy(plain(inputs), labels).backward()
    torch.nn.functional.cross_entropy(fast(speed.inputs(inputs)), labels).backward()
    for (name, a), b in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)
    assert run_train(tmp_path, *FAST, "--epochs", "1", "--channels-last") == 0


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_is_refused_without_cuda(tmp_path, capsys, amp):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: AMP is supported here")
    assert run_main(train.main, [*FAST, "--amp", amp, "--models-path", str(tmp_path)]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err


def test_compiled_model_snapshots_have_plain_keys():
    from training.distributed import unwrap

    model = models.get_model("lenet", 10, 1)
    compiled = torch.compile(model, backend="eager")
    assert list(unwrap(compiled).state_dict()) == list(model.state_dict())
