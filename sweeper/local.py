"""The embedded engine: a family's members as local processes, ``jobs`` at a time.

Each member runs in a thread of this process that starts its commands one after another. On a GPU
machine each member gets its own GPU (``CUDA_VISIBLE_DEVICES``); on the CPU each gets
``cores / jobs`` torch threads (``OMP_NUM_THREADS``). SIGINT/SIGTERM: nothing new starts, running
commands get SIGTERM (train.py writes last.pt and stops), the members are marked interrupted.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import signal
import threading
from collections.abc import Callable

from sweeper.manifest import SweepFolder
from sweeper.member import MemberRunner
from sweeper.plan import Plan
from utils.errors import UserError
from utils.progress import progress, progress_mode

logger = logging.getLogger(__name__)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs this process may use (``CUDA_VISIBLE_DEVICES``, else every CUDA device)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu for gpu in listed.split(",") if gpu.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def uses_gpu(plan: Plan) -> bool:
    return bool(plan.args.cuda or (plan.args.device or "").startswith("cuda"))


class LocalEngine:
    """Runs plans ``jobs`` at a time; ``on_change(plan, status)`` hears of every start and end."""

    def __init__(self, folder: SweepFolder, plans: list[Plan], *, jobs: int,
                 on_change: Callable[[Plan, dict], None]) -> None:
        self.folder, self.plans, self.jobs, self.on_change = folder, plans, jobs, on_change
        gpus = visible_gpus() if any(uses_gpu(plan) for plan in plans) else []
        self.gpus: queue.Queue = queue.Queue()
        self.has_gpus = bool(gpus)
        for gpu in gpus:
            self.gpus.put(gpu)
        self.threads = max(1, cpu_count() // (jobs * max(plan.nproc for plan in plans))) if plans else 1
        self.stop = threading.Event()
        self.signum: int | None = None
        self._processes: dict[int, object] = {}
        self._lock = threading.Lock()

    def run(self) -> int | None:
        """Run every plan; returns the signal that stopped the sweep, if one did."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        # a bar on a terminal only: in a log, the watcher's "running:" lines (sweeper.watch) say more
        bar = progress([], total=len(self.plans), desc="members", unit="member", enabled=progress_mode() == "bar")
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs) as pool:
                futures = {pool.submit(self._member, plan) for plan in self.plans}
                while futures:
                    done, futures = concurrent.futures.wait(futures, timeout=0.2)
                    for future in done:
                        future.result()
                        bar.update(1)
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.signum

    def _on_signal(self, signum, frame) -> None:
        if self.signum is None:
            logger.warning("%s: starting no new member; stopping the running ones (they checkpoint)",
                           signal.Signals(signum).name)
        self.signum = self.signum or signum
        self.stop.set()
        with self._lock:
            for process in self._processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)

    def _register(self, process) -> None:
        with self._lock:
            if process is None:
                self._processes.pop(threading.get_ident(), None)
            else:
                self._processes[threading.get_ident()] = process
                if self.stop.is_set():  # a signal came between the check and the start
                    process.send_signal(signal.SIGTERM)

    def _member(self, plan: Plan) -> None:
        if self.stop.is_set():
            return
        gpu = self.gpus.get() if uses_gpu(plan) and self.has_gpus else None
        env = {"OMP_NUM_THREADS": str(self.threads)} | ({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {})
        try:
            self.on_change(plan, {"status": "running"})
            try:
                status = MemberRunner(self.folder, plan, env=env, stop=self.stop, on_process=self._register).run()
            except Exception as err:
                status = {"status": "failed", "error": str(err) if isinstance(err, UserError) else repr(err)}
            self.on_change(plan, status)
        finally:
            if gpu is not None:
                self.gpus.put(gpu)

