"""Runs one command of a member so that it cannot outlive the sweep: the parent-death signal is set
to SIGTERM before the command replaces this process. When the sweep process dies, even by
SIGKILL, train.py gets SIGTERM, writes last.pt and stops (a re-run resumes it); an analysis stops
before its atomic write. Linux only; elsewhere the command simply runs to its end.

    python -m sweeper.child COMMAND [ARGS...]
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_ENV = "SWEEP_PARENT_PID"


def main(argv: list[str]) -> int:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux
        pass
    if os.environ.get(PARENT_ENV) and os.getppid() != int(os.environ[PARENT_ENV]):
        return 128 + signal.SIGTERM  # the sweep died before the signal was set
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
