"""What the running members do now, said every few seconds while a local sweep runs, so that a
member that trains for minutes is never silent: one line (at most :data:`LINE_CHARS` characters)
naming each running member and its step, with the epoch train.py reached, read from the member's log,
then how many members ended and the ETA. A line is said when it changed, and at least every minute.
"""
from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sweeper.plan import Plan

logger = logging.getLogger(__name__)

EVERY_S = 10.0
REPEAT_S = 60.0  # an unchanged line is said again after this long
LINE_CHARS = 120
TAIL_BYTES = 16384
EPOCH = re.compile(r"\bepoch\s+(\d+)/(\d+)")  # train.py's epoch line: "epoch   3/30  train loss ..."


def _tail(path: Path, size: int = TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def activity(plan: Plan) -> str:
    """What ``plan``'s member runs now, from the end of its log: ``train epoch 3/30``, ``train`` (before
    its first epoch), ``reinit``, or ``starting``."""
    text = _tail(plan.folders.log)
    _, dollar, command = text.rpartition("\n$ ")
    if not dollar:
        return "starting"
    step = next((step.name for step in plan.steps if command.startswith(step.shell())), None) or script_of(command)
    if step != "train":
        return step
    epochs = EPOCH.findall(command)
    return f"train epoch {epochs[-1][0]}/{epochs[-1][1]}" if epochs else "train"


def script_of(command: str) -> str:
    """The script a logged command runs (a step rebuilt on resume, with fewer analyses, is named so)."""
    words = command.split("\n", 1)[0].split()
    return Path(words[1]).name if len(words) > 1 else "a step"


def eta(member_seconds: list[float], remaining: int, jobs: int, *, under_way: list[float] = ()) -> str:
    """Time to go for ``remaining`` members (running ones included) run ``jobs`` at a time, from the mean
    time of the members that ended (``member_seconds``), less what the running members already spent
    (``under_way``, seconds each, counted up to that mean): ``12m 5s``, or ``?`` before the first one ends."""
    if not member_seconds:
        return "?"
    if remaining <= 0:
        return "0s"
    mean = sum(member_seconds) / len(member_seconds)
    work = mean * remaining - sum(min(spent, mean) for spent in under_way)
    seconds = max(0.0, work) / max(1, min(jobs, remaining))
    return f"{int(seconds // 60)}m {int(seconds % 60)}s" if seconds >= 60 else f"{math.ceil(seconds)}s"


def running_line(activities: dict[str, str], tail: str, *, limit: int = LINE_CHARS) -> str:
    """``running: a (train epoch 3/30), b (reinit); <tail>``, shortened to ``limit`` characters by
    naming fewer members (``+2 more``)."""
    parts = [f"{member} ({what})" for member, what in activities.items()]
    for shown in range(len(parts), 0, -1):
        more = f", +{len(parts) - shown} more" if shown < len(parts) else ""
        line = f"running: {', '.join(parts[:shown])}{more}; {tail}"
        if len(line) <= limit:
            return line
    line = f"running: {len(parts)} member(s); {tail}"
    return line if len(line) <= limit else line[:limit - 3] + "..."


class Heartbeat:
    """Calls ``say()`` every ``every_s`` seconds in a thread of its own while the context is open and
    logs the line it returns, unless it repeats the last one logged less than ``repeat_s`` ago."""

    def __init__(self, say: Callable[[], str | None], *, every_s: float = EVERY_S, repeat_s: float = REPEAT_S) -> None:
        self.say, self.every_s, self.repeat_s = say, every_s, repeat_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="sweep-heartbeat")

    def _beat(self) -> None:
        last, when = None, 0.0
        while not self._stop.wait(self.every_s):
            line = self.say()
            if line and (line != last or time.monotonic() - when >= self.repeat_s):
                logger.info("%s", line)
                last, when = line, time.monotonic()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
