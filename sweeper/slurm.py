"""SLURM through submitit: the pending members go out as one job array; each job runs one member
exactly as the local engine does (:class:`sweeper.member.MemberRunner`) and writes its status file.

``local=True`` uses submitit's own local executor instead (one machine, for testing this path):
its timeout (``timeout_min``, 2 minutes by default) is set from ``time_min``, and it hides GPUs
unless ``gpus_per_node`` is set.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from sweeper.manifest import SweepFolder
from sweeper.plan import ROOT, Plan
from utils.errors import UserError

logger = logging.getLogger(__name__)

ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "UNKNOWN",
                 "NO PROCESS AND NO RESULT")


@dataclass(frozen=True)
class SlurmSettings:
    partition: str | None = None
    time_min: int = 120
    gpus_per_member: int = 0
    mem_gb: int | None = None
    cpus_per_member: int | None = None
    array_parallelism: int | None = None
    extra: dict = field(default_factory=dict)  # other sbatch parameters, e.g. {"account": "lab"}
    local: bool = False  # submitit's local executor (tests)

    def record(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def check_available(settings: SlurmSettings) -> None:
    if not settings.local and shutil.which("sbatch") is None:
        raise UserError("--launcher slurm needs SLURM (no sbatch on this machine); run with --launcher local")


def executor(folder: SweepFolder, settings: SlurmSettings, name: str):
    """A submitit executor writing its logs under ``logs/submitit``."""
    check_available(settings)
    import submitit

    # The jobs unpickle sweeper.member: make the suite importable wherever they start.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    chosen = submitit.AutoExecutor(folder=folder.path / "logs" / "submitit", cluster="local" if settings.local else "slurm")
    parameters = {"name": f"sweep-{name}", "timeout_min": settings.time_min, "gpus_per_node": settings.gpus_per_member,
                  "tasks_per_node": 1, "nodes": 1}
    if settings.mem_gb:
        parameters["mem_gb"] = settings.mem_gb
    if settings.cpus_per_member:
        parameters["cpus_per_task"] = settings.cpus_per_member
    if settings.partition:
        parameters["slurm_partition"] = settings.partition
    if settings.array_parallelism:
        parameters["slurm_array_parallelism"] = settings.array_parallelism
    if settings.extra:
        parameters["slurm_additional_parameters"] = dict(settings.extra)
    chosen.update_parameters(**parameters)
    return chosen


def run_member_job(sweep_dir: str, member_id: str) -> str:
    """The SLURM job of one member: rebuild its plan from the manifest, run it, return its state."""
    from sweeper.family import plan_of_entry
    from sweeper.member import MemberRunner

    folder = SweepFolder(sweep_dir)
    entry = next(entry for entry in folder.load()["members"] if entry["id"] == member_id)
    threads = os.environ.get("SLURM_CPUS_PER_TASK") or str(len(os.sched_getaffinity(0)))
    return MemberRunner(folder, plan_of_entry(Path(sweep_dir), entry), env={"OMP_NUM_THREADS": threads}).run()["status"]


def submit(folder: SweepFolder, plans: list[Plan], settings: SlurmSettings, name: str) -> dict:
    """Submit ``plans`` as one job array; returns the submitit jobs by member id."""
    jobs = executor(folder, settings, name).map_array(run_member_job, [str(folder.path)] * len(plans),
                                                      [plan.member.id for plan in plans])
    return {plan.member.id: job for plan, job in zip(plans, jobs)}


def job_for(folder: SweepFolder, job_id: str, *, local: bool):
    """A job of an earlier sweep.py, by id, to follow (SLURM's through sacct)."""
    import submitit

    job_class = submitit.LocalJob if local else submitit.SlurmJob
    return job_class(folder.path / "logs" / "submitit", job_id)


def _state(job) -> str:
    try:
        return str(job.state).upper()
    except Exception:  # noqa: BLE001  sacct missing or an id of another cluster: nothing to follow
        return "UNKNOWN"


def finished(status: dict | None) -> bool:
    return (status or {}).get("status") in ("done", "failed", "interrupted")


def wait(folder: SweepFolder, jobs: dict, *, poll_s: float = 2.0, on_end=lambda member, status: None) -> None:
    """Until every member's job has ended; a job that ended without finishing its member (killed, timed
    out, cancelled) leaves the member interrupted, with the job's state as its error."""
    remaining = dict(jobs)
    while remaining:
        for member, job in list(remaining.items()):
            status = folder.member_status(member)
            if finished(status):
                on_end(member, status)
                del remaining[member]
                continue
            state = _state(job)
            if state in ACTIVE_STATES:
                continue
            time.sleep(poll_s)  # the status file is written just before the job ends
            status = folder.member_status(member)
            if not finished(status):
                status = (status or {}) | {"status": "interrupted", "error": f"job {job.job_id} ended ({state}) "
                                           "before the member finished; re-run the sweep to resume it"}
                folder.write_member_status(member, status)
            on_end(member, status)
            del remaining[member]
        if remaining:
            time.sleep(poll_s)
