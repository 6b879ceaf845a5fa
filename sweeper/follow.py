"""The follower's wait: a sweep (``--wait``, or ``sweep.py --status --wait``) follows its members'
jobs until each is over.

A member counts as ended only once SLURM says its job is over (:func:`sweeper.states.job_states`)
and the member's lock is free, and its status file counts only if that job wrote it: a previous
attempt's status, a pending array record or a requeue in progress never end a member early. A job
pending for a reason that waiting does not cure (:data:`sweeper.cluster.NEVER`) is cancelled and its
member failed, with one line; a controller that does not answer is named after 30 s
(:class:`sweeper.cluster.ControllerWatch`) and ends the wait after :data:`UNREACHABLE_LIMIT_S`.
"""
from __future__ import annotations

import logging
import time

from sweeper.accounting import Accounting
from sweeper.cluster import NEVER, ControllerWatch, command, hint, hopeless, partition_of, reason_code
from sweeper.manifest import SweepFolder, now
from sweeper.slurm import SlurmSettings
from sweeper.states import GONE, Unreachable, active, job_states
from utils.errors import UserError

logger = logging.getLogger(__name__)

UNREACHABLE_LIMIT_S = 600
FINAL = ("done", "failed", "interrupted")


def written_by(status: dict | None, job_id: str) -> bool:
    """Whether ``status`` is a final one written by the job ``job_id`` (not by an earlier attempt)."""
    return (status or {}).get("status") in FINAL and str((status or {}).get("job_id")) == str(job_id)


def _ended(folder: SweepFolder, member: str, job_id: str, state: str) -> dict:
    """The member's status once its job is over: its own, else interrupted with the job's state."""
    status = folder.member_status(member)
    if written_by(status, job_id):
        return status
    how = "is no longer known to SLURM" if state == GONE else f"ended ({state})"
    status = (status or {}) | {"status": "interrupted", "job_id": job_id,
                               "error": f"job {job_id} {how} before the member finished; resume with: "
                                        f"python sweep.py --resume {folder.path}"}
    folder.write_member_status(member, status)
    return status


def _never_starts(folder: SweepFolder, member: str, job_id: str, reason: str, settings: SlurmSettings) -> dict:
    """A job whose reason will not resolve: one line, the job cancelled, the member failed with it."""
    flag = hint(reason, settings)
    logger.error("%s: job %s cannot start (SLURM: %s): %s; then: python sweep.py --resume %s --retry-failed",
                 member, job_id, reason, flag, folder.path)
    command(["scancel", job_id])
    status = (folder.member_status(member) or {}) | {
        "status": "failed", "job_id": job_id, "finished": now(),
        "error": f"job {job_id} could not start (SLURM: {reason}): {flag}; cancelled"}
    folder.write_member_status(member, status)
    return status


def wait(folder: SweepFolder, jobs: dict[str, str], *, local: bool, settings: SlurmSettings | None = None,
         on_end=lambda member, status: None, watch: ControllerWatch | None = None) -> None:
    """Until every member's job (``jobs``: job id by member id) is over; see the module docstring. A job
    pending for a reason that waiting does not cure ends its member (failed, job cancelled)."""
    remaining, started = dict(jobs), time.monotonic()
    accounting, watch = Accounting(), watch or ControllerWatch()
    settings = settings or SlurmSettings()
    while remaining:
        reasons: dict[str, str] = {}
        try:
            states = job_states(list(remaining.values()), local=local, accounting=accounting, reasons=reasons)
            watch.answered()
        except Unreachable as err:
            if watch.failed(str(err)) > UNREACHABLE_LIMIT_S:
                raise UserError(f"SLURM has not answered for {UNREACHABLE_LIMIT_S // 60} minutes ({err}); the jobs "
                                f"may still run: follow them with python sweep.py --status {folder.path} --wait") from None
            states = {}
        worrying = any(reason_code(reason) in NEVER for reason in reasons.values())
        partition = partition_of(settings.partition) if worrying else None
        for member, job_id in list(remaining.items()):
            state = states.get(job_id)
            if job_id in reasons and hopeless(reasons[job_id], partition):
                on_end(member, _never_starts(folder, member, job_id, reasons[job_id], settings))
                del remaining[member]
                continue
            if state is None or active(state) or folder.member_running(member):
                continue
            on_end(member, _ended(folder, member, job_id, state))
            del remaining[member]
        if remaining:
            time.sleep(min(30.0, 2.0 + (time.monotonic() - started) / 30))
