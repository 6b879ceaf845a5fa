"""A member's job hears SIGUSR2 while its command runs, whatever threads the process has: in a process
whose only other thread is the listener (no torch thread pool, as with OMP_NUM_THREADS=1), the signal
must still be heard at once, not when the member ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from sweeper.signals import CheckpointSignals


def test_sigusr2_is_heard_while_the_member_runs_with_no_other_thread():
    stop = threading.Event()
    with CheckpointSignals(stop) as signals:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        signals.on_process(child)
        try:
            os.kill(os.getpid(), signal.SIGUSR2)  # process-directed, as SLURM sends it
            heard = stop.wait(timeout=10)
            child.wait(timeout=10)  # the running command got SIGTERM
        finally:
            signals.on_process(None)
            if child.poll() is None:
                child.kill()
    assert heard and signals.warned
    assert child.returncode == -signal.SIGTERM


def test_the_listener_hears_it_in_a_process_with_no_thread_pool():
    """The same in a fresh interpreter that imports no torch: the main thread and the listener only."""
    code = ("import os, signal, threading, time\n"
            "from sweeper.signals import CheckpointSignals\n"
            "stop = threading.Event()\n"
            "with CheckpointSignals(stop) as s:\n"
            "    assert threading.active_count() == 2, threading.enumerate()\n"
            "    os.kill(os.getpid(), signal.SIGUSR2)\n"
            "    print('heard' if stop.wait(timeout=10) and s.warned else 'not heard')\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "heard", done.stderr
