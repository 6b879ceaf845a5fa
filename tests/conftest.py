"""Test setup: run from the repository root on the CPU, with a private torch hub cache.

Under pytest-xdist (``make test``: ``-n auto --dist loadgroup``) the cores are shared among the
workers (torch's threads, and ``OMP_NUM_THREADS`` for the subprocesses the tests start: two workers
with two threads each on two cores are several times slower than one thread each), the tests of a
file with a module-scoped fixture run on one worker (it is built once; the other tests go wherever a
worker is free), the tests that use the one SLURM cluster run one after another on one worker, and the
session fixtures are built once for all workers (:func:`shared`).
"""
from __future__ import annotations

import fcntl
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
# a run beside another one (make test's SLURM part) says how many threads it may take with OMP_NUM_THREADS
ASKED = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() else 2
THREADS = max(1, min(2, ASKED, (os.cpu_count() or 1) // WORKERS))
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
torch.set_num_threads(THREADS)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist: the tests of a file that builds a module-scoped fixture run on one worker (it is
    built once), every test that needs SLURM on one; the others go wherever a worker is free."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("slurm") or item.get_closest_marker("serial"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
        elif _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def _uses_a_module_fixture(item) -> bool:
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return any(fixture.scope in ("module", "class", "package") for found in definitions.values() for fixture in found)


def shared(tmp_path_factory, name: str, build: Callable[[Path], object]):
    """``build(folder)`` once per session, whatever the number of workers: the first worker to ask builds
    it in a folder every worker of the session sees, the others wait for it and reuse its result (which
    must pickle). Treat what it builds as read-only."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent  # the session's, above each worker's own
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = root / f"{name}.pickle"
        if stored.is_file():
            return pickle.loads(stored.read_bytes())
        result = build(Path(tmp_path_factory.mktemp(name)))
        stored.write_bytes(pickle.dumps(result))
        return result


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

    def build(root: Path) -> Path:
        code = run_train(root, "--arch", "lenet", "--dataset", "digits", "--seed", "0", "--optimizer", "adam",
                         "--lr", "0.003", "--batch-size", "32", "--epochs", "3", "--snapshot-every", "1")
        assert code == 0
        return run_dir(root)

    return shared(tmp_path_factory, "digits_run", build)


@pytest.fixture(scope="session")
def grid_2x2(tmp_path_factory):
    """A 2x2 sweep (clean labels and pixel shuffle, two seeds; tiny deterministic LeNet members),
    run once with --jobs 2: ``(root, exit code)``, the sweep being ``<root>/grid``. Treat it as read-only."""
    from tests.sweep_helpers import GRID, run_sweep

    return shared(tmp_path_factory, "sweeps", lambda root: (root, run_sweep(root, "--name", "grid", *GRID, "--jobs", "2")))
