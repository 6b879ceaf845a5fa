"""Running a family's members and reporting on them: which members run, the manifest kept up to
date as they start and end, progress lines, and the members table."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sweeper import slurm
from sweeper.local import LocalEngine, eta, uses_gpu, visible_gpus
from sweeper.manifest import SweepFolder, merge_status
from sweeper.member import pending_steps
from sweeper.plan import Plan
from sweeper.slurm import SlurmSettings
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
    """Keeps the manifest up to date (atomically, on every change) and says what starts and ends."""

    def __init__(self, folder: SweepFolder, manifest: dict, total: int) -> None:
        self.folder, self.manifest, self.total = folder, manifest, total
        self.entries = {entry["id"]: entry for entry in manifest["members"]}
        self.started, self.ended = time.monotonic(), 0
        self._lock = threading.Lock()

    def __call__(self, plan: Plan, status: dict) -> None:
        with self._lock:
            entry = self.entries[plan.member.id]
            merge_status(entry, status)
            self.folder.save(self.manifest)
            if status["status"] == "running":
                logger.info("started %s", plan.member.id)
                return
            self.ended += 1
            error = f": {status['error']}" if status.get("error") else ""
            logger.info("%s %s in %ss%s (%d of %d; ETA %s)", status["status"], plan.member.id, status.get("seconds"),
                        error, self.ended, self.total, eta(self.started, self.ended, self.total - self.ended))


def run_local(folder: SweepFolder, manifest: dict, plans: list[Plan], launch: Launch) -> int:
    """The embedded engine; returns the exit code (1 if a member failed, 128+N after signal N)."""
    jobs = launch.jobs_for(plans)
    logger.info("%d member(s) to run, %d at a time, in %s", len(plans), jobs, folder.path)
    signum = LocalEngine(folder, plans, jobs=jobs, on_change=Progress(folder, manifest, len(plans))).run() \
        if plans else None
    return report(folder, manifest, signum=signum)


def run_slurm(folder: SweepFolder, manifest: dict, plans: list[Plan], launch: Launch, name: str) -> int:
    """One job array of the members to run; with ``wait``, follow it to the end."""
    running = [plan for plan in plans if (folder.member_status(plan.member.id) or {}).get("status") == "running"
               and folder.member_running(plan.member.id)]
    plans = [plan for plan in plans if plan not in running]
    for plan in running:
        logger.info("%s is running in another job; leaving it alone", plan.member.id)
    if not plans:
        return report(folder, manifest)
    jobs = slurm.submit(folder, plans, launch.slurm, name)
    entries = {entry["id"]: entry for entry in manifest["members"]}
    for member, job in jobs.items():
        entries[member] |= {"status": "pending", "error": None, "job_id": str(job.job_id)}
    folder.save(manifest)
    logger.info("submitted %d member(s) as job array %s; follow them with: python sweep.py --status %s --wait",
                len(jobs), next(iter(jobs.values())).job_id, folder.path)
    if not launch.wait:
        return 0
    progress = Progress(folder, manifest, len(jobs))
    slurm.wait(folder, jobs, on_end=lambda member, status: progress(next(p for p in plans if p.member.id == member),
                                                                    status))
    return report(folder, manifest)


def table(manifest: dict) -> list[str]:
    """The members table: id, status, seconds, job id, error."""
    rows = [("member", "status", "time", "job", "error")]
    for entry in manifest["members"]:
        seconds = entry.get("seconds")
        rows.append((entry["id"], entry["status"], "-" if seconds is None else f"{seconds:.0f}s",
                     entry.get("job_id") or "-", entry.get("error") or ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    return ["  ".join(str(value).ljust(width) for value, width in zip(row[:4], widths)) + "  " + row[4]
            for row in rows]


def report(folder: SweepFolder, manifest: dict, *, signum: int | None = None) -> int:
    for entry in manifest["members"]:
        merge_status(entry, folder.member_status(entry["id"]))
    folder.save(manifest)
    for line in table(manifest):
        logger.info("%s", line.rstrip())
    counts = {state: sum(entry["status"] == state for entry in manifest["members"])
              for state in ("done", "failed", "interrupted", "pending", "running")}
    logger.info("%s", ", ".join(f"{n} {state}" for state, n in counts.items() if n))
    if signum:
        return 128 + signum
    return 1 if counts["failed"] else 0
