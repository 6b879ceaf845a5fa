"""Independent calls, one process each: locally ``jobs`` at a time, or on SLURM as one job array through
submitit (the sweep's launcher, its settings and its checks), for work that is a list of items, such
as the models of ``rank_measures.py --pgdl``.

``run_calls(function, items, launch)`` calls ``function(argument)`` for each ``(label, argument)``
(``function`` and the arguments must pickle: a module-level function and dataclasses). Each item
ends in an :class:`Outcome`: its result, or one line saying why it failed; the others go on. Each
end is logged with its time, how many ended and the ETA (``jobs`` at a time, from the mean time of
those that ended); while items run, a line every few seconds names them. A job of a SLURM array that
SLURM ends (time limit, cancellation) is a failed item; re-running the caller redoes only what its
results lack.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from sweeper.slurm import LOCAL_NO_LIMIT_MIN, SlurmSettings, check_available
from sweeper.watch import Heartbeat, eta
from utils.errors import UserError

logger = logging.getLogger(__name__)

LAUNCHERS = ("local", "slurm")
POLL_S = 2.0


@dataclass(frozen=True)
class CallLaunch:
    """Where the calls run: ``local`` (``jobs`` processes; 1: in this process) or ``slurm`` (a job array,
    its logs under ``logs``)."""

    launcher: str = "local"
    jobs: int = 1
    slurm: SlurmSettings = SlurmSettings()
    logs: str | None = None
    name: str = "calls"


@dataclass
class Outcome:
    label: str
    result: object = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None


def one_line(err: BaseException, *, last: bool = False) -> str:
    """An exception as one line: a UserError's message, else its type and its first line (``last``: its
    last line, for the tracebacks submitit reports)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if isinstance(err, UserError):
        return lines[0] if lines else "a user error"
    if not lines:
        return type(err).__name__
    return lines[-1] if last else f"{type(err).__name__}: {lines[0]}"


def guarded(function: Callable, argument) -> tuple[object, str | None, float]:
    """``(result, None, seconds)``, or ``(None, one line, seconds)`` when the call raised."""
    started = time.monotonic()
    try:
        return function(argument), None, time.monotonic() - started
    except Exception as err:  # one item's failure is reported, the others go on
        logger.debug("call failed", exc_info=True)
        return None, one_line(err), time.monotonic() - started


class Tally:
    """Says each end (time, count, ETA) and, for the heartbeat, what runs."""

    def __init__(self, labels: list[str], jobs: int, what: str) -> None:
        self.total, self.jobs, self.what = len(labels), jobs, what
        self.seconds: list[float] = []
        self.since = {label: time.monotonic() for label in labels[:jobs]}
        self.waiting = labels[jobs:]

    def ended(self, outcome: Outcome) -> Outcome:
        self.since.pop(outcome.label, None)
        if self.waiting:
            self.since[self.waiting.pop(0)] = time.monotonic()
        self.seconds.append(outcome.seconds)
        left = self.total - len(self.seconds)
        how = f"failed: {outcome.error}" if outcome.failed else "done"
        logger.info("%s %s %s in %.0fs (%d of %d; ETA %s)", self.what, outcome.label, how, outcome.seconds,
                    len(self.seconds), self.total, eta(self.seconds, left, self.jobs, under_way=self.running()))
        return outcome

    def running(self) -> list[float]:
        now = time.monotonic()
        return [now - since for since in self.since.values()]

    def line(self) -> str | None:
        if not self.since:
            return None
        names = ", ".join(list(self.since)[:4]) + (f" +{len(self.since) - 4} more" if len(self.since) > 4 else "")
        return f"running: {names}; {len(self.seconds)} of {self.total} ended"


def run_calls(function: Callable, items: list[tuple[str, object]], launch: CallLaunch, *,
              initializer: Callable[[], None] | None = None, what: str = "item") -> list[Outcome]:
    """Each item's :class:`Outcome`, in the order of ``items`` (see the module docstring)."""
    if not items:
        return []
    if launch.launcher == "slurm":
        return _on_slurm(function, items, launch, what)
    if launch.launcher != "local":
        raise UserError(f"--launcher {launch.launcher}: choose {' or '.join(LAUNCHERS)}")
    jobs = max(1, min(launch.jobs, len(items)))
    tally = Tally([label for label, _ in items], jobs, what)
    with Heartbeat(tally.line):
        if jobs == 1:
            return [tally.ended(Outcome(label, *guarded(function, argument))) for label, argument in items]
        return _in_processes(function, items, jobs, initializer, tally)


def _in_processes(function, items, jobs, initializer, tally: Tally) -> list[Outcome]:
    found: dict[str, Outcome] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=initializer) as pool:
        futures = {pool.submit(guarded, function, argument): label for label, argument in items}
        try:
            for future in as_completed(futures):
                label = futures[future]
                try:
                    found[label] = tally.ended(Outcome(label, *future.result()))
                except Exception as err:  # the worker process died (killed, out of memory)
                    found[label] = tally.ended(Outcome(label, error=f"its process ended: {one_line(err)}"))
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return [found[label] for label, _ in items]


def executor(launch: CallLaunch):
    """A submitit executor for ``launch.slurm`` (the sweep's settings, without its requeue: a re-run redoes
    what is missing), its logs under ``launch.logs``."""
    import submitit

    from sweeper.plan import ROOT

    settings = launch.slurm
    check_available(settings)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    chosen = submitit.AutoExecutor(folder=Path(launch.logs or "."), cluster="local" if settings.local else "slurm")
    parameters = {"name": launch.name, "timeout_min": settings.time_min or (LOCAL_NO_LIMIT_MIN if settings.local else 0),
                  "gpus_per_node": settings.gpus_per_member, "tasks_per_node": 1, "nodes": 1}
    optional = {"mem_gb": settings.mem_gb, "cpus_per_task": settings.cpus_per_member,
                "slurm_partition": settings.partition, "slurm_array_parallelism": settings.array_parallelism}
    parameters |= {key: value for key, value in optional.items() if value}
    if settings.extra and not settings.local:
        parameters["slurm_additional_parameters"] = dict(settings.extra)
    chosen.update_parameters(**parameters)
    return chosen


def _on_slurm(function, items, launch: CallLaunch, what: str) -> list[Outcome]:
    from submitit.core.utils import FailedJobError, FailedSubmissionError, UncompletedJobError

    chosen = executor(launch)
    try:
        jobs = chosen.map_array(guarded, [function] * len(items), [argument for _, argument in items])
    except (FailedJobError, FailedSubmissionError, OSError) as err:
        raise UserError(f"sbatch refused the job array ({one_line(err)}); check the --slurm-* flags") from None
    logger.info("submitted %d %s(s) as job array %s", len(jobs), what, str(jobs[0].job_id).split("_")[0])
    labels = [label for label, _ in items]
    tally, found = Tally(labels, len(labels), what), {}
    pending = dict(zip(labels, jobs))
    try:
        with Heartbeat(tally.line):
            while pending:
                for label, job in list(pending.items()):
                    if job.done():
                        try:
                            found[label] = tally.ended(Outcome(label, *job.result()))
                        except (FailedJobError, UncompletedJobError) as err:
                            found[label] = tally.ended(Outcome(label, error=f"job {job.job_id}: {one_line(err, last=True)}"))
                        del pending[label]
                if pending:
                    time.sleep(POLL_S)
    except BaseException:
        for job in pending.values():
            job.cancel(check=False)
        raise
    return [found[label] for label in labels]
