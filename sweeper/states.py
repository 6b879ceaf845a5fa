"""SLURM's states of the jobs a sweep follows, and why the pending ones wait: ``squeue`` first
(``--states=all`` lists ended jobs until SLURM forgets them), then accounting
(:mod:`sweeper.accounting`), else the job is :data:`GONE`. Which pending reasons never resolve is
:mod:`sweeper.cluster`'s. A submitit local job (``--submitit-local``) runs while its controller
process does.
"""
from __future__ import annotations

from pathlib import Path

from sweeper.accounting import Accounting
from sweeper.cluster import command, last_line

# Job states after which nothing of the job runs any more (squeue's and sacct's names); any other
# state (PENDING, RUNNING, REQUEUED, COMPLETING, SUSPENDED, ...) is a job still alive.
ENDED_STATES = ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                "PREEMPTED", "REVOKED", "TIMEOUT", "GONE")
GONE = "GONE"  # neither squeue nor sacct knows the job (purged, and no accounting): it ended


class Unreachable(Exception):
    """squeue failed for another reason than unknown job ids: the controller does not answer."""


def _squeue(ids: list[str], reasons: dict[str, str] | None = None) -> dict[str, str]:
    """The jobs' states; the reasons of the pending ones go into ``reasons``."""
    answer = command(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r",
                      f"--jobs={','.join(ids)}"])  # all: ended jobs too, until SLURM forgets them
    if answer.returncode != 0:
        if "invalid job id" in answer.stderr.lower():
            return {}  # none of them is known any more
        raise Unreachable(f"squeue: {last_line(answer.stderr)}")
    states = {}
    for line in answer.stdout.splitlines():
        job_id, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        if state:
            states[job_id] = state
            if reasons is not None and state == "PENDING" and reason and reason != "None":
                reasons[job_id] = reason
    return states


def _local_state(job_id: str) -> str:
    """A submitit local job (its id is its controller's pid) runs while that process does."""
    try:
        stat = Path(f"/proc/{int(job_id)}/stat").read_text()
        cmdline = Path(f"/proc/{int(job_id)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return "COMPLETED"
    return "COMPLETED" if stat.rsplit(")", 1)[-1].split()[0] == "Z" or b"submitit" not in cmdline else "RUNNING"


def job_states(ids: list[str], *, local: bool, accounting: Accounting | None = None,
               reasons: dict[str, str] | None = None) -> dict[str, str]:
    """Every job's state: SLURM's name (squeue, else sacct), or :data:`GONE`; the pending jobs' reasons
    go into ``reasons``. Raises :class:`Unreachable` when the controller does not answer."""
    if local:
        return {job_id: _local_state(job_id) for job_id in ids}
    states = _squeue(ids, reasons) if ids else {}
    missing = [job_id for job_id in ids if job_id not in states]
    if missing:
        states |= {job_id: state for job_id, state in (accounting or Accounting()).states(missing).items()
                   if job_id in missing}
    return {job_id: states.get(job_id, GONE) for job_id in ids}


def active(state: str) -> bool:
    return state not in ENDED_STATES


def pending_reasons(ids: list[str], *, local: bool) -> dict[str, str]:
    """Why each of the pending jobs ``ids`` waits (squeue's reason); empty when SLURM does not say."""
    reasons: dict[str, str] = {}
    if ids and not local:
        try:
            job_states(ids, local=False, reasons=reasons)
        except Unreachable:
            return {}
    return reasons

