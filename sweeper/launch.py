"""Running a family's members and reporting on them: which members run, the manifest kept up to
date as they start and end, progress lines, and the members table."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sweeper import follow, slurm, states
from sweeper.attempts import describe, duration
from sweeper.local import LocalEngine, uses_gpu, visible_gpus
from sweeper.manifest import SweepFolder, merge_status
from sweeper.member import STOPPED, pending_steps
from sweeper.plan import Plan
from sweeper.slurm import SlurmSettings
from sweeper.watch import Heartbeat, activity, eta, running_line
from utils.errors import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    launcher: str = "local"  # local | slurm
    jobs: int | None = None  # local: members at once [default: one per visible GPU, else 1]
    nproc: int = 1  # torchrun processes per member's training
    slurm: SlurmSettings = SlurmSettings()
    wait: bool = False

    def check(self, plans: list[Plan]) -> None:
        """Before anything is written: SLURM is there, and each local member can have a GPU of its own."""
        if self.launcher == "slurm":
            slurm.check_available(self.slurm)
        elif any(uses_gpu(plan) for plan in plans) and self.jobs and self.jobs > len(visible_gpus()):
            raise UserError(f"--jobs {self.jobs} but {len(visible_gpus())} GPU(s) visible: each member gets a GPU "
                            "of its own; lower --jobs")

    def jobs_for(self, plans: list[Plan]) -> int:
        """``--jobs``, else one member per visible GPU for CUDA members, else 1."""
        if self.jobs:
            return self.jobs
        return max(1, len(visible_gpus())) if any(uses_gpu(plan) for plan in plans) else 1


def to_run(manifest: dict, plans: dict[str, Plan], folder: SweepFolder, *, retry_failed: bool) -> list[Plan]:
    """The members with something left to do: done ones are skipped (their run.json says finished and
    their result files are there), failed ones too unless ``retry_failed``."""
    chosen = []
    for entry in manifest["members"]:
        merge_status(entry, folder.member_status(entry["id"]))
        plan = plans[entry["id"]]
        if not pending_steps(plan):
            entry["status"] = "done"
        elif entry["status"] == "failed" and not retry_failed:
            logger.info("skipping %s: failed before (%s); --retry-failed runs it again", entry["id"], entry["error"])
        else:
            chosen.append(plan)
    return chosen


class Progress:
    """Keeps the manifest up to date (atomically, on every change) and says what starts and ends; the ETA
    counts ``jobs`` members at a time. :meth:`line` says what the running members do (for
    :class:`sweeper.watch.Heartbeat`)."""

    def __init__(self, folder: SweepFolder, manifest: dict, total: int, *, jobs: int = 1) -> None:
        self.folder, self.manifest, self.total, self.jobs = folder, manifest, total, jobs
        self.entries = {entry["id"]: entry for entry in manifest["members"]}
        self.ended, self.seconds = 0, []
        self.running: dict[str, Plan] = {}
        self.since: dict[str, float] = {}  # when each running member started (monotonic seconds)
        self._lock = threading.Lock()

    def __call__(self, plan: Plan, status: dict) -> None:
        with self._lock:
            if status["status"] == "running":
                self.running[plan.member.id] = plan
            else:
                self.running.pop(plan.member.id, None)
        self.member(plan.member.id, status)

    def member(self, member: str, status: dict) -> None:
        with self._lock:
            merge_status(self.entries[member], status)
            self.folder.save(self.manifest)
            if status["status"] == "running":
                self.since[member] = time.monotonic()
                logger.info("started %s", member)
                return
            self.since.pop(member, None)
            self.ended += 1
            seconds = status.get("seconds")
            if isinstance(seconds, (int, float)):
                self.seconds.append(seconds)
            took = f" in {seconds:.0f}s" if isinstance(seconds, (int, float)) else ""
            error = f": {status['error']}" if status.get("error") else ""
            logger.info("%s %s%s%s (%d of %d; ETA %s)", status["status"], member, took, error, self.ended,
                        self.total, self.eta())

    def eta(self) -> str:
        """(Called with the lock held.)"""
        under_way = [time.monotonic() - since for since in self.since.values()]
        return eta(self.seconds, self.total - self.ended, self.jobs, under_way=under_way)

    def line(self) -> str | None:
        """``running: <member> (train epoch 3/30), ...; 2 of 12 ended; ETA 4m 10s``, or None when idle."""
        with self._lock:
            running = dict(self.running)
            tail = f"{self.ended} of {self.total} ended; ETA {self.eta()}"
        return running_line({member: activity(plan) for member, plan in running.items()}, tail) if running else None


def run_local(folder: SweepFolder, manifest: dict, plans: list[Plan], launch: Launch) -> int:
    """The embedded engine; returns the exit code (see :func:`report`)."""
    jobs = launch.jobs_for(plans)
    logger.info("%d member(s) to run, %d at a time, in %s", len(plans), jobs, folder.path)
    progress = Progress(folder, manifest, len(plans), jobs=jobs)
    signum = None
    if plans:
        with Heartbeat(progress.line):
            signum = LocalEngine(folder, plans, jobs=jobs, on_change=progress).run()
    return report(folder, manifest, signum=signum)


def queued(folder: SweepFolder, manifest: dict, plans: list[Plan], settings: SlurmSettings) -> dict[str, str]:
    """The members among ``plans`` whose runner is alive or whose earlier job is still queued or running:
    their job ids, by member id (they are left alone, not submitted twice)."""
    recorded = {entry["id"]: entry.get("job_id") for entry in manifest["members"]}
    ids = [recorded[plan.member.id] for plan in plans if recorded.get(plan.member.id)]
    try:
        found = states.job_states(ids, local=settings.local) if ids else {}
    except states.Unreachable as err:
        raise UserError(f"--launcher slurm: {err}; start SLURM, or run with --launcher local") from None
    alive = {}
    for plan in plans:
        member, job_id = plan.member.id, recorded.get(plan.member.id)
        if folder.member_running(member) or (job_id and states.active(found.get(job_id, states.GONE))):
            logger.info("%s is queued or running (job %s); leaving it alone", member, job_id or "?")
            alive[member] = job_id
    return alive


def run_slurm(folder: SweepFolder, manifest: dict, plans: list[Plan], launch: Launch, name: str) -> int:
    """One job array of the members to run; with ``wait``, follow them (and those already queued) to the end."""
    alive = queued(folder, manifest, plans, launch.slurm)
    plans = [plan for plan in plans if plan.member.id not in alive]
    if not plans and not alive:
        return report(folder, manifest)
    jobs = slurm.submit(folder, plans, launch.slurm, name) if plans else {}
    entries = {entry["id"]: entry for entry in manifest["members"]}
    for member, job_id in jobs.items():
        entries[member] |= {"status": "pending", "error": None, "job_id": job_id, "started": None,
                            "finished": None, "seconds": None}
    folder.save(manifest)
    if jobs:
        logger.info("submitted %d member(s) as job array %s; follow them with: python sweep.py --status %s --wait",
                    len(jobs), next(iter(jobs.values())).split("_")[0], folder.path)
    if not launch.wait:
        return 0
    followed = jobs | {member: job_id for member, job_id in alive.items() if job_id}
    progress = Progress(folder, manifest, len(followed), jobs=launch.slurm.array_parallelism or len(followed))
    follow.wait(folder, followed, local=launch.slurm.local, settings=launch.slurm, on_end=progress.member)
    return report(folder, manifest)


def table(manifest: dict) -> list[str]:
    """The members table: id, status, time over all attempts, attempts, requeues by cause, job id, error."""
    rows = [("member", "status", "time", "attempts", "requeues", "job", "error")]
    for entry in manifest["members"]:
        seconds = entry.get("total_seconds") or entry.get("seconds")
        rows.append((entry["id"], entry["status"], duration(seconds), str(entry.get("attempts") or "-"),
                     describe(entry.get("requeues")), entry.get("job_id") or "-", entry.get("error") or ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(6)]
    return ["  ".join(str(value).ljust(width) for value, width in zip(row[:6], widths)) + "  " + row[6]
            for row in rows]


def step_table(manifest: dict) -> list[str]:
    """The time each step of each member took, over all its attempts: a row per member that ran a step,
    a column per step (``-``: not run); empty when no member ran one."""
    names = list(dict.fromkeys(name for entry in manifest["members"] for name in entry.get("steps") or {}))
    if not names:
        return []
    rows = [("time per step", *names)]
    for entry in manifest["members"]:
        steps = entry.get("steps") or {}
        if steps:
            rows.append((entry["id"], *(step_time(steps.get(name)) for name in names)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]


def step_time(step: dict | None) -> str:
    """A step's time over every attempt (``-``: never run), ``failed`` or ``stopped`` after it when its last run did."""
    if not step:
        return "-"
    took = duration(step.get("total_seconds", step.get("seconds")))
    code = step.get("code")
    return took if code == 0 else f"{took} {'stopped' if code in STOPPED else 'failed'}"


def tables(manifest: dict) -> list[str]:
    """The members table, then the time per step (after an empty line)."""
    steps = step_table(manifest)
    return table(manifest) + ([""] + steps if steps else [])


def report(folder: SweepFolder, manifest: dict, *, signum: int | None = None) -> int:
    for entry in manifest["members"]:
        merge_status(entry, folder.member_status(entry["id"]))
    folder.save(manifest)
    for line in tables(manifest):
        logger.info("%s", line.rstrip())
    counts = {state: sum(entry["status"] == state for entry in manifest["members"])
              for state in ("done", "failed", "interrupted", "pending", "running")}
    logger.info("%s", ", ".join(f"{n} {state}" for state, n in counts.items() if n))
    return exit_code(manifest, signum=signum)


def exit_code(manifest: dict, *, signum: int | None = None) -> int:
    """128+N after signal N; else 1 if a member failed or was interrupted (the table says which), else 0."""
    if signum:
        return 128 + signum
    return 1 if any(entry["status"] in ("failed", "interrupted") for entry in manifest["members"]) else 0
