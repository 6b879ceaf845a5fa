"""sweep.py --launcher slurm on a real SLURM (slurmctld, slurmd and, by default, slurmdbd on this
machine: ``bash ci/slurm.sh start``, which .ci/run does). Without one, every test here skips with
one line that says so.

What SLURM does to jobs is done to them for real: ``scancel`` of a running and of a pending array
task, ``scontrol requeue`` (how SLURM pre-empts and requeues), ``scancel --signal=USR2`` (the signal
that ``--signal=USR2@<s>`` makes SLURM send before the time limit, sent by hand so that the test does
not wait for a limit; the test also reads the sbatch script to see that the limit asks for it), and
a cluster without accounting (a client slurm.conf with ``accounting_storage/none``: sacct then
fails exactly as it does there). Members are tiny LeNets on digits; every wait is bounded.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeper.slurm import controller_problem
from tests.sweep_helpers import BASE, files_with_mtimes, manifest, run_sweep, statuses

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slurm
LIMIT_S = 240  # any one wait


@pytest.fixture(scope="module", autouse=True)
def _cluster():
    problem = controller_problem()
    if problem is not None:
        pytest.skip(f"needs a running SLURM ({problem}); start one with: bash ci/slurm.sh start")


@pytest.fixture
def cancel_jobs():
    """Names of the sweeps a test starts; their jobs are cancelled when it ends, however it ends."""
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run(["scancel", f"--name=sweep-{name}"], capture_output=True)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT), **extra}


def _sweep_process(root: Path, *argv: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), "--root", str(root), *argv], cwd=ROOT,
                            env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sweep(root: Path, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "sweep.py"), "--root", str(root), *argv], cwd=ROOT,
                          env=env or _env(), capture_output=True, text=True, timeout=LIMIT_S)


def _until(condition, what: str, process: subprocess.Popen | None = None, limit: float = LIMIT_S) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the sweep ended (code {process.returncode}) before {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {limit:.0f}s")
        time.sleep(0.2)


def _state(job_id: str) -> str:
    listed = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%T", f"--jobs={job_id}"],
                            capture_output=True, text=True).stdout.split()
    return listed[0] if listed else "GONE"


def _last_epoch(run_json: Path) -> int:
    try:
        return max((row["epoch"] for row in json.loads(run_json.read_text())["epochs"]), default=0)
    except (OSError, ValueError, KeyError):
        return 0


def _slurm(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=60)


def _client_conf(tmp_path: Path, **changes: str) -> dict[str, str]:
    """The environment of a SLURM client reading this cluster's slurm.conf with ``changes``."""
    source = re.search(r"SLURM_CONF\s*=\s*(\S+)", subprocess.run(["scontrol", "show", "config"], capture_output=True,
                                                                   text=True).stdout).group(1)
    text = Path(source).read_text()
    for key, value in changes.items():
        text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M) if re.search(rf"^{key}=", text, re.M) \
            else text + f"\n{key}={value}\n"
    conf = tmp_path / "slurm.conf"
    conf.write_text(text)
    return _env(SLURM_CONF=str(conf))


def test_a_family_with_a_failing_member_under_torchrun_then_a_re_run_submits_nothing(tmp_path, cancel_jobs):
    cancel_jobs.append("family")
    argv = ["--name", "family", *BASE, "--epochs", "2", "--lr", "0.01", "1e9", "--analyses", "projections",
            "--launcher", "slurm", "--nproc-per-member", "2", "--slurm-time", "10", "--wait"]
    first = _sweep(tmp_path, *argv)
    assert first.returncode == 1, first.stderr  # a member failed
    recorded = {entry["id"]: entry for entry in manifest(tmp_path, "family")["members"]}
    assert {member: entry["status"] for member, entry in recorded.items()} == {"lr=0.01": "done", "lr=1e9": "failed"}
    assert "nan" in recorded["lr=1e9"]["error"]
    array = recorded["lr=0.01"]["job_id"].split("_")[0]
    assert [entry["job_id"] for entry in recorded.values()] == [f"{array}_0", f"{array}_1"]
    assert recorded["lr=0.01"]["commands"][0].startswith("torchrun --nproc_per_node 2 ")
    run = json.loads((tmp_path / "family/models/lr=0.01/digits/lenet/0/run.json").read_text())
    assert run["status"]["state"] == "finished"
    assert (tmp_path / "family/results/lr=0.01/digits/lenet/0/projections_summary.json").is_file()
    assert re.search(r"^lr=1e9 +failed", first.stderr, re.M) and "1 done, 1 failed" in first.stderr

    before = files_with_mtimes(tmp_path / "family")
    again = _sweep(tmp_path, *argv)
    assert again.returncode == 1 and "submitted" not in again.stderr, again.stderr
    assert "--retry-failed runs it again" in again.stderr
    assert files_with_mtimes(tmp_path / "family") == before
    assert [entry["job_id"] for entry in manifest(tmp_path, "family")["members"]] == [f"{array}_0", f"{array}_1"]


def test_requeues_and_cancels_leave_members_resumable_and_the_sweep_waits_for_the_right_job(tmp_path, cancel_jobs):
    """Two members, one at a time: the pending one is cancelled; the running one gets the time-limit
    signal (it requeues itself), is requeued by SLURM (pre-emption), then cancelled; the sweep that
    follows them ends only then. ``--resume --wait`` finishes both, the first from last.pt."""
    cancel_jobs.append("life")
    folder = tmp_path / "life"
    slower = [*BASE[:BASE.index("--batch-size")], "--batch-size", "32", *BASE[BASE.index("--batch-size") + 2:]]
    process = _sweep_process(tmp_path, "--name", "life", *slower, "--epochs", "8",
                             "--seed", "0", "1", "--analyses", "projections", "--launcher", "slurm",
                             "--slurm-array-parallelism", "1", "--slurm-time", "5", "--wait")
    run0 = folder / "models/digits/lenet/0/run.json"
    try:
        _until(lambda: _last_epoch(run0) >= 1, "first epoch", process)
        job0, job1 = (entry["job_id"] for entry in manifest(tmp_path, "life")["members"])
        script = (folder / "logs/submitit" / f"{job0.split('_')[0]}_submission.sh").read_text()
        assert "--signal=USR2@75" in script and "--time=5" in script and "--requeue" in script  # 5 min: 75 s ahead

        assert _state(job1) == "PENDING"
        _slurm("scancel", job1)  # a pending array task: the running one goes on
        _until(lambda: _state(job1) == "CANCELLED", "cancelled pending task")

        for action in (["scancel", "--signal=USR2", job0], ["scontrol", "requeue", job0]):
            reached = _last_epoch(run0)
            _slurm(*action)
            _until(lambda: _state(job0) != "RUNNING", f"{action[0]} to stop the job", process, limit=60)
            _until(lambda: _state(job0) == "RUNNING" and _last_epoch(run0) > reached,  # noqa: B023
                   f"an epoch after {' '.join(action[:2])}", process)
            assert process.poll() is None  # the sweep still follows the job

        _slurm("scancel", job0)
        _, err = process.communicate(timeout=LIMIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err  # interrupted members
    recorded = {entry["id"]: entry for entry in manifest(tmp_path, "life")["members"]}
    assert [entry["status"] for entry in recorded.values()] == ["interrupted", "interrupted"]
    assert "sweep.py --resume" in recorded["seed=0"]["error"] and "--resume-from" not in recorded["seed=0"]["error"]
    assert f"job {job1} ended (CANCELLED)" in recorded["seed=1"]["error"]
    log = (folder / "logs/seed=0.log").read_text()
    assert log.count("stopped by SIGTERM") == 3  # the time-limit signal, the requeue, the cancel
    first = recorded["seed=0"]  # three attempts of one job: two requeues, counted by cause, and all their time
    assert first["attempts"] == 3 and sum(first["requeues"].values()) == 2 and first["requeues"]["preemption"] >= 1
    assert first["total_seconds"] > first["seconds"] + 1
    assert re.search(r"^seed=0 +interrupted +\S+( \S+)? +3 +2 \(", err, re.M), err

    resumed = _sweep(tmp_path, "--resume", str(folder), "--wait", "--slurm-array-parallelism", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert statuses(tmp_path, "life") == {"seed=0": "done", "seed=1": "done"}
    run = json.loads(run0.read_text())
    assert run["status"]["state"] == "finished" and len(run["resumed_at_epoch"]) == 3
    assert [row["epoch"] for row in run["epochs"]] == list(range(1, 9))  # at most the interrupted epochs redone
    resumed_entry = manifest(tmp_path, "life")["members"][0]
    assert resumed_entry["attempts"] == 4 and resumed_entry["total_seconds"] > first["total_seconds"]


def test_without_accounting_a_cancelled_or_vanished_job_ends_its_member(tmp_path, cancel_jobs):
    cancel_jobs.append("quiet")
    env = _client_conf(tmp_path, AccountingStorageType="accounting_storage/none")
    sacct = subprocess.run(["sacct", "-j", "1"], env=env, capture_output=True, text=True)
    assert sacct.returncode != 0  # this client has no accounting, as on such a cluster
    process = _sweep_process(tmp_path, "--name", "quiet", *BASE, "--epochs", "1", "--analyses", "projections",
                             "--launcher", "slurm", "--slurm-extra", "begin=now+600", "--wait", env=env)
    try:
        _until(lambda: (tmp_path / "quiet/sweep.json").is_file() and manifest(tmp_path, "quiet")["members"][0]["job_id"],
               "submission", process)
        job = manifest(tmp_path, "quiet")["members"][0]["job_id"]
        assert _state(job) == "PENDING"
        _slurm("scancel", job)  # cancelled while pending: no status is ever written by the job
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err
    entry = manifest(tmp_path, "quiet")["members"][0]
    assert entry["status"] == "interrupted" and f"job {job} ended (CANCELLED)" in entry["error"]

    # a job SLURM no longer knows (purged from squeue, no sacct record): gone, with and without accounting
    recorded = manifest(tmp_path, "quiet")
    recorded["members"][0]["job_id"] = "999999"
    (tmp_path / "quiet/sweep.json").write_text(json.dumps(recorded))
    for client in (env, _env()):
        followed = _sweep(tmp_path / "unused", "--status", str(tmp_path / "quiet"), "--wait", env=client)
        assert followed.returncode == 1, followed.stderr
        assert "job 999999 is no longer known to SLURM" in manifest(tmp_path, "quiet")["members"][0]["error"]
        assert followed.stderr.count("sacct") <= 1


def test_a_controller_that_does_not_answer_is_one_line(tmp_path, capsys, monkeypatch):
    env = _client_conf(tmp_path, SlurmctldPort="9")  # nothing listens there
    monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
    assert run_sweep(tmp_path, "--name", "down", *BASE, "--epochs", "1", "--launcher", "slurm") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs SLURM (sinfo: " in err and "--launcher local" in err
    assert not (tmp_path / "down").exists()


# -- requests that cannot run, explicit zeros ----------------------------------------------------------
def test_a_request_no_node_can_hold_is_refused_before_submission(tmp_path, capsys):
    nodes = subprocess.run(["sinfo", "--noheader", "--format=%c"], capture_output=True, text=True).stdout.split()
    too_many = str(max(int(cpus.rstrip("+")) for cpus in nodes) + 62)
    assert run_sweep(tmp_path, "--name", "huge", *BASE, "--epochs", "1", "--launcher", "slurm",
                     "--slurm-cpus-per-member", too_many, "--wait") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"--slurm-cpus-per-member {too_many} asks for more CPUs than any node of partition " in err
    assert not (tmp_path / "huge").exists()


def test_a_job_that_can_never_start_ends_the_wait_in_one_line(tmp_path, cancel_jobs, capsys):
    """More CPUs than the node has, asked through --slurm-extra (which the up-front check does not read),
    on a cluster without EnforcePartLimits: sbatch accepts it and SLURM keeps it pending (PartitionConfig)."""
    cancel_jobs.append("stuck")
    started = time.monotonic()
    assert run_sweep(tmp_path, "--name", "stuck", *BASE, "--epochs", "1", "--launcher", "slurm",
                     "--slurm-extra", "cpus-per-task=64", "--wait") == 1
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "cannot start" in line]
    assert len(said) == 1 and "run: job " in said[0] and "(SLURM: PartitionConfig)" in said[0], err
    assert "does not fit partition debug" in said[0] and "--slurm-extra" in said[0] and "--retry-failed" in said[0]
    entry = manifest(tmp_path, "stuck")["members"][0]
    assert entry["status"] == "failed" and "PartitionConfig" in entry["error"]
    _until(lambda: _state(entry["job_id"]) in ("CANCELLED", "GONE"), "the job cancelled", limit=30)
    assert run_sweep(tmp_path, "--status", str(tmp_path / "stuck")) == 1
    out = capsys.readouterr().out
    assert re.search(r"^run +failed .*could not start \(SLURM: PartitionConfig\)", out, re.M), out


def test_slurm_time_0_is_no_limit_and_status_shows_why_a_job_waits(tmp_path, cancel_jobs, capsys):
    cancel_jobs.append("unlimited")
    assert run_sweep(tmp_path, "--name", "unlimited", *BASE, "--epochs", "1", "--launcher", "slurm",
                     "--slurm-time", "0", "--slurm-extra", "begin=now+600") == 0
    recorded = manifest(tmp_path, "unlimited")
    job = recorded["members"][0]["job_id"]
    assert recorded["launcher"]["slurm_time"] == 0
    script = (tmp_path / "unlimited/logs/submitit" / f"{job.split('_')[0]}_submission.sh").read_text()
    assert "--time=0" in script
    limit = subprocess.run(["squeue", "--noheader", "--format=%l", f"--jobs={job}"], capture_output=True,
                           text=True).stdout.strip()
    assert limit == "UNLIMITED"
    capsys.readouterr()
    assert run_sweep(tmp_path, "--status", str(tmp_path / "unlimited")) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^run +pending .*{job} +pending: BeginTime$", out, re.M), out
    _slurm("scancel", job)


def test_explicit_zeros_on_slurm_are_refused_in_one_line(tmp_path, capsys):
    for flag in ("--slurm-mem", "--slurm-cpus-per-member", "--slurm-array-parallelism"):
        assert run_sweep(tmp_path, "--name", "zeros", *BASE, "--epochs", "1", "--launcher", "slurm", flag, "0") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{flag} 0: give at least 1" in err
    assert not (tmp_path / "zeros").exists()


# -- ci/slurm.sh and .ci/run when a start fails ----------------------------------------------------------
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="ci/slurm.sh runs as root")


def _second_cluster(tmp_path: Path, **changes: str) -> dict[str, str]:
    """The environment of a throwaway cluster of its own (folders, name, ports; no accounting)."""
    return {**os.environ, "SLURM_CI_HOME": str(tmp_path / "home"), "SLURM_CI_CONF_DIR": str(tmp_path / "etc"),
            "SLURM_CI_CLUSTER": "throwaway", "SLURM_CI_PORT": "7817", "SLURM_ACCOUNTING": "0", **changes}


@root_only
def test_a_start_that_fails_part_way_stops_the_daemons_it_started(tmp_path):
    env = _second_cluster(tmp_path, SLURM_CI_FAIL_AFTER="slurmctld")
    start = subprocess.run(["bash", str(ROOT / "ci/slurm.sh"), "start"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert start.returncode == 1
    assert "error: SLURM_CI_FAIL_AFTER=slurmctld: failing the start after slurmctld" in start.stderr
    pid = int(re.search(r"slurmctld started \(pid (\d+)\)", start.stdout).group(1))
    assert "stopped the 1 daemon(s) it had started" in start.stderr
    assert not Path(f"/proc/{pid}").exists()  # its own slurmctld is gone
    assert controller_problem() is None  # the cluster it found (munged, the test cluster) still runs


@root_only
def test_leftovers_of_another_cluster_fail_the_start_with_slurm_s_own_error(tmp_path):
    """Another ClusterName's state in the folder a cluster uses: slurmctld refuses, and the start says
    why in SLURM's words. (The test cluster's folder is its own, so that this cannot happen to it.)"""
    env = _second_cluster(tmp_path)
    (tmp_path / "home/slurmctld").mkdir(parents=True)
    (tmp_path / "home/slurmctld/clustername").write_text("another\n")
    start = subprocess.run(["bash", str(ROOT / "ci/slurm.sh"), "start"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert start.returncode == 1 and "slurmctld did not start" in start.stderr
    assert "clustername" in start.stderr and "StateSaveLocation" in start.stderr


@root_only
def test_in_ci_a_cluster_that_does_not_start_fails_the_run_at_once(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "make").write_text(f"#!/bin/sh\ntouch {tmp_path}/make_ran\n")  # never the real suite from here
    (fake / "make").chmod(0o755)
    env = {**os.environ, "CI": "true", "SLURM_CI_FAIL_AFTER": "packages", "PATH": f"{fake}:{os.environ['PATH']}"}
    started = time.monotonic()
    run = subprocess.run(["bash", str(ROOT / ".ci/run")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and time.monotonic() - started < 30
    assert "SLURM_CI_FAIL_AFTER=packages" in run.stderr and ".ci/run: error: SLURM did not start" in run.stderr
    assert not (tmp_path / "make_ran").exists()
    assert controller_problem() is None
