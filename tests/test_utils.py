"""Atomic writes and the CLI error contract."""
from __future__ import annotations

import json
import os

import pytest
import torch

from utils.cli import run_main
from utils.errors import UserError
from utils.fileio import atomic_torch_save, atomic_write, atomic_write_json


def test_atomic_json_round_trips_and_leaves_no_temp_file(tmp_path):
    target = atomic_write_json(tmp_path / "sub" / "a.json", {"x": [1, 2]})
    assert json.loads(target.read_text()) == {"x": [1, 2]}
    assert os.listdir(tmp_path / "sub") == ["a.json"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"version": 1})

    def explode(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"version": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_nan_is_refused_in_json(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "a.json", {"x": float("nan")})
    assert not (tmp_path / "a.json").exists()


def test_torch_save_loads_with_weights_only(tmp_path):
    path = atomic_torch_save(tmp_path / "s.pt", {"w": torch.ones(2)})
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))


def test_unwritable_folder_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        atomic_write_json(blocker / "a.json", {})


def test_run_main_turns_user_errors_into_exit_2(capsys):
    def main(argv):
        raise UserError("bad thing; do the other thing")

    assert run_main(main, []) == 2
    assert capsys.readouterr().err == "error: bad thing; do the other thing\n"
