"""sweep.py: grids, up-front checks, the local engine, resuming, extending, the lock, failures,
signals (SIGINT, SIGKILL of the sweep itself), the submitit path and --dry-run's commands.

Members are tiny: LeNet on digits, 2 epochs. Runs happen in-process (sweep.main) unless a test
needs to signal the sweep process, and then in a real process.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import sweep
from sweeper.checks import train_parser
from sweeper.grid import Definition, flags_of, members, parse_train_tokens
from sweeper.local import cpu_count
from sweeper.manifest import SweepFolder
from tests.sweep_helpers import BASE, GRID, TINY, files_with_mtimes, manifest, run_sweep, statuses
from utils.cli import run_main
from utils.errors import UserError
from utils.hparams_events import EVENTS_FILE

ROOT = Path(__file__).resolve().parents[1]


# -- the grid --------------------------------------------------------------------------------------
def definition(*tokens: str) -> tuple[Definition, list]:
    known = flags_of(train_parser())
    found = Definition()
    parse_train_tokens(list(tokens), known, found)
    return found, members(found, known)


def test_values_make_axes_and_the_members_are_their_product():
    found, family = definition("--arch", "lenet", "--dataset", "digits", "--noise", "0", "-1", "--seed", "0", "1",
                               "--augmentation", "off", "on", "--lr", "0.1", "0.01")
    assert found.fixed == {"--arch": ["lenet"], "--dataset": ["digits"]}
    assert list(found.axes) == ["--noise", "--seed", "--augmentation", "--lr"]
    assert len(family) == 2 * 2 * 2 * 2
    first, last = family[0], family[-1]
    assert first.id == "noise=0,seed=0,augmentation=off,lr=0.1" and last.id == "noise=-1,seed=1,augmentation=on,lr=0.01"
    assert "--augmentation" not in first.argv and "--augmentation" in last.argv  # off: absent
    assert first.extra == "augmentation=off,lr=0.1"  # outside the run layout: a folder level of their own
    assert list(first.argv[-2:]) == ["--lr", "0.1"]


def test_a_member_without_a_seed_gets_seed_0_and_a_boolean_alone_is_on():
    _, family = definition("--arch", "lenet", "--dataset", "digits", "--augmentation")
    assert [member.id for member in family] == ["run"]
    assert family[0].argv == ("--arch", "lenet", "--dataset", "digits", "--augmentation", "--seed", "0")


@pytest.mark.parametrize("tokens, message", [
    (["--arch", "lenet", "--nosuch", "1"], "--nosuch is neither"),
    (["--arch", "lenet", "--lr"], "--lr needs a value"),
    (["--arch", "lenet", "--lr", "1", "--lr", "2"], "given twice"),
    (["--arch", "lenet", "--augmentation", "maybe"], "on/off"),
    (["--arch", "lenet", "--models-path", "x"], "set by the sweep"),
    (["--arch", "lenet", "--resume-from", "x"], "no place in a sweep"),
])
def test_grid_mistakes_are_one_line(tmp_path, capsys, tokens, message):
    assert run_sweep(tmp_path / "sweeps", "--name", "bad", *tokens) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("tokens, message", [
    (["--noise", "0", "1.5"], "member noise=1.5: --noise 1.5 is out of range"),
    (["--optimizer", "sgd", "rmsprop"], "member optimizer=rmsprop: argument --optimizer: invalid choice"),
    (["--subsample-classes", "2", "11"], "member subsample_classes=11: --subsample-classes 11"),
    (["--upscale", "--upscale-padding"], "member run: --upscale and --upscale-padding"),
])
def test_a_bad_member_is_refused_up_front_and_nothing_is_written(tmp_path, capsys, tokens, message):
    assert run_sweep(tmp_path / "sweeps", "--name", "bad", *TINY, *tokens) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "sweeps").exists()


def test_the_config_file_describes_the_same_family_as_the_command_line(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text('name = "cfg"\nanalyses = ["projections"]\n[train]\narch = "lenet"\ndataset = "digits"\n'
                      'epochs = 2\naugmentation = true\n[axes]\nnoise = [0, -1]\nseed = [0, 1]\n')
    assert run_sweep(tmp_path, "--config", str(config), "--dry-run") == 0
    from_file = capsys.readouterr().out
    assert run_sweep(tmp_path, "--name", "cfg", "--analyses", "projections", "--arch", "lenet", "--dataset", "digits",
                     "--epochs", "2", "--augmentation", "--noise", "0", "-1", "--seed", "0", "1", "--dry-run") == 0
    assert capsys.readouterr().out == from_file and from_file.count("python train.py") == 4
    assert run_sweep(tmp_path, "--config", str(config), "--epochs", "3", "--dry-run") == 0  # the command line wins
    assert capsys.readouterr().out.count("--epochs 3") == 4
    assert not (tmp_path / "cfg").exists()


# -- the local engine ------------------------------------------------------------------------------
# (the 2x2 grid, clean labels and pixel shuffle x two seeds, is conftest's grid_2x2)
@pytest.mark.slow
def test_a_2x2_grid_runs_into_the_standard_layout(grid_2x2):
    root, code = grid_2x2
    assert code == 0
    folder = root / "grid"
    recorded = manifest(root, "grid")
    assert recorded["grids"][0]["axes"] == {"--noise": [["0"], ["-1"]], "--seed": [["0"], ["1"]]}
    assert {entry["id"]: entry["status"] for entry in recorded["members"]} == {
        "noise=0,seed=0": "done", "noise=0,seed=1": "done", "noise=-1,seed=0": "done", "noise=-1,seed=1": "done"}
    for entry, sub in zip(recorded["members"], ["digits/lenet/0", "digits/lenet/1", "digits/pixel_shuffle/lenet/0",
                                                 "digits/pixel_shuffle/lenet/1"]):
        assert entry["folders"]["models"] == f"models/{sub}" and entry["seconds"] > 0 and entry["error"] is None
        run = json.loads((folder / "models" / sub / "run.json").read_text())
        assert run["status"]["state"] == "finished" and [row["epoch"] for row in run["snapshots"]] == [0, 2]
        assert (folder / "results" / sub / "projections_summary.json").is_file()
        assert (folder / "results" / sub / "reinit_lenet_epoch0002.json").is_file()
        assert (folder / "plots" / sub / "training_curves.png").is_file()
        assert (folder / "tensorboard" / sub).is_dir()
        assert (folder / "logs" / f"{entry['id']}.log").read_text().count("$ python") == 4
        assert entry["commands"][0].startswith("python train.py --arch lenet")


@pytest.mark.slow
def test_a_re_run_does_nothing_and_extend_adds_members_only(grid_2x2, tmp_path, capsys):
    root = tmp_path / "copy"
    shutil.copytree(grid_2x2[0] / "grid", root / "grid")  # the shared sweep stays as it is
    before = files_with_mtimes(root / "grid")
    assert run_sweep(root, "--name", "grid", *GRID, "--jobs", "2") == 0
    assert files_with_mtimes(root / "grid") == before
    assert run_sweep(root, "--name", "grid", *GRID, "2") == 2  # a third seed
    assert "another grid" in capsys.readouterr().err
    assert run_sweep(root, "--name", "grid", *GRID, "2", "--extend", "--jobs", "2") == 0
    after = files_with_mtimes(root / "grid")
    # existing members untouched; the family's HParams view in their TensorBoard runs is rewritten, as
    # the family now has a third seed (tests/test_hparams.py)
    assert {name: mtime for name, mtime in after.items() if name in before and not name.endswith(EVENTS_FILE)} == {
        name: mtime for name, mtime in before.items() if not name.endswith(EVENTS_FILE)}
    assert {str(Path(name).parent) for name in set(after) - set(before) if name.endswith("run.json")} == {
        "models/digits/lenet/2", "models/digits/pixel_shuffle/lenet/2"}
    assert statuses(root, "grid")["noise=-1,seed=2"] == "done" and len(statuses(root, "grid")) == 6
    assert len(manifest(root, "grid")["grids"]) == 2


@pytest.mark.slow
def test_status_prints_the_members_table(grid_2x2, capsys):
    root, _ = grid_2x2
    assert run_main(sweep.main, ["--status", str(root / "grid")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["member", "status", "time", "attempts", "requeues", "job", "error"]
    assert sum(" done " in line for line in lines) >= 4


def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path, capsys):
    with SweepFolder(tmp_path / "locked").lock():
        assert run_sweep(tmp_path, "--name", "locked", *TINY) == 2
    err = capsys.readouterr().err.strip()
    assert "another sweep.py" in err and f"pid {os.getpid()}" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_a_failing_member_is_isolated_and_the_sweep_exits_1(tmp_path, capsys):
    code = run_sweep(tmp_path, "--name", "fails", *TINY, "--lr", "0.01", "1e9", "--analyses", "projections",
                     "--jobs", "2")
    assert code == 1
    recorded = {entry["id"]: entry for entry in manifest(tmp_path, "fails")["members"]}
    assert recorded["lr=0.01"]["status"] == "done"
    failed = recorded["lr=1e9"]
    assert failed["status"] == "failed" and failed["error"].startswith("train: error: training loss became nan")
    assert failed["folders"]["models"] == "models/lr=1e9/digits/lenet/0"  # an axis outside the layout: its own level
    table = capsys.readouterr().err
    assert re.search(r"^lr=1e9 +failed", table, re.M) and "1 done, 1 failed" in table
    assert run_sweep(tmp_path, "--name", "fails", *TINY, "--lr", "0.01", "1e9", "--analyses", "projections") == 1
    assert "--retry-failed runs it again" in capsys.readouterr().err  # skipped, not retried


# -- signals, in a real sweep process --------------------------------------------------------------
def _start_sweep(root: Path, *argv: str) -> subprocess.Popen:
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), "--root", str(root), *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_epoch(run_json: Path, process: subprocess.Popen, limit: float = 240.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            if json.loads(run_json.read_text())["epochs"]:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no epoch in {run_json} in time")


def _everything_loads(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.suffix == ".pt":
            assert "model_state_dict" in torch.load(path, weights_only=True), path
        elif path.suffix == ".json":
            json.loads(path.read_text())


@pytest.mark.slow
def test_sigkill_of_the_sweep_then_a_re_run_completes_it(tmp_path):
    args = ["--name", "killed", *BASE, "--epochs", "3", "--seed", "0", "1", "--analyses", "projections", "--jobs", "1"]
    process = _start_sweep(tmp_path, *args)
    folder = tmp_path / "killed"
    _wait_for_epoch(folder / "models/digits/lenet/1/run.json", process)  # seed 0 is done, seed 1 is training
    first = folder / "models/digits/lenet/0/lenet_epoch0000.pt"
    finished = (first.stat().st_mtime_ns, first.read_bytes())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stderr.close()
    assert run_sweep(tmp_path, *args) == 0
    assert set(statuses(tmp_path, "killed").values()) == {"done"}
    _everything_loads(folder)
    assert (first.stat().st_mtime_ns, first.read_bytes()) == finished  # the finished member was not trained again
    resumed = json.loads((folder / "models/digits/lenet/1/run.json").read_text())
    assert resumed["status"]["state"] == "finished" and resumed.get("resumed_at_epoch")  # resumed, at most an epoch lost
    assert [row["epoch"] for row in resumed["epochs"]] == [1, 2, 3]
    killed = manifest(tmp_path, "killed")["members"][1]  # its first attempt never said how long it ran
    assert killed["attempts"] == 2 and killed["total_seconds"] > killed["seconds"] + 1
    assert manifest(tmp_path, "killed")["members"][0]["attempts"] == 1


@pytest.mark.slow
def test_sigint_stops_the_members_which_a_re_run_resumes(tmp_path):
    args = ["--name", "stopped", *BASE, "--epochs", "3", "--analyses", "projections"]
    process = _start_sweep(tmp_path, *args)
    _wait_for_epoch(tmp_path / "stopped/models/digits/lenet/0/run.json", process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    process.stderr.close()
    assert statuses(tmp_path, "stopped") == {"run": "interrupted"}
    interrupted = manifest(tmp_path, "stopped")["members"][0]
    assert run_sweep(tmp_path, *args) == 0
    assert set(statuses(tmp_path, "stopped").values()) == {"done"}
    entry = manifest(tmp_path, "stopped")["members"][0]  # both attempts count
    assert entry["attempts"] == 2 and entry["total_seconds"] == pytest.approx(interrupted["seconds"] + entry["seconds"], abs=0.2)


# -- the SLURM path, through submitit's local executor ---------------------------------------------
@pytest.mark.slow
@pytest.mark.serial
def test_the_submitit_path_end_to_end(tmp_path, capsys):
    code = run_sweep(tmp_path, "--name", "array", *TINY, "--analyses", "projections",
                     "--launcher", "slurm", "--submitit-local", "--slurm-time", "10", "--wait")
    assert code == 0
    recorded = manifest(tmp_path, "array")
    assert [entry["status"] for entry in recorded["members"]] == ["done"]
    assert all(entry["job_id"] for entry in recorded["members"])
    assert recorded["launcher"]["launcher"] == "slurm" and recorded["launcher"]["slurm_time"] == 10
    assert (tmp_path / "array/results/digits/lenet/0/projections_summary.json").is_file()
    assert run_main(sweep.main, ["--status", str(tmp_path / "array")]) == 0
    assert capsys.readouterr().out.count(" done ") == 1


@pytest.mark.slow
@pytest.mark.serial
def test_a_re_submission_waits_for_its_own_job_not_the_last_attempt_s_status(tmp_path):
    """--retry-failed re-submits a failed member: the wait must follow the new job to its end (the
    status file of the first attempt says "failed" at once)."""
    argv = ["--name", "again", *TINY, "--lr", "1e9", "--analyses", "projections", "--launcher", "slurm",
            "--submitit-local", "--slurm-time", "10", "--wait"]
    assert run_sweep(tmp_path, *argv) == 1
    first = manifest(tmp_path, "again")["members"][0]
    assert first["status"] == "failed" and "nan" in first["error"]
    assert run_sweep(tmp_path, *argv, "--retry-failed") == 1
    second = manifest(tmp_path, "again")["members"][0]
    status = json.loads((tmp_path / "again/status/run.json").read_text())
    assert second["job_id"] != first["job_id"] and status["job_id"] == second["job_id"]
    assert second["status"] == "failed" and second["started"] > first["finished"]  # the new attempt's outcome
    assert (tmp_path / "again/logs/run.log").read_text().count("nan") >= 2  # it really ran twice


def test_small_faults_of_the_launchers(tmp_path, caplog):
    from sweeper import launch

    args, tokens = sweep.parse(["--root", str(tmp_path), "--name", "x", *TINY, "--no-progress"])
    assert "--no-progress" not in tokens and tokens[:2] == ["--arch", "lenet"]  # harmless: every member has it
    folder = SweepFolder(tmp_path / "x")
    folder.path.mkdir()
    recorded = {"members": [{"id": "a", "status": "pending", "error": None}]}
    progress = launch.Progress(folder, recorded, 1)
    with caplog.at_level("INFO", logger="sweeper.launch"):
        progress.member("a", {"status": "interrupted", "error": "job 7 ended (CANCELLED)", "seconds": None})
    assert "interrupted a: job 7 ended (CANCELLED) (1 of 1" in caplog.text and "None" not in caplog.text
    assert launch.exit_code(recorded) == 1  # an interrupted member is not a success
    recorded["members"][0]["status"] = "done"
    assert launch.exit_code(recorded) == 0 and launch.exit_code(recorded, signum=2) == 130


def test_slurm_without_slurm_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no_slurm_here"))  # whatever this machine has
    assert run_sweep(tmp_path, "--name", "nosbatch", *TINY, "--launcher", "slurm") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs SLURM (no sbatch on this machine)" in err
    assert not (tmp_path / "nosbatch").exists()


# -- --dry-run -------------------------------------------------------------------------------------
VOLATILE = ("seconds", "time_s", "started", "updated")


def _comparable(value, root: str):
    if isinstance(value, dict):
        return {key: _comparable(item, root) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [_comparable(item, root) for item in value]
    return value.replace(root, "ROOT") if isinstance(value, str) else value


@pytest.mark.slow
def test_dry_run_commands_run_by_hand_give_the_same_result_files(grid_2x2, tmp_path, capsys):
    """The first member of the 2x2 grid (deterministic), typed by hand from --dry-run, gives its files."""
    root, _ = grid_2x2
    by_hand = tmp_path / "by_hand"
    assert run_sweep(by_hand, "--name", "grid", *GRID, "--dry-run") == 0
    member = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert member[0].startswith("# noise=0,seed=0")
    commands = [shlex.split(line) for line in member[1:]]
    assert [command[1] for command in commands] == ["train.py", "compute_projections.py", "reinit_layers.py",
                                                    "plot_results.py"]
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": str(max(1, cpu_count() // 2))}  # as the sweep's --jobs 2
    for command in commands:
        subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env=env, check=True, capture_output=True)
    sub = Path("digits/lenet/0")
    for kind in ("models", "results"):
        made = sorted(path.name for path in (by_hand / "grid" / kind / sub).glob("*.json"))
        assert made == sorted(path.name for path in (root / "grid" / kind / sub).glob("*.json"))
        assert len(made) >= (1 if kind == "models" else 7)
        for name in made:
            expected = _comparable(json.loads((by_hand / "grid" / kind / sub / name).read_text()), str(by_hand))
            got = _comparable(json.loads((root / "grid" / kind / sub / name).read_text()), str(root))
            assert got == expected, f"{kind}/{sub}/{name}"


# -- explicit values, the ETA, the running members' line, honest counts, a silent controller ----------
@pytest.mark.parametrize("flag", ["--jobs", "--nproc-per-member", "--slurm-mem", "--slurm-cpus-per-member",
                                  "--slurm-array-parallelism"])
def test_a_meaningless_zero_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, flag):
    assert run_sweep(tmp_path, "--name", "zero", *TINY, flag, "0") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{flag} 0: give at least 1" in err, err
    assert not (tmp_path / "zero").exists()


def test_slurm_time_0_is_no_limit_and_0_gpus_are_0_gpus_never_the_defaults(tmp_path):
    from sweeper.options import launch_of, launch_settings

    args, _ = sweep.parse(["--name", "x", *TINY, "--launcher", "slurm", "--slurm-time", "0",
                           "--slurm-gpus-per-member", "0"])
    settings = launch_settings(args, {"launcher": {"slurm_time": 30, "slurm_gpus_per_member": 2}}, None)
    assert settings["slurm_time"] == 0 and settings["slurm_gpus_per_member"] == 0  # the command line's 0 wins
    slurm = launch_of(settings, wait=False, uses_gpu=True).slurm
    assert slurm.time_min == 0 and slurm.gpus_per_member == 0
    assert slurm.warning_s == 90  # no limit to precede: the signal only precedes a pre-emption
    args, _ = sweep.parse(["--name", "x", *TINY, "--slurm-time", "-1"])
    with pytest.raises(UserError, match="--slurm-time -1: give at least 0"):
        launch_settings(args, {}, None)


def test_the_eta_counts_the_members_running_at_once():
    from sweeper.watch import eta

    assert eta([], 11, 2) == "?"
    assert eta([60.0], 11, 1) == "11m 0s"  # one at a time: 11 members of a minute each
    assert eta([60.0], 11, 2) == "5m 30s"  # two at a time: half that
    assert eta([50.0, 70.0], 1, 4) == "1m 0s"  # fewer left than jobs: one member's time
    assert eta([10.0], 0, 2) == "0s"
    # 12 members, 2 at a time: the first took 60 s, and the other running one is 50 s into its 60 s
    assert eta([60.0], 11, 2, under_way=[50.0]) == "5m 5s"  # (11 * 60 - 50) / 2
    assert eta([60.0], 1, 2, under_way=[90.0]) == "0s"  # a member over the mean: no negative time


def _plan(tmp_path: Path):
    from sweeper.family import plans_of
    from sweeper.grid import Definition

    found = Definition(analyses=("projections",))
    parse_train_tokens([*TINY, "--seed", "0", "1"], flags_of(train_parser()), found)
    return plans_of(found, tmp_path)


def test_the_running_members_line_names_each_member_and_its_epoch(tmp_path, caplog):
    from sweeper.watch import Heartbeat, activity, running_line

    first, second = _plan(tmp_path)
    assert activity(first) == "starting"  # no log yet
    first.folders.log.parent.mkdir(parents=True)
    train, projections = first.steps[0], first.steps[1]
    first.folders.log.write_text(f"\n$ {train.shell()} --resume-from last.pt\nrun directory ...\n"
                                 "epoch 1/2  train loss 2.2000  val loss 2.1000 top1 30.00  lr 0.01 (0.5s)\n")
    assert activity(first) == "train epoch 1/2"
    second.folders.log.write_text(f"\n$ {second.steps[0].shell()}\n")
    assert activity(second) == "train"
    with open(first.folders.log, "a") as log:
        log.write(f"epoch 2/2  train loss 1.0\n\n$ {projections.shell()}\n")
    assert activity(first) == "projections"

    line = running_line({first.member.id: activity(first), second.member.id: activity(second)}, "0 of 2 ended")
    assert line == "running: seed=0 (projections), seed=1 (train); 0 of 2 ended"
    many = {f"noise=0.{i},seed={i},lr=0.001": "train epoch 10/30" for i in range(9)}
    line = running_line(many, "0 of 9 ended; ETA ?")
    assert len(line) <= 120 and "+" in line and "more" in line and line.endswith("ETA ?")

    lines = iter(["running: a (train epoch 1/2); ETA ?"] * 3 + ["running: a (train epoch 2/2); ETA ?"])
    with caplog.at_level("INFO", logger="sweeper.watch"), Heartbeat(lambda: next(lines, None), every_s=0.02):
        time.sleep(0.3)
    assert caplog.text.count("running: a (train epoch 1/2)") == 1  # said once while unchanged
    assert caplog.text.count("running: a (train epoch 2/2)") == 1


def test_attempts_keep_requeues_by_cause_and_the_time_of_every_attempt():
    from sweeper.attempts import carried, describe, requeue_cause

    # a job that requeued itself after SIGUSR2 near its limit of 5 min (warned 75 s ahead), then after 40 s
    assert requeue_cause(230.0, time_min=5, warning_s=75) == "time_limit"
    assert requeue_cause(40.0, time_min=5, warning_s=75) == "preemption"
    assert requeue_cause(4000.0, time_min=0, warning_s=90) == "preemption"  # no limit: only a pre-emption
    # 12 self-requeues at the time limit, as _requeue leaves them (pending): the next attempt adds nothing
    previous = {"status": "pending", "job_id": "7_0", "attempts": 12, "total_seconds": 410.5,
                "requeues": {"time_limit": 12}}
    history = carried(previous, job_id="7_0", restarts=12, seen=0.0)
    assert history == {"attempts": 12, "requeues": {"time_limit": 12, "preemption": 0, "node_failure": 0},
                       "total_seconds": 410.5, "steps": {}}
    steps = {"train": {"code": 0, "seconds": 400.0, "total_seconds": 400.0}}
    assert carried(previous | {"steps": steps}, job_id="7_0", restarts=12, seen=0.0)["steps"] == steps
    # SLURM requeued the job after SIGTERM (scontrol requeue, a pre-emption): the attempt said interrupted
    interrupted = previous | {"status": "interrupted"}
    assert carried(interrupted, job_id="7_0", restarts=13, seen=0.0)["requeues"]["preemption"] == 1
    # the node died: the attempt never said more than "running"; its time counts to its last sign of life
    crashed = previous | {"status": "running", "started_at": 1000.0}
    history = carried(crashed, job_id="7_0", restarts=13, seen=1030.0)
    assert history["requeues"]["node_failure"] == 1 and history["total_seconds"] == 440.5
    # another job (a resubmission) is no requeue, but its time still counts
    assert carried(interrupted, job_id="9_0", restarts=0, seen=0.0)["requeues"]["preemption"] == 0
    assert describe({"time_limit": 12}) == "12 (time limit 12)" and describe(None) == "0"
    assert describe({"time_limit": 2, "preemption": 1}) == "3 (time limit 2, pre-emption 1)"


def test_the_members_table_shows_the_total_time_and_the_requeues():
    from sweeper import launch

    entry = {"id": "seed=0", "status": "done", "seconds": 6.0, "total_seconds": 422.0, "attempts": 13,
             "requeues": {"time_limit": 12}, "job_id": "7_0", "error": None}
    header, row = launch.table({"members": [entry]})
    assert header.split() == ["member", "status", "time", "attempts", "requeues", "job", "error"]
    assert row.split() == ["seed=0", "done", "7m", "2s", "13", "12", "(time", "limit", "12)", "7_0"]


def test_a_silent_controller_is_named_once_and_again_when_it_answers():
    from sweeper.cluster import ControllerWatch

    said, now = [], [100.0]
    watch = ControllerWatch(quiet_s=30, clock=lambda: now[0], say=said.append)
    watch.answered()
    for step in range(0, 60, 5):  # polled every 5 s for a minute
        now[0] = 100.0 + step
        watch.failed("squeue: Unable to contact slurm controller")
    assert len(said) == 1 and "has not answered for 35s" in said[0] and "Unable to contact" in said[0]
    now[0] = 170.0
    watch.answered()
    assert len(said) == 2 and said[1] == "SLURM's controller answers again, after 70s"
    watch.failed("again")
    now[0] = 180.0
    watch.failed("again")
    watch.answered()
    assert len(said) == 2  # 10 s of silence is not worth a line


def test_sinfo_limits_and_pending_reasons_that_never_resolve():
    from sweeper.cluster import hopeless, minutes, misfit, parse_sinfo
    from sweeper.slurm import SlurmSettings

    assert [minutes(text) for text in ("infinite", "30", "30:00", "1:00:00", "2-00:00:00", "1:30")] == \
        [None, 30, 30, 60, 2880, 2]
    found = parse_sinfo("debug*|2|19284|(null)|infinite|1|idle\ngpu|64|512000|gpu:a100:4(S:0-1)|2-00:00:00|2|mix\n"
                        "gpu|32|256000|gpu:2|2-00:00:00|1|down*\n")
    assert found[""].name == "debug" and found["gpu"].cpus == 64 and found["gpu"].gpus == 4
    assert found["gpu"].time_limit_min == 2880 and found["gpu"].nodes_up == 2
    assert misfit(SlurmSettings(cpus_per_member=64), found["debug"]) == \
        "--slurm-cpus-per-member 64 asks for more CPUs than any node of partition debug has (2)"
    assert "--slurm-mem 20 asks for more memory" in misfit(SlurmSettings(mem_gb=20), found["debug"])
    assert "--slurm-gpus-per-member 1" in misfit(SlurmSettings(gpus_per_member=1), found["debug"])
    assert "--slurm-time 0 (no limit) exceeds" in misfit(SlurmSettings(time_min=0), found["gpu"])
    assert misfit(SlurmSettings(time_min=0, cpus_per_member=2), found["debug"]) is None
    assert hopeless("PartitionConfig", found["debug"]) and hopeless("(InvalidAccount)", None)
    assert not hopeless("Resources", found["debug"]) and not hopeless("BeginTime", None)
    assert not hopeless("ReqNodeNotAvail, UnavailableNodes:n1", found["gpu"])  # 2 nodes up: it may start
    assert hopeless("ReqNodeNotAvail, UnavailableNodes:n1", parse_sinfo("x*|2|100|(null)|infinite|1|down*\n")[""])
