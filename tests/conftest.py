"""Test setup: run from the repository root on the CPU, with a private torch hub cache."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _private_torch_home(tmp_path_factory, monkeypatch):
    """Tests never see (or fill) the user's hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))


@pytest.fixture(autouse=True)
def _fresh_notices():
    """Each test sees the once-per-run notices anew (a CLI run resets them; in-process calls may not)."""
    from utils import notices

    notices.reset()


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A short LeNet run on digits (epochs 0..3, every epoch snapshotted), shared by analysis tests.

    Returns the run directory; treat it as read-only.
    """
    from tests.train_helpers import run_dir, run_train

    root = tmp_path_factory.mktemp("digits_run")
    code = run_train(root, "--arch", "lenet", "--dataset", "digits", "--seed", "0", "--optimizer", "adam",
                     "--lr", "0.003", "--batch-size", "32", "--epochs", "3", "--snapshot-every", "1")
    assert code == 0
    return run_dir(root)


@pytest.fixture(scope="session")
def grid_2x2(tmp_path_factory):
    """A 2x2 sweep (clean labels and pixel shuffle, two seeds; tiny deterministic LeNet members),
    run once with --jobs 2: ``(root, exit code)``, the sweep being ``<root>/grid``. Treat it as read-only."""
    from tests.sweep_helpers import GRID, run_sweep

    root = tmp_path_factory.mktemp("sweeps")
    return root, run_sweep(root, "--name", "grid", *GRID, "--jobs", "2")
