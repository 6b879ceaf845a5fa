"""Snapshots from strangers: code hidden in a pickle never runs; broken files get one clear line."""
from __future__ import annotations

import os

import pytest
import torch

import compute_projections
import train
from utils.cli import run_main


class _Payload:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "lenet_epoch0003.pt"
    torch.save({"model_state_dict": {"w": torch.ones(1)}, "arch": "lenet", "evil": _Payload(str(marker))}, path)
    return path, marker


@pytest.mark.parametrize("cli,flags", [
    (train.main, ["--resume-from"]),
    (compute_projections.main, ["--arch", "lenet", "--dataset", "digits", "--load-from"]),
])
def test_code_in_a_snapshot_never_runs(tmp_path, capsys, malicious, cli, flags):
    path, marker = malicious
    assert run_main(cli, [*flags, str(path), "--results", str(tmp_path / "r")] if cli is compute_projections.main
                    else [*flags, str(path), "--models-path", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and err.count("\n") == 1
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"this is a text file\n", b"PK\x03\x04truncated"])
def test_broken_snapshots_are_user_errors(tmp_path, capsys, content):
    path = tmp_path / "lenet_epoch0001.pt"
    path.write_bytes(content)
    assert run_main(train.main, ["--resume-from", str(path), "--models-path", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err and err.count("\n") == 1


def test_truncated_real_snapshot(tmp_path, capsys, digits_run):
    data = (digits_run / "lenet_epoch0001.pt").read_bytes()
    path = tmp_path / "lenet_epoch0001.pt"
    path.write_bytes(data[: len(data) // 2])
    assert run_main(compute_projections.main, ["--load-from", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    # the cause, without PyTorch's generic advice ("This is an internal miniz error...")
    assert "(failed finding central directory): the file is truncated or not a checkpoint" in err
    assert "miniz" not in err and "PytorchStreamReader" not in err and len(err) < 250
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("*.json"))
