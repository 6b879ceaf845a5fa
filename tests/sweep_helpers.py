"""Helpers shared by the sweep.py tests (and conftest's grid fixture): tiny families, in-process runs."""
from __future__ import annotations

import json
from pathlib import Path

import sweep
from utils.cli import run_main

BASE = ["--arch", "lenet", "--dataset", "digits", "--batch-size", "128", "--dse-samples", "60"]
TINY = [*BASE, "--epochs", "2"]
GRID = [*TINY, "--deterministic", "--noise", "0", "-1", "--seed", "0", "1"]


def run_sweep(root: Path, *argv: str) -> int:
    return run_main(sweep.main, ["--root", str(root), *argv])


def manifest(root: Path, name: str) -> dict:
    return json.loads((root / name / "sweep.json").read_text())


def statuses(root: Path, name: str) -> dict[str, str]:
    return {entry["id"]: entry["status"] for entry in manifest(root, name)["members"]}


def files_with_mtimes(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")
            if path.is_file() and not {"logs", "status", "locks"} & set(path.relative_to(folder).parts)
            and path.name not in ("sweep.json", ".sweep.lock")}
