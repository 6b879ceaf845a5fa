"""What the SLURM cluster says, read through its own commands: the partitions' limits (``sinfo``), the
reasons pending jobs wait (``squeue %r``) and which of those waiting will never end, and a
controller that stops answering.

- A request that no node of its partition can hold (CPUs, memory, GPUs, time limit) is refused before
  anything is submitted (:func:`check_fits`), whether or not the cluster sets ``EnforcePartLimits``.
- A pending job whose reason will not resolve by waiting (:data:`NEVER`) ends its member's wait with
  one line naming the member, the job, SLURM's reason and the flag to change (:func:`hint`).
- :class:`ControllerWatch` says once when the controller has not answered for :data:`QUIET_S`
  seconds, and again when it answers.
"""
from __future__ import annotations

import logging
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from utils.errors import UserError

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 60
QUIET_S = 30.0
# squeue's reasons that waiting does not cure (the job needs another request, account or partition).
NEVER = ("PartitionConfig", "PartitionTimeLimit", "PartitionNodeLimit", "BadConstraints", "InvalidAccount",
         "InvalidQOS", "DependencyNeverSatisfied", "AccountNotAllowed", "QOSNotAllowed", "ReqNodeNotAvail")


def command(argv: list[str]) -> subprocess.CompletedProcess:
    """Run a SLURM command; a missing or hanging one is a failed answer, not an exception."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        return subprocess.CompletedProcess(argv, 1, "", str(err))


def last_line(text: str) -> str:
    """The line of a command's output that says most: its last line with "error", else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no message"])[-1]


@dataclass(frozen=True)
class Partition:
    """The most any node of a partition offers, and the partition's time limit (None: no limit)."""

    name: str
    cpus: int
    memory_mb: int
    gpus: int
    time_limit_min: int | None
    nodes_up: int


def minutes(text: str) -> int | None:
    """SLURM's time (``infinite``, ``30:00``, ``1:00:00``, ``2-00:00:00``) in minutes; None for no limit."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    hours, mins, secs = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return int(days or 0) * 1440 + hours * 60 + mins + (1 if secs else 0)


def gpus_of(gres: str) -> int:
    """The GPUs in sinfo's ``%G`` (``gpu:4``, ``gpu:a100:2(S:0-1)``, ``(null)``)."""
    return sum(int(found) for found in re.findall(r"gpu(?::[^:,(]+)?:(\d+)", gres))


def parse_sinfo(text: str) -> dict[str, Partition]:
    """``sinfo --noheader --format=%P|%c|%m|%G|%l|%D|%t`` into partitions by name (``*`` marks the
    default one, which is also listed under the key ``""``)."""
    rows: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 7:
            rows.setdefault(fields[0], []).append(fields)
    found = {}
    for listed, lines in rows.items():
        up = sum(int(row[5]) for row in lines if not re.match(r"(down|drain|fail|unk|no_resp)", row[6]))
        partition = Partition(listed.rstrip("*"), max(int(row[1].rstrip("+")) for row in lines),
                              max(int(row[2].rstrip("+")) for row in lines), max(gpus_of(row[3]) for row in lines),
                              minutes(lines[0][4]), up)
        found[partition.name] = partition
        if listed.endswith("*"):
            found[""] = partition
    return found


def partition_of(name: str | None) -> Partition | None:
    """The partition ``name`` (None: the default one) as sinfo gives it; None when sinfo does not say."""
    answer = command(["sinfo", "--all", "--noheader", "--format=%P|%c|%m|%G|%l|%D|%t"])  # hidden ones too
    if answer.returncode != 0:
        return None
    return parse_sinfo(answer.stdout).get(name or "")


def misfit(settings, partition: Partition) -> str | None:
    """Why ``settings`` (:class:`sweeper.slurm.SlurmSettings`) cannot run in ``partition``, naming the
    flag, or None."""
    where = f"any node of partition {partition.name} has"
    if settings.cpus_per_member and settings.cpus_per_member > partition.cpus:
        return f"--slurm-cpus-per-member {settings.cpus_per_member} asks for more CPUs than {where} ({partition.cpus})"
    if settings.mem_gb and settings.mem_gb * 1024 > partition.memory_mb:
        return f"--slurm-mem {settings.mem_gb} asks for more memory than {where} ({partition.memory_mb} MB)"
    if settings.gpus_per_member and settings.gpus_per_member > partition.gpus:
        return (f"--slurm-gpus-per-member {settings.gpus_per_member} asks for more GPUs than {where} "
                f"({partition.gpus})")
    limit = partition.time_limit_min
    if limit is not None and (settings.time_min == 0 or settings.time_min > limit):
        asked = "0 (no limit)" if settings.time_min == 0 else str(settings.time_min)
        return f"--slurm-time {asked} exceeds the time limit of partition {partition.name} ({limit} minutes)"
    return None


def check_fits(settings) -> None:
    """Refuse, before anything is submitted, a request no node of its partition can hold."""
    if settings.local:
        return
    partition = partition_of(settings.partition)
    if partition is None:
        if settings.partition:
            raise UserError(f"--slurm-partition {settings.partition}: sinfo lists no such partition; give one of "
                            "those sinfo lists")
        return  # sinfo does not say: SLURM will
    problem = misfit(settings, partition)
    if problem is not None:
        raise UserError(f"{problem}; lower it (sinfo shows each partition's nodes)")


def reason_code(reason: str) -> str:
    """``ReqNodeNotAvail, UnavailableNodes:n1`` -> ``ReqNodeNotAvail``; ``(Resources)`` -> ``Resources``."""
    return re.split(r"[,\s]", reason.strip().strip("()"), maxsplit=1)[0]


def hopeless(reason: str, partition: Partition | None) -> bool:
    """Whether a pending job's reason will not resolve by waiting (ReqNodeNotAvail only with no node up)."""
    code = reason_code(reason)
    if code == "ReqNodeNotAvail":
        return partition is not None and partition.nodes_up == 0
    return code in NEVER


def hint(reason: str, settings) -> str:
    """The flag to change for a hopeless ``reason``, as one clause."""
    code = reason_code(reason)
    partition = partition_of(settings.partition)
    named = f"partition {partition.name}" if partition else "the partition"
    if code in ("PartitionConfig", "BadConstraints"):
        problem = misfit(settings, partition) if partition else None
        nodes = f" ({partition.cpus} CPUs, {partition.memory_mb} MB, {partition.gpus} GPUs a node)" if partition else ""
        return problem or (f"the request (--slurm-cpus-per-member, --slurm-mem, --slurm-gpus-per-member or "
                           f"--slurm-extra) does not fit {named}{nodes}")
    if code == "PartitionTimeLimit":
        return (misfit(settings, partition) if partition else None) or f"--slurm-time exceeds the limit of {named}"
    flags = {"PartitionNodeLimit": "--slurm-partition (its node limit)", "InvalidAccount": "--slurm-extra account=...",
             "AccountNotAllowed": "--slurm-extra account=... or --slurm-partition",
             "InvalidQOS": "--slurm-extra qos=...", "QOSNotAllowed": "--slurm-extra qos=... or --slurm-partition",
             "DependencyNeverSatisfied": "--slurm-extra dependency=... (that job did not succeed)",
             "ReqNodeNotAvail": f"--slurm-partition (no node of {named} is up)"}
    return f"change {flags.get(code, 'the --slurm-* flags')}"


class ControllerWatch:
    """Names a controller that has not answered for ``quiet_s`` seconds (once), and says when it answers
    again. ``clock``: monotonic seconds (injectable for tests)."""

    def __init__(self, *, quiet_s: float = QUIET_S, clock: Callable[[], float] = time.monotonic,
                 say: Callable[[str], None] = logger.warning) -> None:
        self.quiet_s, self.clock, self.say = quiet_s, clock, say
        self.since: float | None = None
        self.said = False

    def failed(self, why: str) -> float:
        """The controller did not answer (``why``); returns the seconds since it last answered."""
        if self.since is None:
            self.since = self.clock()
        silent = self.clock() - self.since
        if silent > self.quiet_s and not self.said:
            self.say(f"SLURM's controller has not answered for {silent:.0f}s ({why}); still waiting "
                     f"(since {time.strftime('%H:%M:%S', time.localtime(time.time() - silent))})")
            self.said = True
        return silent

    def answered(self) -> None:
        if self.said:
            self.say(f"SLURM's controller answers again, after {self.clock() - self.since:.0f}s")
        self.since, self.said = None, False
