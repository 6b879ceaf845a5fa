"""Helpers shared by the train.py tests: in-process runs in a temporary folder."""
from __future__ import annotations

import json
from pathlib import Path

import train


def run_train(tmp_path: Path, *args: str, analyzers=None) -> int:
    base = [
        "--models-path", str(tmp_path / "models"), "--tb-logdir", str(tmp_path / "tb"),
        "--results", str(tmp_path / "results"), "--no-progress",
    ]
    return train.main([*base, *args], analyzers=analyzers)


def run_dir(tmp_path: Path, arch: str = "lenet", seed: int = 0, sub: str = "digits") -> Path:
    return tmp_path / "models" / sub / arch / str(seed)


def read_run(tmp_path: Path, **kwargs) -> dict:
    return json.loads((run_dir(tmp_path, **kwargs) / "run.json").read_text())
