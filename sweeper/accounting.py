"""SLURM's accounting (``sacct``), for the jobs squeue no longer lists: their final states, read
from the array records sacct keeps (``123_[1-3,5%2]`` for tasks that never started, one record per
task that did). A cluster without accounting makes sacct fail; that is said once, and such jobs count
as ended (:data:`sweeper.states.GONE`).
"""
from __future__ import annotations

import logging
import re

from sweeper.cluster import command, last_line

logger = logging.getLogger(__name__)


def expand(record: str) -> list[str]:
    """sacct's ``123_[1-3,5%2]`` into ``123_1 123_2 123_3 123_5``; other ids as they are."""
    found = re.fullmatch(r"(\d+)_\[([\d,\-]+)(%\d+)?\]", record)
    if not found:
        return [record]
    tasks = []
    for part in found.group(2).split(","):
        low, _, high = part.partition("-")
        tasks += range(int(low), int(high or low) + 1)
    return [f"{found.group(1)}_{task}" for task in tasks]


class Accounting:
    """sacct, for jobs squeue no longer lists; without accounting it fails, which is said once."""

    def __init__(self) -> None:
        self.said = False

    def states(self, ids: list[str]) -> dict[str, str]:
        arrays = sorted({job_id.split("_")[0] for job_id in ids})
        answer = command(["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State",
                          f"--jobs={','.join(arrays)}"])
        if answer.returncode != 0:
            if not self.said:
                logger.info("sacct: %s; jobs that squeue no longer lists count as ended",
                            last_line(answer.stderr))
                self.said = True
            return {}
        exact, ranged = {}, {}
        for line in answer.stdout.splitlines():
            record, _, state = line.partition("|")
            state = state.split()[0] if state.split() else "UNKNOWN"  # "CANCELLED by 0"
            target = ranged if "[" in record else exact  # a task's own record wins over its range's
            target |= {job_id: state for job_id in expand(record.strip())}
        return ranged | exact

