"""The one progress helper for long work: a tqdm bar on a terminal, and a log line every few seconds
otherwise (a log file, a SLURM job, a pipe), so that long steps are never silent and logs stay
readable.

    bar = progress(batches, desc="epoch 3", unit="batch")   # iterate it, or
    bar = progress([], total=54, desc="reinit", unit="cell")  # call bar.update(n), then bar.close()

Where it shows (``HP_PROGRESS`` overrides: ``bar``, ``lines`` or ``off``): a bar when stderr is a
terminal outside CI; lines (``<desc>: 12/54 cells (22%), 8s, about 29s left``, logged through this
module's logger at INFO, the first after :data:`LINE_INTERVAL` seconds) otherwise; nothing under
pytest, unless a test sets ``HP_PROGRESS``.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

logger = logging.getLogger(__name__)

T = TypeVar("T")

LINE_INTERVAL = 5.0  # seconds between two progress lines in a log
MODES = ("bar", "lines", "off")


def progress_mode() -> str:
    """``bar``, ``lines`` or ``off``: where progress goes now (see the module docstring)."""
    forced = os.environ.get("HP_PROGRESS", "").strip().lower()
    if forced in MODES:
        return forced
    if os.environ.get("PYTEST_CURRENT_TEST"):
        return "off"
    return "bar" if progress_enabled() else "lines"


def progress_enabled() -> bool:
    """True when stderr is a terminal and we are not running in CI (where a bar can be drawn)."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable: Iterable[T], *, enabled: bool = True, desc: str = "", unit: str = "it",
             total: int | None = None, interval: float | None = None, **kwargs):
    """``iterable`` with progress: a tqdm bar or periodic log lines (:func:`progress_mode`); nothing
    when not ``enabled``. The result is iterated, or advanced with ``update(n)``; ``close()`` ends it.
    ``interval``: seconds between lines [default: :data:`LINE_INTERVAL`]; ``kwargs`` go to tqdm (a bar only)."""
    mode = progress_mode() if enabled else "off"
    if mode == "lines":
        return ProgressLines(iterable, desc=desc, unit=unit, total=total,
                             interval=LINE_INTERVAL if interval is None else interval)
    return tqdm(iterable, disable=mode != "bar", leave=False, desc=desc or None, unit=unit, total=total, **kwargs)


class ProgressLines:
    """Progress as log lines, at most one per ``interval`` seconds (none for work shorter than that)."""

    def __init__(self, iterable: Iterable[T], *, desc: str, unit: str, total: int | None, interval: float) -> None:
        self.iterable = iterable
        self.desc, self.unit, self.interval = desc or "progress", unit, interval
        self.total = total if total is not None else _length(iterable)
        self.count = 0
        self.start = self.last = time.monotonic()

    def __iter__(self) -> Iterator[T]:
        for item in self.iterable:
            yield item
            self.update(1)

    def __len__(self) -> int:
        return self.total or 0

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            logger.info("%s", self.line(now - self.start))

    def line(self, elapsed: float) -> str:
        """``<desc>: 12/54 cells (22%), 8s, about 29s left`` (without a total: ``<desc>: 12 cells, 8s``)."""
        units = self.unit + ("es" if self.unit.endswith(("s", "ch", "sh", "x")) else "s")
        if not self.total:
            return f"{self.desc}: {self.count} {units}, {elapsed:.0f}s"
        left = elapsed * (self.total - self.count) / self.count if self.count else float("nan")
        return (f"{self.desc}: {self.count}/{self.total} {units} ({100 * self.count / self.total:.0f}%), "
                f"{elapsed:.0f}s, about {left:.0f}s left")

    def set_postfix(self, *args, **kwargs) -> None:
        """tqdm's, ignored in lines."""

    def close(self) -> None:
        """Nothing to tidy up; a line for work that outlasted an interval is already in the log."""


def _length(iterable) -> int | None:
    try:
        return len(iterable)
    except TypeError:
        return None
