"""SLURM through submitit, the submission: the pending members go out as one job array; each job
runs one member exactly as the local engine does (:class:`sweeper.member.MemberRunner`) and writes
its status file. Following the jobs is :mod:`sweeper.follow`'s, their states and pending reasons
:mod:`sweeper.states`' (with :mod:`sweeper.accounting` for the jobs squeue forgot), the cluster's
limits and the reasons that never resolve :mod:`sweeper.cluster`'s.

How a member's job ends (docs/slurm.md tells users):

- SIGUSR2, which SLURM sends :attr:`SlurmSettings.warning_s` before the time limit (and clusters send
  before a pre-emption): the running command is stopped (train.py stops at the next step; ``last.pt``
  holds the last finished epoch), and the job requeues itself (``scontrol requeue``) when it made
  progress (an epoch or a step), so that its next start continues from ``last.pt``.
- SIGTERM (``scancel``, the time limit itself, SLURM's own requeue or pre-emption): every process of
  the job gets it from SLURM; train.py writes ``last.pt`` and stops, the member is interrupted, and if
  SLURM requeues the job its next start continues.

Requeues are counted by cause across attempts (:mod:`sweeper.attempts`).

``local=True`` uses submitit's own local executor instead (one machine, for testing this path):
its timeout (``timeout_min``) is set from ``time_min`` (a week for 0, SLURM's "no limit"), and it
hides GPUs unless ``gpus_per_node`` is set.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sweeper.attempts import carried, last_sign_of_life, requeue_cause
from sweeper.cluster import check_fits
from sweeper.cluster import command as _command
from sweeper.cluster import last_line as _last_line
from sweeper.manifest import SweepFolder, now
from sweeper.plan import ROOT, Plan
from sweeper.signals import CheckpointSignals
from utils.errors import UserError

logger = logging.getLogger(__name__)

LOCAL_NO_LIMIT_MIN = 7 * 24 * 60  # submitit's local executor has no "no limit": a week stands for it


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

    @property
    def warning_s(self) -> int:
        """Seconds before the time limit at which SLURM sends SIGUSR2: 90, a quarter of short limits (30 at
        least; SLURM checks time limits every 30 s). ``extra={"signal": "USR2@300"}`` sets another. With
        ``time_min`` 0 (no limit) there is no limit to precede; the signal then only comes before a
        pre-emption."""
        return 90 if self.time_min == 0 else min(90, max(30, self.time_min * 60 // 4))

    def record(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def controller_problem() -> str | None:
    """Why this machine cannot use SLURM (no sbatch, or a controller that does not answer), or None."""
    if shutil.which("sbatch") is None:
        return "no sbatch on this machine"
    answer = _command(["sinfo", "--noheader", "--format=%P"])
    return None if answer.returncode == 0 else f"sinfo: {_last_line(answer.stderr)}"


def check_available(settings: SlurmSettings) -> None:
    if settings.local:
        return
    problem = controller_problem()
    if problem is not None:
        raise UserError(f"--launcher slurm needs SLURM ({problem}); start it, or run with --launcher local")
    check_fits(settings)


def executor(folder: SweepFolder, settings: SlurmSettings, name: str):
    """A submitit executor writing its logs under ``logs/submitit``."""
    check_available(settings)
    import submitit

    # The jobs unpickle sweeper.member: make the suite importable wherever they start.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    chosen = submitit.AutoExecutor(folder=folder.path / "logs" / "submitit", cluster="local" if settings.local else "slurm")
    minutes = settings.time_min or (LOCAL_NO_LIMIT_MIN if settings.local else 0)  # SLURM's 0: no limit
    parameters = {"name": f"sweep-{name}", "timeout_min": minutes, "gpus_per_node": settings.gpus_per_member,
                  "tasks_per_node": 1, "nodes": 1}
    if settings.mem_gb:
        parameters["mem_gb"] = settings.mem_gb
    if settings.cpus_per_member:
        parameters["cpus_per_task"] = settings.cpus_per_member
    if not settings.local:
        parameters["slurm_signal_delay_s"] = settings.warning_s
        # --requeue: a job may requeue itself after SIGUSR2 even where JobRequeue=0
        parameters["slurm_additional_parameters"] = {"requeue": True, **settings.extra}
    if settings.partition:
        parameters["slurm_partition"] = settings.partition
    if settings.array_parallelism:
        parameters["slurm_array_parallelism"] = settings.array_parallelism
    chosen.update_parameters(**parameters)
    return chosen


def submit(folder: SweepFolder, plans: list[Plan], settings: SlurmSettings, name: str) -> dict[str, str]:
    """Submit ``plans`` as one job array; returns the job ids by member id.

    Each member's status file is reset to pending first: what an earlier attempt wrote must not be
    read as this one's outcome.
    """
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    chosen = executor(folder, settings, name)
    for plan in plans:
        seen = last_sign_of_life(folder.status_path(plan.member.id), plan.folders.log)
        kept = carried(folder.member_status(plan.member.id), job_id=None, restarts=0, seen=seen)
        folder.write_member_status(plan.member.id, kept | {"status": "pending", "error": None, "job_id": None,
                                                           "submitted": now()})
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's error too
            jobs = chosen.map_array(run_member_job, [str(folder.path)] * len(plans),
                                    [plan.member.id for plan in plans])
    except (FailedJobError, FailedSubmissionError, OSError, subprocess.SubprocessError) as err:
        raise UserError(f"sbatch refused the members' job array ({_last_line(str(err))}); check the --slurm-* "
                        "flags") from None
    return {plan.member.id: str(job.job_id) for plan, job in zip(plans, jobs)}


# -- inside the job ------------------------------------------------------------------------------------
def _job_id() -> str | None:
    """This job's id as submitit names it (``<array>_<task>``, a job id, or a local pid)."""
    import submitit

    try:
        return str(submitit.JobEnvironment().job_id)
    except (RuntimeError, KeyError):
        return None


def _progress(plan: Plan) -> tuple[int, int]:
    """How far a member got: (minus the steps left, epochs trained). A requeue needs it to grow."""
    from sweeper.member import pending_steps, run_record

    epochs = [row.get("epoch", 0) for row in (run_record(plan) or {}).get("epochs") or []]
    return -len(pending_steps(plan)), max(epochs, default=0)


def _requeue(folder: SweepFolder, plan: Plan, status: dict, *, job_id: str, progressed: bool,
             time_min: int) -> dict:
    """After SIGUSR2 stopped the member: requeue this job (status pending) or say why not (interrupted).
    The requeue is counted by its cause: the time limit when the attempt ran up to the signal's
    time, else a pre-emption."""
    resume = f"python sweep.py --resume {folder.path}"
    if not progressed:
        return status | {"error": f"SIGUSR2 (the time limit, --slurm-time {time_min}, or a pre-emption) came before "
                                  f"this job finished an epoch or a step; raise --slurm-time, then: {resume}"}
    warning_s = SlurmSettings(time_min=time_min).warning_s
    cause = requeue_cause(status.get("seconds") or 0.0, time_min=time_min, warning_s=warning_s)
    requeues = dict(status.get("requeues") or {})
    requeues[cause] = requeues.get(cause, 0) + 1
    requeued = status | {"status": "pending", "requeues": requeues,
                         "error": f"requeued after SIGUSR2 ({cause.replace('_', ' ')}); continues from last.pt"}
    folder.write_member_status(plan.member.id, requeued)  # first: the requeue ends this job at once
    answer = _command(["scontrol", "requeue", job_id])
    if answer.returncode == 0:
        logger.info("requeued job %s; it continues from last.pt", job_id)
        return requeued
    return status | {"error": f"SIGUSR2 stopped it and scontrol requeue failed ({_last_line(answer.stderr)}); {resume}"}


def run_member_job(sweep_dir: str, member_id: str) -> str:
    """The SLURM job of one member: rebuild its plan from the manifest, run it, return its state."""
    from sweeper.family import plan_of_entry
    from sweeper.member import MemberRunner

    folder = SweepFolder(sweep_dir)
    manifest = folder.load()
    entry = next(entry for entry in manifest["members"] if entry["id"] == member_id)
    plan = plan_of_entry(Path(sweep_dir), entry)
    # The CPUs SLURM gave the job: without task binding (TaskPlugin=task/none) the affinity is the whole
    # node, and members sharing it with as many threads each crawl.
    threads = (os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE")
               or str(len(os.sched_getaffinity(0))))
    job_id, stop = _job_id(), threading.Event()
    before = _progress(plan)
    with CheckpointSignals(stop) as signals:
        status = MemberRunner(folder, plan, env={"OMP_NUM_THREADS": threads}, stop=stop,
                              on_process=signals.on_process, job_id=job_id).run()
    if signals.warned and status["status"] == "interrupted" and job_id and not os.environ.get("SUBMITIT_LOCAL_JOB_ID"):
        status = _requeue(folder, plan, status, job_id=job_id, progressed=_progress(plan) > before,
                          time_min=(manifest.get("launcher") or {}).get("slurm_time", 120))
        folder.write_member_status(member_id, status)
    return status["status"]
