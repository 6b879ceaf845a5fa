"""train.py as a real process: SIGTERM/SIGINT stop cleanly and resume exactly; torchrun DDP."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from utils.checkpoints import load_checkpoint, snapshot_filename

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--arch", "lenet", "--dataset", "digits", "--seed", "0", "--optimizer", "adam", "--lr", "0.003",
          "--batch-size", "32", "--deterministic", "--no-progress"]


def _env():
    return {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _paths(folder: Path) -> list[str]:
    return ["--models-path", str(folder / "models"), "--tb-logdir", str(folder / "tb"), "--results", str(folder / "r")]


def _run(folder: Path, *args: str, script: str = "train.py", launcher=(), timeout=300) -> subprocess.CompletedProcess:
    command = [*launcher] if launcher else [sys.executable]
    return subprocess.run([*command, str(ROOT / script), *_paths(folder), *args], env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _run_dir(folder: Path, arch: str = "lenet") -> Path:
    return folder / "models" / "digits" / arch / "0"


def _wait_for_epoch(run_json: Path, epoch: int, process, limit=120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"train.py exited early: {process.stderr.read()}")
        try:
            if len(json.loads(run_json.read_text())["epochs"]) >= epoch:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("training did not reach the epoch in time")


EPOCHS = 6  # the epoch at which a resumed run is compared with an uninterrupted one


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The weights of an uninterrupted run at EPOCHS, trained once and shared by both signals."""
    full = tmp_path_factory.mktemp("full")
    assert _run(full, *COMMON, "--epochs", str(EPOCHS)).returncode == 0
    return load_checkpoint(_run_dir(full) / snapshot_filename("lenet", EPOCHS))["model_state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_with_resumable_checkpoint_and_exact_resume(tmp_path, signum, code, uninterrupted):
    stopped = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *_paths(stopped), *COMMON, "--epochs", "200"],
                               env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_epoch(_run_dir(stopped) / "run.json", 2, process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert "resume with: python train.py --resume-from" in err
    record = json.loads((_run_dir(stopped) / "run.json").read_text())
    assert record["status"]["state"] == "interrupted"
    last = load_checkpoint(_run_dir(stopped) / "last.pt")
    assert last["epoch"] >= 2
    resumed = _run(stopped, "--resume-from", str(_run_dir(stopped) / "last.pt"), "--epochs", str(EPOCHS))
    assert resumed.returncode == 0, resumed.stderr
    if last["epoch"] >= EPOCHS:
        pytest.skip("the signal arrived after the comparison epoch")
    got = load_checkpoint(_run_dir(stopped) / snapshot_filename("lenet", EPOCHS))["model_state_dict"]
    assert all(torch.equal(uninterrupted[k], got[k]) for k in uninterrupted)


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one_process(tmp_path):
    args = ["--arch", "tiny_cnn", "--dataset", "digits", "--seed", "0", "--lr", "0.05", "--batch-size", "64",
            "--epochs", "2", "--no-progress", "--stop-train-loss", "1e-6"]  # never met: every rank goes to the cap
    single = _run(tmp_path / "single", *args, script="tests/ddp_worker.py")
    assert single.returncode == 0, single.stderr
    launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    multi = _run(tmp_path / "multi", *args, script="tests/ddp_worker.py", launcher=launcher)
    assert multi.returncode == 0, multi.stderr
    one = load_checkpoint(_run_dir(tmp_path / "single", "tiny_cnn") / "tiny_cnn_epoch0002.pt")
    two = load_checkpoint(_run_dir(tmp_path / "multi", "tiny_cnn") / "tiny_cnn_epoch0002.pt")
    assert set(one["model_state_dict"]) == set(two["model_state_dict"])  # no "module." prefixes
    for key, value in one["model_state_dict"].items():
        torch.testing.assert_close(two["model_state_dict"][key], value, atol=1e-4, rtol=1e-3)  # float summation order differs
    assert one["metrics"]["val_top1"] == pytest.approx(two["metrics"]["val_top1"], abs=0.5)
    assert one["metrics"]["train_eval_loss"] == pytest.approx(two["metrics"]["train_eval_loss"], rel=1e-2)
    for folder in ("single", "multi"):
        record = json.loads((_run_dir(tmp_path / folder, "tiny_cnn") / "run.json").read_text())
        assert record["stopping"] == {"criterion": {"train_loss": 1e-6}, "outcome": "cap reached", "epoch": 2}
