"""The signals a member's SLURM job hears while it runs (see :mod:`sweeper.slurm`): SIGUSR2 before a
time limit or a pre-emption, SIGTERM from ``scancel``, the limit itself or SLURM's own requeue."""
from __future__ import annotations

import logging
import os
import signal
import threading

logger = logging.getLogger(__name__)


class CheckpointSignals:
    """While a member runs in its job: SIGUSR2 stops the running command (SIGTERM) and is remembered
    (:attr:`warned`), so that the job can requeue itself; SIGTERM starts no further step (the command
    has it from SLURM too).

    SLURM signals every process of the job step, and SIGUSR2 would kill train.py: it is blocked in
    this thread while the member runs, so that its commands inherit it blocked. The listener thread
    unblocks it; whichever thread then takes it, Python's C handler writes its number to a wakeup pipe,
    which the listener reads.
    """

    SIGNALS = (signal.SIGUSR2, signal.SIGTERM)

    def __init__(self, stop: threading.Event) -> None:
        self.stop, self.warned = stop, False
        self._process = None
        self._lock = threading.Lock()

    def on_process(self, process) -> None:
        """The command now running (None between commands), as :class:`MemberRunner` reports it."""
        with self._lock:
            self._process = process
        if process is not None and self.warned:  # the signal came between the check and the start
            process.send_signal(signal.SIGTERM)

    def _heard(self, number: int) -> None:
        self.stop.set()
        if number == signal.SIGUSR2:
            self.warned = True
            logger.warning("SIGUSR2 (time limit or pre-emption ahead): stopping the member to requeue it")
            with self._lock:
                process = self._process
            if process is not None:
                process.send_signal(signal.SIGTERM)

    def _listen(self, read_fd: int) -> None:
        # This thread hears SIGUSR2: it was started with the signal blocked, as every thread started after
        # __enter__ blocked it. Were none to unblock it (no thread of torch's pool either, with
        # OMP_NUM_THREADS=1), the signal would wait until the member ended.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
        while True:
            for number in os.read(read_fd, 64):
                if number == 0:  # the end (no signal has number 0)
                    return
                self._heard(number)

    def __enter__(self) -> CheckpointSignals:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._handlers = {sig: signal.signal(sig, lambda signum, frame: None) for sig in self.SIGNALS}
        self._wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
        self._thread = threading.Thread(target=self._listen, args=(self._read_fd,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
        signal.set_wakeup_fd(self._wakeup)
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        os.write(self._write_fd, b"\0")
        self._thread.join()
        os.close(self._read_fd)
        os.close(self._write_fd)
