"""Runs several of a member's commands in one Python process, one after another, each exactly as
``python <script> <args>`` would run it (the script as ``__main__``, ``sys.argv`` its arguments),
so that torch, the suite and the other libraries are imported once for all of them instead of once
per command. The member's analysis steps and its figures run so (:class:`sweeper.member.MemberRunner`);
each command, typed alone, gives the same files.

    python -m sweeper.host [--report-fd FD] "python compute_spectra.py ..." "python plot_results.py ..."

Each command's output follows its ``$ <command>`` line, as the sweep logs commands run one by one.
It stops at the first command that fails; its exit code is that command's (0 when all succeed).
``--report-fd`` names a pipe that hears, per command, a JSON line when it starts (``{"started": i,
"offset": o}``, ``o`` the size of the output file then) and when it ends (``{"ended": i, "code": c,
"seconds": s}``). A signal that stops the process (SIGTERM) stops the command under way, as it stops
a command run alone.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path


def parse_command(command: str) -> list[str]:
    """``python <script> <args>`` as ``[script, *args]`` (``sys.argv`` of the script)."""
    words = shlex.split(command)
    if len(words) < 2 or words[0] != "python" or not words[1].endswith(".py"):
        raise SystemExit(f"sweeper.host runs 'python <script>.py ...' commands, not {command!r}")
    return words[1:]


def exit_code(exit: SystemExit) -> int:
    """The status ``python`` exits with after ``exit`` (``sys.exit(None)``: 0, a message: 1)."""
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code
    sys.stderr.write(f"{exit.code}\n")
    return 1


def run_script(argv: list[str]) -> int:
    """Run ``python *argv`` in this process; returns its exit status. KeyboardInterrupt passes through."""
    script = Path(argv[0])
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = list(argv)
    sys.path.insert(0, str(script.resolve().parent))  # as python puts the script's folder first
    try:
        runpy.run_path(str(script), run_name="__main__")
        return 0
    except SystemExit as exit:
        return exit_code(exit)
    except Exception:  # a crash: exit status 1, with its traceback, as python gives it
        traceback.print_exc()
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        sys.stdout.flush()
        sys.stderr.flush()


def run_commands(commands: Sequence[str], *, report: Callable[[dict], None] = lambda event: None) -> int:
    """Each command in turn until one fails; returns the exit status of the last one run."""
    scripts = [parse_command(command) for command in commands]
    code = 0
    for number, (command, argv) in enumerate(zip(commands, scripts)):
        report({"started": number, "offset": output_size()})
        os.write(sys.stdout.fileno(), f"\n$ {command}\n".encode())
        begun = time.monotonic()
        code = run_script(argv)
        report({"ended": number, "code": code, "seconds": round(time.monotonic() - begun, 1)})
        if code != 0:
            break
    return code


def output_size() -> int:
    """The size of the file this process writes its output to (0 for a terminal or a pipe)."""
    try:
        return os.fstat(sys.stdout.fileno()).st_size
    except OSError:
        return 0


def reporter(fd: int | None) -> Callable[[dict], None]:
    if fd is None:
        return lambda event: None
    pipe = os.fdopen(fd, "w", buffering=1)

    def report(event: dict) -> None:
        pipe.write(json.dumps(event) + "\n")
        pipe.flush()

    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeper.host", description=__doc__.splitlines()[0])
    parser.add_argument("--report-fd", type=int, default=None, help="A pipe that hears when each command starts and ends [default = none].")
    parser.add_argument("commands", nargs="+", help="The commands, each one argument: 'python <script>.py <args>'.")
    args = parser.parse_args(argv)
    return run_commands(args.commands, report=reporter(args.report_fd))


if __name__ == "__main__":
    sys.exit(main())
