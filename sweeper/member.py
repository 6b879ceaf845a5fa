"""One member of a family: its steps in order, each the exact command of its plan, skipping what is
already done (judged by run.json's state and each analysis's done-check on its result files).

Training runs in a process of its own; the steps after it (the analyses and the figures) run one
after another in one process (:mod:`sweeper.host`), so that the libraries are imported once, and the
analyses of one CLI that declare it run as one command, which loads the snapshot, the model and the
data once. A step of several analyses some of which are done runs the others only. The time each
step took goes into the status (``steps``: its last run's ``seconds`` and every run's ``total_seconds``).

Interrupted training resumes from ``last.pt``; once training ran, every later step runs again. A
member holds ``locks/<member>.lock`` while it runs, and its commands inherit the lock, so a re-run
waits for commands that are still stopping. Its status goes to ``status/<member>.json`` (with
the launcher's ``job_id``, so that a sweep following a job trusts only that job's word), the final
one written before the lock is released; its output to ``logs/<member>.log``.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from analyses.registry import declaration
from sweeper.attempts import carried, last_sign_of_life, restarts
from sweeper.child import PARENT_ENV
from sweeper.manifest import SweepFolder, now, try_lock
from sweeper.plan import ROOT, Plan, Step, analysis_step
from utils.checkpoints import LAST_CHECKPOINT
from utils.errors import UserError

logger = logging.getLogger(__name__)

TRAIN_DONE = ("finished", "plateau")
STOPPED = {130, 143, -signal.SIGINT, -signal.SIGTERM}  # exit codes of a command stopped by a signal
LOCK_WAIT_S = 600


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_record(plan: Plan) -> dict | None:
    return _json(plan.folders.run / "run.json")


def trained(record: dict | None) -> bool:
    return record is not None and (record.get("status") or {}).get("state") in TRAIN_DONE


def snapshot_epochs(record: dict) -> list[int]:
    return sorted(row["epoch"] for row in record.get("snapshots") or [])


def analysis_done(name: str, plan: Plan, epochs: list[int]) -> bool:
    """Whether the analysis ``name``'s results cover the run's snapshots (its declaration's done-check)."""
    done = declaration(name).done
    return done is not None and done(plan.folders.results / plan.folders.sub, plan.args.arch, epochs)


def step_done(step: Step, plan: Plan, record: dict | None) -> bool:
    """Whether ``step``'s results are on disk and cover every snapshot of the finished run (each of its
    analyses' own done-check, from its declaration)."""
    if not trained(record):
        return False
    if step.name == "train":
        return True
    if step.name == "plots":
        return (plan.folders.plots / plan.folders.sub / "training_curves.png").is_file()
    epochs = snapshot_epochs(record)
    return bool(step.analyses) and all(analysis_done(name, plan, epochs) for name in step.analyses)


def remaining(step: Step, plan: Plan, record: dict | None) -> Step:
    """``step``, or, when some of its analyses are done, the command of the others."""
    if len(step.analyses) < 2 or not trained(record):
        return step
    epochs = snapshot_epochs(record)
    missing = [declaration(name) for name in step.analyses if not analysis_done(name, plan, epochs)]
    return step if len(missing) == len(step.analyses) else analysis_step(missing, plan.context)


def pending_steps(plan: Plan) -> list[Step]:
    """The steps still to run; training continues from last.pt when a previous run left one."""
    record = run_record(plan)
    todo = [remaining(step, plan, record) for step in plan.steps if not step_done(step, plan, record)]
    if todo and todo[0].name == "train":
        last = plan.folders.run / LAST_CHECKPOINT
        if last.is_file():
            todo[0] = Step("train", (*todo[0].argv, "--resume-from", str(last)))
        return todo
    if todo and todo[-1].name != "plots":
        todo.append(plan.steps[-1])  # new results: redraw the run's figures
    return todo


def batches(steps: list[Step]) -> list[list[Step]]:
    """The steps as they run: consecutive shared steps in one process, any other step alone."""
    found: list[list[Step]] = []
    for step in steps:
        if step.shared and found and found[-1][-1].shared:
            found[-1].append(step)
        else:
            found.append([step])
    return found


def executable(argv: tuple[str, ...]) -> list[str]:
    """A plan's command as this interpreter runs it (``python`` and ``torchrun`` are this Python)."""
    head, rest = argv[0], list(argv[1:])
    prefix = [sys.executable] if head == "python" else [sys.executable, "-m", "torch.distributed.run"]
    return [sys.executable, "-m", "sweeper.child", *prefix, *rest]


def step_env(env: dict[str, str]) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **env, "PYTHONPATH": path, PARENT_ENV: str(os.getpid())}


def error_line(log: Path, offset: int) -> str:
    """The line that says why a command failed: its last ``error:`` line, else its last line."""
    try:
        text = log.read_bytes()[offset:].decode(errors="replace")
    except OSError:
        return "failed (its log could not be read)"
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("$ ")]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["failed without a message"])[-1]


def stopped_line(code: int, log: Path, offset: int, sweep_dir: Path) -> str:
    """Why a command stopped by a signal ended, and how to go on: the sweep resumes the member (train.py's
    own hint, ``--resume-from``, is for runs outside a sweep)."""
    name = signal.Signals(code - 128 if code > 0 else -code).name
    said = error_line(log, offset)
    said = said.split("; resume with", 1)[0] if said.startswith("stopped by") else f"stopped by {name}"
    return f"{said}; resume with: python sweep.py --resume {sweep_dir}"


class MemberRunner:
    """Runs one member's pending steps (see the module docstring)."""

    def __init__(self, folder: SweepFolder, plan: Plan, *, env: dict[str, str] | None = None,
                 stop: threading.Event | None = None, on_process: Callable | None = None,
                 job_id: str | None = None) -> None:
        self.folder, self.plan, self.env, self.job_id = folder, plan, env or {}, job_id
        self.stop = stop or threading.Event()
        self.on_process = on_process or (lambda process: None)

    def run(self) -> dict:
        """The member's final status: ``{"status", "error", "started", "finished", "seconds", "steps",
        "job_id", "attempts", "requeues", "total_seconds", ...}`` (``seconds``: this attempt;
        ``total_seconds``: every attempt so far, see :mod:`sweeper.attempts`), written while the lock is
        still held: a free lock means the status is final."""
        lock_fd = self._lock()
        start = time.monotonic()
        history = self._history()
        status = {"status": "running", "error": None, "started": now(), "finished": None, "seconds": None,
                  "steps": {}, "host": os.uname().nodename, "pid": os.getpid(), "job_id": self.job_id,
                  "started_at": time.time()} | history | {"attempts": history["attempts"] + 1}
        try:
            self.folder.write_member_status(self.plan.member.id, status)
            try:
                status |= self._run_steps(lock_fd, status)
            except BaseException as err:
                status |= {"status": "failed", "error": str(err) if isinstance(err, UserError) else repr(err)}
                raise
            finally:
                seconds = round(time.monotonic() - start, 1)
                status |= {"finished": now(), "seconds": seconds,
                           "total_seconds": round(history["total_seconds"] + seconds, 1)}
                self.folder.write_member_status(self.plan.member.id, status)
        finally:
            os.close(lock_fd)
        return status

    def _history(self) -> dict:
        """What the earlier attempts of this member leave to this one (:func:`sweeper.attempts.carried`)."""
        member = self.plan.member.id
        seen = last_sign_of_life(self.folder.status_path(member), self.plan.folders.log)
        return carried(self.folder.member_status(member), job_id=self.job_id, restarts=restarts(), seen=seen)

    def _lock(self) -> int:
        path = self.folder.member_lock_path(self.plan.member.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_WAIT_S
        while not try_lock(fd):
            if time.monotonic() > deadline:
                os.close(fd)
                raise UserError(f"member {self.plan.member.id} is still running elsewhere ({path} is held)")
            time.sleep(0.2)
        return fd

    def _run_steps(self, lock_fd: int, status: dict) -> dict:
        log = self.plan.folders.log
        log.parent.mkdir(parents=True, exist_ok=True)
        for batch in batches(pending_steps(self.plan)):
            if self.stop.is_set():
                return {"status": "interrupted", "error": f"stopped before {batch[0].name}; resume with: "
                                                          f"python sweep.py --resume {self.folder.path}"}
            log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)  # the commands' output
            try:
                run = self._host if batch[0].shared else self._alone
                step, code, offset = run(batch, log_fd=log_fd, lock_fd=lock_fd, status=status)
            finally:
                os.close(log_fd)
            if code in STOPPED:
                return {"status": "interrupted",
                        "error": f"{step.name}: {stopped_line(code, log, offset, self.folder.path)}"}
            if code != 0:
                return {"status": "failed", "error": f"{step.name}: {error_line(log, offset)}"}
        return {"status": "done", "error": None}

    def _ended(self, step: Step, code: int, seconds: float, status: dict) -> None:
        """``step``'s exit status and time into the status (its total over every attempt too)."""
        before = status["steps"].get(step.name) or {}
        total = float(before.get("total_seconds", before.get("seconds")) or 0.0) + seconds
        status["steps"][step.name] = {"code": code, "seconds": round(seconds, 1), "total_seconds": round(total, 1)}
        self.folder.write_member_status(self.plan.member.id, status)

    def _alone(self, batch: list[Step], *, log_fd: int, lock_fd: int, status: dict) -> tuple[Step, int, int]:
        """One step in a process of its own: ``(step, exit code, its output's offset in the log)``."""
        (step,) = batch
        offset = os.fstat(log_fd).st_size
        os.write(log_fd, f"\n$ {step.shell()}\n".encode())
        begun = time.monotonic()
        code = self._wait(self._start(executable(step.argv), log_fd=log_fd, pass_fds=(lock_fd,)))
        self._ended(step, code, time.monotonic() - begun, status)
        return step, code, offset

    def _host(self, batch: list[Step], *, log_fd: int, lock_fd: int, status: dict) -> tuple[Step, int, int]:
        """Shared steps in one process (:mod:`sweeper.host`), which reports each command's start and end
        through a pipe: ``(the last step run, its exit code, its output's offset in the log)``."""
        read_fd, write_fd = os.pipe()
        argv = ("python", "-m", "sweeper.host", "--report-fd", str(write_fd), *(step.shell() for step in batch))
        try:
            process = self._start(executable(argv), log_fd=log_fd, pass_fds=(lock_fd, write_fd))
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        number, offset, begun, ended, last_code = 0, os.fstat(log_fd).st_size, time.monotonic(), -1, 0
        try:
            with os.fdopen(read_fd) as events:
                for event in map(json.loads, events):
                    if "started" in event:
                        number, offset, begun = event["started"], event["offset"], time.monotonic()
                    else:
                        ended, last_code = event["ended"], event["code"]
                        self._ended(batch[ended], last_code, event["seconds"], status)
        finally:
            code = self._wait(process)
        if ended != number:  # the process ended during a command (a signal), or before the first
            self._ended(batch[number], code, time.monotonic() - begun, status)
        elif code != last_code and number + 1 < len(batch):  # stopped between two commands
            number, offset = number + 1, os.fstat(log_fd).st_size
        return batch[number], code, offset

    def _start(self, argv: list[str], *, log_fd: int, pass_fds: tuple[int, ...]) -> subprocess.Popen:
        process = subprocess.Popen(argv, stdout=log_fd, stderr=subprocess.STDOUT, env=step_env(self.env),
                                   pass_fds=pass_fds)
        self.on_process(process)
        return process

    def _wait(self, process: subprocess.Popen) -> int:
        try:
            return process.wait()
        finally:
            self.on_process(None)
