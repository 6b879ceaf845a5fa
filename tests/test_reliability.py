"""Nothing is lost or half-written: SIGKILL at any moment, a full disk, a NaN loss, concurrent writers.

The SIGKILL tests run train.py as a real process (``tests/pausing_train.py``, hooks the tests own)
that pauses at the chosen moment, inside a write (after the temp file is written and before the
rename) or inside an epoch, and says so in a marker file; the test waits for the marker and kills
the process there.
"""
from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch

import compute_projections
import plot_results
import training.loop
from tests.pausing_train import pause_at_write
from tests.train_helpers import read_run, run_dir, run_train
from utils.checkpoints import resolve_snapshots
from utils.cli import run_main, setup_logging
from utils.fileio import atomic_write_json, is_temp_file, remove_stale_temp_files

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2
COMMON = ["--arch", "lenet", "--dataset", "digits", "--seed", "0", "--optimizer", "adam", "--lr", "0.003",
          "--batch-size", "32", "--deterministic", "--snapshot-every", "1", "--dse-samples", "200"]


@pytest.fixture
def one_thread():
    """In-process runs use one thread, as the OMP_NUM_THREADS=1 subprocesses (bit-exact comparisons;
    also much faster than two threads on a shared, busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _paths(folder: Path) -> list[str]:
    return ["--models-path", str(folder / "models"), "--tb-logdir", str(folder / "tb"),
            "--results", str(folder / "results"), "--no-progress"]


def _results_dir(folder: Path) -> Path:
    return folder / "results" / "digits" / "lenet" / "0"


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def _epoch_rows(record: dict) -> list[tuple]:
    return [(row["epoch"], row["train_loss"], row["val_loss"], row["val_top1"]) for row in record["epochs"]]


def _assert_everything_on_disk_loads(folder: Path) -> list[Path]:
    """Every snapshot loads safely and every JSON parses; returns the temp files left behind."""
    temp = [path for path in _files(folder) if is_temp_file(path)]
    for path in _files(folder):
        if path in temp:
            continue
        if path.suffix == ".pt":
            assert "model_state_dict" in torch.load(path, weights_only=True), path
        elif path.suffix == ".json":
            json.loads(path.read_text())
    return temp


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same run, never interrupted (in-process, one thread)."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_train(folder, *COMMON, "--epochs", str(EPOCHS)) == 0
    finally:
        torch.set_num_threads(threads)
    return folder


# -- SIGKILL at any moment ---------------------------------------------------------------------------
def _start(folder: Path, pause_at: str | None, marker: Path) -> subprocess.Popen:
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    hook = ["--pause-at-write", pause_at] if pause_at else ["--pause-in-epoch", "2"]
    # Many epochs: the process never finishes on its own; the resume names the real target.
    command = [sys.executable, str(ROOT / "tests" / "pausing_train.py"), "--marker", str(marker), *hook, "--",
               *_paths(folder), *COMMON, "--epochs", "100"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait(condition, process: subprocess.Popen, what: str, limit: float = 180.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"train.py exited before {what}: {process.stderr.read()}")
        if condition():
            return
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"train.py did not reach {what} in time")


def _epochs_recorded(run_json: Path) -> int:
    try:
        return len(json.loads(run_json.read_text())["epochs"])
    except (OSError, ValueError, KeyError):
        return 0


# (where to kill, the epoch last.pt holds afterwards, the epochs run.json lists afterwards)
KILL_POINTS = {
    "during-epoch-2": (None, 1, 1),
    "during-snapshot-write": ("lenet_epoch0001.pt", 0, 0),  # epoch 1's snapshot
    "during-run-json-update": ("run.json#2", 1, 0),  # after epoch 1: its snapshot and last.pt are on disk
    "during-last-pt-write": ("last.pt#2", 0, 0),  # epoch 1's snapshot written, last.pt still at epoch 0
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_leaves_loadable_files_and_the_resume_is_bit_exact(point, tmp_path, uninterrupted, one_thread):
    pause_at, last_epoch, recorded = KILL_POINTS[point]
    marker = tmp_path / "paused"
    killed = tmp_path / "killed"
    run = run_dir(killed)
    process = _start(killed, pause_at, marker)
    _wait(marker.exists, process, f"the write of {pause_at}" if pause_at else "step 6 of epoch 2")
    if pause_at:
        paused_temp = Path(marker.read_text())
        assert paused_temp.is_file() and is_temp_file(paused_temp)  # killed inside the write
    else:
        assert _epochs_recorded(run / "run.json") == 1  # epoch 1 is complete, epoch 2 is under way
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stderr.close()

    temp = _assert_everything_on_disk_loads(killed)
    if pause_at:
        assert temp == [paused_temp]
    assert not any(is_temp_file(path) for path in resolve_snapshots(run))  # never mistaken for a snapshot
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == last_epoch
    assert _epochs_recorded(run / "run.json") == recorded

    assert run_train(killed, *COMMON, "--epochs", str(EPOCHS), "--resume-from", str(run / "last.pt")) == 0
    assert not _assert_everything_on_disk_loads(killed)  # the resume cleared the stale temp file
    reference = run_dir(uninterrupted)
    names = sorted(path.name for path in reference.glob("*.pt"))
    assert sorted(path.name for path in run.glob("*.pt")) == names
    for name in names:
        expected = torch.load(reference / name, weights_only=True)["model_state_dict"]
        got = torch.load(run / name, weights_only=True)["model_state_dict"]
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[key], got[key]) for key in expected), name
    record = read_run(killed)
    assert record["status"]["state"] == "finished"
    assert _epoch_rows(record) == _epoch_rows(read_run(uninterrupted))
    listed = [(row["epoch"], row["file"]) for row in record["snapshots"]]
    assert listed == [(row["epoch"], row["file"]) for row in read_run(uninterrupted)["snapshots"]]
    if point == "during-run-json-update":  # epoch 1's entry was lost with the update, and recovered
        assert [row["epoch"] for row in record["snapshots"] if row.get("recovered")] == [1]
    summary = json.loads((_results_dir(killed) / "dse_summary.json").read_text())
    assert summary["epochs"] == list(range(EPOCHS + 1))


def test_the_pause_hook_is_inert_unless_the_name_and_count_match(tmp_path, monkeypatch):
    marker = tmp_path / "paused"
    paused = []
    monkeypatch.setattr(os, "replace", pause_at_write("other.json#2", marker, sleep=lambda: paused.append(1)))
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write_json(tmp_path / "other.json", {"x": 1})  # the first write of other.json: not yet
    assert not marker.exists() and json.loads((tmp_path / "other.json").read_text()) == {"x": 1}
    atomic_write_json(tmp_path / "other.json", {"x": 2})  # the second: paused (here: not slept), then renamed
    assert paused == [1] and is_temp_file(marker.read_text())
    assert json.loads((tmp_path / "other.json").read_text()) == {"x": 2}


def test_temp_files_are_never_read_as_results_and_train_clears_them(digits_run, tmp_path, one_thread):
    run = tmp_path / "models" / "digits" / "lenet" / "0"
    run.mkdir(parents=True)
    for path in digits_run.glob("lenet_epoch000[01].pt"):
        (run / path.name).write_bytes(path.read_bytes())
    stale_snapshot = run / ".lenet_epoch0002.pt.k3j_x9q2.tmp"
    stale_snapshot.write_bytes(b"half a snapshot")
    results = tmp_path / "results"
    results.mkdir()
    (results / ".projections_lenet_epoch0002.json.ab12cd34.tmp").write_text('{"kind": "projections", "ne')
    assert [path.name for path in resolve_snapshots(run)] == ["lenet_epoch0000.pt", "lenet_epoch0001.pt"]
    assert run_main(compute_projections.main, ["--load-from", str(run), "--results", str(results)]) == 0
    written = sorted(path.name for path in results.rglob("projections_*.json"))
    assert written == ["projections_lenet_epoch0000.json", "projections_lenet_epoch0001.json",
                       "projections_summary.json"]
    assert remove_stale_temp_files(run) == [stale_snapshot]
    assert not stale_snapshot.exists() and (run / "lenet_epoch0001.pt").is_file()


# -- a full disk ---------------------------------------------------------------------------------------
# File writes outside utils/fileio.py (which owns them); savefig into atomic_write's handle is fine.
# A direct write of a file: json.dump, torch.save, np.save or savefig not into atomic_write's handle, Path.write_*,
# open() for writing (os.fdopen of a pipe is no file)
DIRECT_WRITE = re.compile(r"json\.dump\(|torch\.save\(|np\.save\((?!handle)|\.savefig\((?!handle)"
                          r"|\.write_(text|bytes)\(|(?<!fd)open\([^)]*[\"'][wax]b?\+?[\"']")


def test_every_result_snapshot_and_figure_is_written_through_utils_fileio():
    folders = [path for path in ROOT.iterdir() if path.is_dir() and not path.name.startswith((".", "_"))
               and path.name not in ("tests", "benchmarks")]
    sources = [path for path in [*ROOT.glob("*.py"), *(p for folder in folders for p in folder.rglob("*.py"))]
               if path != ROOT / "utils" / "fileio.py"]
    assert len(sources) > 20
    direct = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for path in sources
              for number, line in enumerate(path.read_text().splitlines(), 1) if DIRECT_WRITE.search(line)]
    assert not direct, "write these through utils.fileio (atomic): " + "; ".join(direct)


def _disk_full_for(monkeypatch, name: str) -> None:
    """os.fsync fails with ENOSPC for temp files of targets called ``name`` (Linux: /proc/self/fd)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd")
    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _last_line(err: str) -> str:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.strip()][-1]


def test_disk_full_during_a_snapshot_keeps_the_previous_one_and_records_why(tmp_path, capsys, monkeypatch, one_thread):
    assert run_train(tmp_path, *COMMON, "--epochs", "1", "--no-dse") == 0
    run = run_dir(tmp_path)
    before = (run / "last.pt").read_bytes()
    _disk_full_for(monkeypatch, "last.pt")
    code = run_main(lambda argv: run_train(tmp_path, "--resume-from", str(run / "last.pt"), "--epochs", "2",
                                           "--no-dse"))
    line = _last_line(capsys.readouterr().err)
    assert code == 2 and line.startswith("error: cannot write") and "last.pt" in line and "No space left" in line
    assert (run / "last.pt").read_bytes() == before  # the previous file, intact
    assert torch.load(run / "lenet_epoch0002.pt", weights_only=True)["epoch"] == 2  # written before the failure
    assert not [path for path in _files(tmp_path) if is_temp_file(path)]
    status = read_run(tmp_path)["status"]
    assert status["state"] == "failed" and "No space left" in status["reason"]


def test_disk_full_during_projections_keeps_the_previous_result(digits_run, tmp_path, capsys, monkeypatch):
    argv = ["--load-from", str(digits_run / "lenet_epoch0001.pt"), "--results", str(tmp_path), "--normalize"]
    assert run_main(compute_projections.main, argv) == 0
    target = next(tmp_path.rglob("projections_lenet_epoch0001.json"))
    before = target.read_bytes()
    _disk_full_for(monkeypatch, target.name)
    assert run_main(compute_projections.main, [*argv, "--no-init"]) == 2
    line = _last_line(capsys.readouterr().err)
    assert str(target) in line and "No space left" in line and "previous file" in line
    assert target.read_bytes() == before
    assert not [path for path in _files(tmp_path) if is_temp_file(path)]


def test_disk_full_while_plotting_keeps_the_previous_figure(digits_run, tmp_path, capsys, monkeypatch):
    argv = [str(digits_run / "run.json"), "--plots", str(tmp_path), "--figures", "training", "--formats", "png"]
    assert run_main(plot_results.main, argv) == 0
    target = tmp_path / "training_curves.png"
    before = target.read_bytes()
    _disk_full_for(monkeypatch, target.name)
    assert run_main(plot_results.main, argv) == 2
    line = _last_line(capsys.readouterr().err)
    assert str(target) in line and "No space left" in line
    assert target.read_bytes() == before
    assert [path.name for path in _files(tmp_path)] == ["training_curves.png"]


def test_an_unwritable_log_file_is_one_warning_not_a_traceback_per_line(tmp_path, capsys):
    class FullDisk:
        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        flush = close = lambda self: self.write("")

    setup_logging(str(tmp_path / "a.log"))
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler))
    handler.stream.close()
    handler.stream = FullDisk()  # every later write fails, as on a full disk
    for _ in range(3):
        logging.getLogger("test").info("a line")
    setup_logging(None)
    err = capsys.readouterr().err
    assert err.count("warning: cannot write the log file") == 1 and "No space left" in err and "Traceback" not in err
    assert err.count("a line") == 3  # the console keeps logging


# -- a loss that becomes NaN ---------------------------------------------------------------------------
def test_nan_in_a_later_epoch_names_epoch_and_step_and_the_run_resumes(tmp_path, capsys, monkeypatch, one_thread):
    steps_per_epoch = math.ceil(1347 / 32)  # digits: 1,347 training images
    calls = {"n": 0}
    real = torch.nn.functional.cross_entropy

    def cross_entropy(logits, labels):
        calls["n"] += 1
        loss = real(logits, labels)
        return loss * float("nan") if calls["n"] == steps_per_epoch + 5 else loss

    functional = types.SimpleNamespace(cross_entropy=cross_entropy)
    monkeypatch.setattr(training.loop, "nn", types.SimpleNamespace(functional=functional))
    code = run_main(lambda argv: run_train(tmp_path, *COMMON, "--epochs", "2", "--no-dse"))
    line = _last_line(capsys.readouterr().err)
    assert code == 2 and "epoch 2, step 5" in line and "nan" in line
    run = run_dir(tmp_path)
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["epoch"] == 1
    assert all(bool(torch.isfinite(value).all()) for value in last["model_state_dict"].values())
    assert sorted(path.name for path in run.glob("lenet_*.pt")) == ["lenet_epoch0000.pt", "lenet_epoch0001.pt"]
    status = read_run(tmp_path)["status"]
    assert status["state"] == "non_finite" and status["last_epoch"] == 1
    monkeypatch.undo()
    assert run_train(tmp_path, "--resume-from", str(run / "last.pt"), "--epochs", "2", "--no-dse") == 0
    assert [row["epoch"] for row in read_run(tmp_path)["epochs"]] == [1, 2]


# -- concurrent writers --------------------------------------------------------------------------------
@pytest.mark.slow
def test_concurrent_analyses_into_one_folder_write_complete_files(digits_run, tmp_path):
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    results = tmp_path / "results"
    commands = [
        ["compute_projections.py", "--load-from", str(digits_run), "--normalize", "--with-linear"],
        ["compute_projections.py", "--load-from", str(digits_run), "--normalize", "--with-linear"],
        ["compute_dse.py", "--load-from", str(digits_run), "--dse-samples", "200"],
    ]
    processes = [subprocess.Popen([sys.executable, str(ROOT / script), *args, "--results", str(results)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for script, *args in commands]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    folder = _results_dir(tmp_path)
    assert not _assert_everything_on_disk_loads(results)  # every JSON parses, no temp file is left
    epochs = list(range(4))
    projections = json.loads((folder / "projections_summary.json").read_text())
    assert projections["epochs"] == epochs and all((folder / name).is_file() for name in projections["files"])
    for name in projections["files"]:
        document = json.loads((folder / name).read_text())
        assert document["kind"] == "projections" and len(document["layers"]) == len(projections["layers"])
    dse = json.loads((folder / "dse_summary.json").read_text())
    assert dse["epochs"] == epochs and None not in dse["dse"]
