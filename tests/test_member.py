"""A member's steps: the analyses of one CLI as one command, the steps after training in one process
(sweeper.host), resume of what is missing only, and the time each step took in the status and tables.

The runner's tests use tiny scripts as steps (they record their process id), so that they say what ran
where without training anything; one slow test runs a real member with the field's measures and
compares its results with the old plan's, one process per analysis.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import sweep
from analyses.registry import declaration
from sweeper import launch
from sweeper.grid import Member
from sweeper.host import run_commands
from sweeper.manifest import SweepFolder
from sweeper.member import MemberRunner, batches, pending_steps
from sweeper.plan import Folders, Plan, Step, steps
from tests.sweep_helpers import BASE, manifest, run_sweep
from utils.cli import run_main

ROOT = Path(__file__).resolve().parents[1]
FIELD = ("norms", "margin", "sharpness", "optimization")


# -- the plan ---------------------------------------------------------------------------------------
def folders(root: Path) -> Folders:
    return Folders(root / "models", root / "results", root / "plots", root / "tensorboard", "digits/lenet/0",
                   root / "logs" / "m.log")


def member_plan(root: Path, analyses: tuple[str, ...]) -> Plan:
    args = argparse.Namespace(arch="lenet", epochs=2, device=None, cuda=False)
    member = Member("m", {}, ("--arch", "lenet", "--dataset", "digits", "--epochs", "2"), "")
    where = folders(root)
    return Plan(member, args, where, steps(member, args, where, analyses), analyses)


def test_the_analyses_of_one_cli_are_one_step_in_the_registry_s_order(tmp_path):
    plan = member_plan(tmp_path, ("sharpness", "projections", "norms", "spectra", "margin", "optimization"))
    assert [step.name for step in plan.steps] == ["train", "projections", "spectra",
                                                  "norms+margin+sharpness+optimization", "plots"]
    measures = plan.steps[3]
    assert measures.analyses == FIELD and measures.shared and not plan.steps[0].shared
    words = measures.argv
    assert words[:2] == ("python", "compute_measures.py") or words[1].endswith("/compute_measures.py")
    assert list(words[words.index("--measures") + 1:words.index("--latest")]) == list(FIELD)
    # one measure alone keeps the command of its own declaration
    (alone,) = [step for step in member_plan(tmp_path, ("margin",)).steps if step.analyses]
    assert alone.name == "margin" and list(alone.argv[2:]) == declaration("margin").sweep_arguments(plan.context)


def finished_run(plan: Plan, epochs: list[int]) -> None:
    plan.folders.run.mkdir(parents=True)
    (plan.folders.run / "run.json").write_text(json.dumps({"status": {"state": "finished"},
                                                           "snapshots": [{"epoch": e} for e in epochs]}))


def measured(plan: Plan, name: str, epoch: int) -> None:
    """A result file of ``name`` as the done-check reads it (its kind and epoch)."""
    results = plan.folders.results / plan.folders.sub
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}_lenet_epoch{epoch:04d}.json").write_text(json.dumps({"kind": name, "epoch": epoch}))


def test_a_partly_done_step_runs_only_the_analyses_it_misses(tmp_path):
    plan = member_plan(tmp_path, FIELD)
    assert [step.name for step in pending_steps(plan)] == ["train", "norms+margin+sharpness+optimization", "plots"]
    finished_run(plan, [0, 2])
    measured(plan, "norms", 2)
    measured(plan, "sharpness", 2)
    measured(plan, "margin", 0)  # not the latest snapshot: margin is still to do
    todo = pending_steps(plan)
    assert [step.name for step in todo] == ["margin+optimization", "plots"]
    assert todo[0].analyses == ("margin", "optimization")
    argv = todo[0].argv
    assert list(argv[argv.index("--measures") + 1:argv.index("--latest")]) == ["margin", "optimization"]
    measured(plan, "margin", 2)
    measured(plan, "optimization", 2)
    assert [step.name for step in pending_steps(plan)] == ["plots"]


def test_consecutive_shared_steps_form_one_batch():
    train, a, b = Step("train", ("python", "t.py")), Step("a", ("python", "a.py"), shared=True), Step(
        "b", ("python", "b.py"), shared=True)
    assert batches([train, a, b]) == [[train], [a, b]]
    assert batches([a, train, b]) == [[a], [train], [b]]
    assert batches([]) == []


# -- the host ---------------------------------------------------------------------------------------
SCRIPT = """import os, sys, time
from pathlib import Path
Path(sys.argv[1]).write_text(str(os.getpid()))
time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
print("said by", Path(sys.argv[0]).name, "to", sys.argv[1:])
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""


def script(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text(SCRIPT)
    return path


def test_the_host_runs_its_commands_as_python_would_in_one_process_and_stops_at_a_failure(tmp_path):
    first, second, third = (script(tmp_path, f"{name}.py") for name in ("first", "second", "third"))
    commands = [f"python {first} {tmp_path / 'a'}", f"python {second} {tmp_path / 'b'} 3",
                f"python {third} {tmp_path / 'c'}"]
    log = tmp_path / "out.log"
    with open(log, "w") as out:
        code = subprocess.run([sys.executable, "-m", "sweeper.host", *commands], cwd=ROOT, stdout=out,
                              stderr=subprocess.STDOUT).returncode
    assert code == 3  # the failing command's exit status
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text()  # one process
    assert not (tmp_path / "c").exists()  # nothing after the failure
    text = log.read_text()
    assert f"\n$ {commands[0]}\nsaid by first.py to ['{tmp_path / 'a'}']\n" in text
    assert f"$ {commands[1]}\n" in text and commands[2] not in text


def test_the_host_reports_each_command_and_refuses_what_is_not_a_python_script(tmp_path, capfd):
    events = []
    first = script(tmp_path, "one.py")
    assert run_commands([f"python {first} {tmp_path / 'a'}", f"python {first} {tmp_path / 'b'} 2"],
                        report=events.append) == 2
    assert [sorted(event) for event in events] == [["offset", "started"], ["code", "ended", "seconds"]] * 2
    assert [event.get("code") for event in events[1::2]] == [0, 2]
    with pytest.raises(SystemExit, match="runs 'python <script>.py"):
        run_commands(["ls -l"])


# -- the runner -------------------------------------------------------------------------------------
def scripted_plan(tmp_path: Path, codes: dict[str, int], *, sleep: float = 0.0) -> Plan:
    """A member whose steps are tiny scripts: train alone, then two shared steps and the plots."""
    where = folders(tmp_path / "sweep")
    path = script(tmp_path, "step.py")

    def step(name: str, shared: bool) -> Step:
        wait = [str(sleep)] if name == "b" else []
        return Step(name, ("python", str(path), str(tmp_path / f"{name}.pid"), str(codes.get(name, 0)), *wait),
                    analyses=(name,) if name in "ab" else (), shared=shared)

    return Plan(Member("m", {}, (), ""), argparse.Namespace(arch="lenet", epochs=1), where,
                (step("train", False), step("a", True), step("b", True), step("plots", True)), ("a", "b"))


def pids(tmp_path: Path) -> dict[str, int]:
    return {path.stem: int(path.read_text()) for path in tmp_path.glob("*.pid")}


def test_a_member_trains_alone_then_runs_the_rest_in_one_process_with_each_step_s_time(tmp_path):
    plan = scripted_plan(tmp_path, {})
    folder = SweepFolder(tmp_path / "sweep")
    status = MemberRunner(folder, plan).run()
    assert status["status"] == "done"
    ran = pids(tmp_path)
    assert ran["a"] == ran["b"] == ran["plots"] != ran["train"]
    assert list(status["steps"]) == ["train", "a", "b", "plots"]
    assert all(step["code"] == 0 and step["total_seconds"] == step["seconds"] >= 0 for step in status["steps"].values())
    log = plan.folders.log.read_text()
    assert [line[2:] for line in log.splitlines() if line.startswith("$ ")] == [step.shell() for step in plan.steps]
    # a second attempt adds its time to every step it runs again
    again = MemberRunner(folder, plan).run()
    assert again["attempts"] == 2
    for name, step in again["steps"].items():
        assert step["total_seconds"] == pytest.approx(status["steps"][name]["seconds"] + step["seconds"], abs=0.11)


def test_a_failing_shared_step_fails_the_member_with_its_own_line(tmp_path):
    plan = scripted_plan(tmp_path, {"a": 3})
    status = MemberRunner(SweepFolder(tmp_path / "sweep"), plan).run()
    assert status["status"] == "failed"
    assert status["error"] == f"a: said by step.py to ['{tmp_path / 'a.pid'}', '3']"
    assert status["steps"]["a"]["code"] == 3 and "b" not in status["steps"] and "b" not in pids(tmp_path)


def test_a_signal_during_a_shared_step_interrupts_the_member_naming_the_step(tmp_path):
    plan = scripted_plan(tmp_path, {}, sleep=60)
    processes = []
    runner = MemberRunner(SweepFolder(tmp_path / "sweep"), plan, on_process=processes.append)
    stopper = threading.Thread(target=stop_when_b_runs, args=(tmp_path, processes))
    stopper.start()
    status = runner.run()
    stopper.join()
    assert status["status"] == "interrupted", status
    assert status["error"].startswith("b: stopped by SIGTERM; resume with: python sweep.py --resume")
    assert status["steps"]["b"]["code"] == -signal.SIGTERM and "plots" not in status["steps"]


def stop_when_b_runs(tmp_path: Path, processes: list) -> None:
    deadline = time.monotonic() + 60
    while not (tmp_path / "b.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    live = [process for process in processes if process is not None]
    live[-1].send_signal(signal.SIGTERM)


def test_the_status_shows_the_time_of_each_step_of_each_member():
    def entry(member: str, steps: dict) -> dict:
        return {"id": member, "status": "done", "seconds": 1.0, "error": None, "steps": steps}

    recorded = {"members": [
        entry("seed=0", {"train": {"code": 0, "seconds": 70.0, "total_seconds": 130.0},
                         "norms+margin": {"code": 0, "seconds": 9.4}}),
        entry("seed=1", {"train": {"code": 0, "seconds": 5.0, "total_seconds": 5.0},
                         "norms+margin": {"code": 2, "seconds": 1.0, "total_seconds": 1.0}}),
        entry("seed=2", {})]}
    lines = launch.step_table(recorded)
    assert [line.split() for line in lines] == [["time", "per", "step", "train", "norms+margin"],
                                                ["seed=0", "2m", "10s", "9s"], ["seed=1", "5s", "1s", "failed"]]
    assert launch.tables(recorded)[-4] == "" and launch.step_table({"members": [entry("a", {})]}) == []


# -- a real member ----------------------------------------------------------------------------------
# 270 training images (--split 0.8 holds the rest out): the measures that read the training split are quick
MEMBER = [*BASE, "--split", "0.8", "--epochs", "2", "--seed", "0", "--analyses", *FIELD]


def field_documents(results: Path) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for name in FIELD for path in results.glob(f"{name}_*.json")}


@pytest.mark.slow
def test_a_member_s_measures_in_one_command_equal_one_process_per_measure_and_resume_skips_them(tmp_path, capsys):
    assert run_sweep(tmp_path, "--name", "one", *MEMBER) == 0
    entry = manifest(tmp_path, "one")["members"][0]
    assert list(entry["steps"]) == ["train", "norms+margin+sharpness+optimization", "plots"]
    results = tmp_path / "one/results/digits/lenet/0"
    together = field_documents(results)
    assert len(together) == 4
    # the old plan: each measure's own command (its declaration's), in a process of its own
    env = {**os.environ, "CI": "true"}
    plan = member_plan(tmp_path / "one", FIELD)
    alone_root = tmp_path / "alone"
    for name in FIELD:
        arguments = declaration(name).sweep_arguments(plan.context)
        arguments[arguments.index("--results") + 1] = str(alone_root)
        subprocess.run([sys.executable, "compute_measures.py", *arguments], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    alone = field_documents(alone_root / "digits/lenet/0")
    assert sorted(alone) == sorted(together)
    for name, document in together.items():
        other = alone[name]
        # the same computation; the SVDs of processes with other thread counts may differ in the last bit
        numbers = {key for key, value in other["measures"].items() if isinstance(value, float)}
        assert document["measures"].keys() == other["measures"].keys(), name
        assert {key: document["measures"][key] for key in numbers} == \
            pytest.approx({key: other["measures"][key] for key in numbers}, rel=1e-12, nan_ok=True), name
        assert {key: value for key, value in document["measures"].items() if key not in numbers} == \
            {key: value for key, value in other["measures"].items() if key not in numbers}, name
        assert document["args"]["measures"] == list(FIELD) and other["args"]["measures"] == [document["kind"]]
    # resume: one result gone, only its measure runs again
    (results / next(name for name in together if name.startswith("optimization_"))).unlink()
    before = {name: (results / name).stat().st_mtime_ns for name in together if not name.startswith("optimization_")}
    capsys.readouterr()
    assert run_sweep(tmp_path, "--name", "one", *MEMBER) == 0
    assert {name: (results / name).stat().st_mtime_ns for name in before} == before
    log = (tmp_path / "one/logs/run.log").read_text()
    last = [shlex.split(line[2:]) for line in log.splitlines() if line.startswith("$ ")][-2]
    assert last[last.index("--measures") + 1:] == ["optimization", "--latest"]
    assert run_main(sweep.main, ["--status", str(tmp_path / "one")]) == 0
    shown = capsys.readouterr().out.splitlines()
    header = next(line for line in shown if line.startswith("time per step"))
    assert header.split()[3:] == ["train", "norms+margin+sharpness+optimization", "plots", "optimization"]
