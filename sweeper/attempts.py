"""A member's attempts, counted honestly: how many there were, its requeues by cause and the time
over all of them (not only the last attempt's).

Each attempt (a local run, a SLURM job's start, the same job after a requeue) starts from the
history its member's status file holds and adds itself to it. How the previous attempt ended tells
why a job started again:

- the job requeued itself after SIGUSR2 (:func:`requeue_cause`: the time limit, or a pre-emption);
- SLURM restarted the job (``SLURM_RESTART_COUNT``) after the previous attempt said it was
  interrupted (SIGTERM: ``scontrol requeue``, a pre-emption): a pre-emption;
- SLURM restarted it and the previous attempt never wrote its last word (it is still "running"):
  its node failed (slurmd, the node or the job's processes died). Its time counts up to its last
  sign of life (the newest write of its status or log).
"""
from __future__ import annotations

import os
from pathlib import Path

HISTORY = ("attempts", "requeues", "total_seconds", "steps")
CAUSES = ("time_limit", "preemption", "node_failure")
LABELS = {"time_limit": "time limit", "preemption": "pre-emption", "node_failure": "node failure"}
SLACK_S = 60  # SLURM checks limits every 30 s; the member starts a little after its job


def requeue_cause(seconds: float, *, time_min: int, warning_s: int) -> str:
    """Why SIGUSR2 came after an attempt of ``seconds``: the time limit when the attempt ran up to the
    signal's time (``time_min`` minutes less ``warning_s``), else a pre-emption (or a limit of 0)."""
    if time_min and seconds >= time_min * 60 - warning_s - SLACK_S:
        return "time_limit"
    return "preemption"


def counts(requeues) -> dict[str, int]:
    """Requeues by cause, from a status file (older files hold one number: self-requeues, counted as
    time limits, which they mostly were)."""
    if isinstance(requeues, int):
        return dict.fromkeys(CAUSES, 0) | {"time_limit": requeues}
    return {cause: int((requeues or {}).get(cause, 0)) for cause in CAUSES}


def carried(previous: dict | None, *, job_id: str | None, restarts: int, seen: float) -> dict:
    """The history a new attempt starts from: ``{"attempts", "requeues", "total_seconds", "steps"}``
    (``steps``: each step's last exit code and time, and its time over every attempt).

    ``previous``: the member's status file (or None); ``job_id``: this attempt's job (None locally);
    ``restarts``: ``SLURM_RESTART_COUNT``; ``seen``: the previous attempt's last sign of life (epoch s).
    """
    previous = previous or {}
    history = {"attempts": int(previous.get("attempts") or 0), "requeues": counts(previous.get("requeues")),
               "total_seconds": float(previous.get("total_seconds") or 0.0),
               "steps": {name: dict(step) for name, step in (previous.get("steps") or {}).items()}}
    state = previous.get("status")
    if state == "running" and isinstance(previous.get("started_at"), (int, float)):
        history["total_seconds"] += max(0.0, seen - previous["started_at"])  # it never said how long it ran
    same_job = job_id is not None and str(previous.get("job_id")) == str(job_id)
    if same_job and restarts and state in ("running", "interrupted"):
        history["requeues"]["node_failure" if state == "running" else "preemption"] += 1
    return history


def last_sign_of_life(*paths: Path) -> float:
    """The newest modification time among ``paths`` (0 when none exists)."""
    times = []
    for path in paths:
        try:
            times.append(os.stat(path).st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def restarts() -> int:
    """How many times SLURM restarted this job (0 outside SLURM)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        return 0


def describe(requeues) -> str:
    """``12 (time limit 12)``, ``3 (time limit 2, pre-emption 1)``, or ``0``."""
    found = {cause: n for cause, n in counts(requeues).items() if n}
    if not found:
        return "0"
    return f"{sum(found.values())} ({', '.join(f'{LABELS[cause]} {n}' for cause, n in found.items())})"


def duration(seconds: float | None) -> str:
    """``6s``, ``7m 2s``, ``2h 5m``; ``-`` when unknown."""
    if not isinstance(seconds, (int, float)):
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"
