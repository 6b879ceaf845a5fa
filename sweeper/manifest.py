"""The sweep folder's bookkeeping: ``sweep.json`` (the manifest), its lock, the members' status files.

``sweep.json`` holds the grid and, per member, its flags, folders, commands, status (pending,
running, done, failed, interrupted), error line, timings and launcher job id; it is written
atomically on every change, by the sweep process only. A member's runner (a thread of the local
engine, or a SLURM job) writes its own ``status/<member>.json``; the sweep merges those in.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

import schema
from utils.errors import UserError
from utils.fileio import atomic_write_json
from utils.version import TOOL_VERSION

MANIFEST = "sweep.json"
STATES = ("pending", "running", "done", "failed", "interrupted")


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` if no other process holds it (it is released with the fd)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class SweepFolder:
    """``<root>/<name>/``: the manifest, the lock, and the members' status and lock files."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest_path = self.path / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def load(self) -> dict:
        if not self.exists():
            raise UserError(f"{self.path} is not a sweep folder (no {MANIFEST}); give the folder sweep.py made")
        manifest = schema.read_json(self.manifest_path)
        if not isinstance(manifest, dict) or manifest.get("kind") != "sweep":
            raise UserError(f"{self.manifest_path} is not a sweep manifest; give the folder sweep.py made")
        return manifest

    def save(self, manifest: dict) -> None:
        manifest["updated"] = now()
        atomic_write_json(self.manifest_path, manifest)

    @contextlib.contextmanager
    def lock(self):
        """Hold the sweep's lock: a second sweep.py on this folder is refused while we run."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".sweep.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not try_lock(fd):
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                raise UserError(f"another sweep.py ({holder}) is running on {self.path}; wait for it to end "
                                "(sweep.py --status shows the members)") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            yield
        finally:
            os.close(fd)

    # -- members -----------------------------------------------------------------------------------
    def status_path(self, member_id: str) -> Path:
        return self.path / "status" / f"{member_id}.json"

    def member_status(self, member_id: str) -> dict | None:
        path = self.status_path(member_id)
        if not path.is_file():
            return None
        try:
            return schema.read_json(path)
        except UserError:
            return None

    def write_member_status(self, member_id: str, status: dict) -> None:
        atomic_write_json(self.status_path(member_id), status)

    def member_lock_path(self, member_id: str) -> Path:
        return self.path / "locks" / f"{member_id}.lock"

    def member_running(self, member_id: str) -> bool:
        """Whether the member's lock is held: its runner is alive somewhere."""
        path = self.member_lock_path(member_id)
        if not path.is_file():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            return not try_lock(fd)
        finally:
            os.close(fd)


def new_manifest(name: str, definition: dict, launcher: dict) -> dict:
    return {"schema_version": schema.SCHEMA_VERSION, "kind": "sweep", "tool_version": TOOL_VERSION, "name": name,
            "created": now(), "updated": now(), "grids": [definition], "launcher": launcher, "members": []}


def member_entry(plan, sweep_dir: Path) -> dict:
    """A new member's manifest entry: pending."""
    return {"id": plan.member.id, "values": plan.member.values, "flags": list(plan.member.argv),
            "extra": plan.member.extra, "analyses": list(plan.analyses), "nproc": plan.nproc,
            "folders": plan.folders.record(sweep_dir), "commands": [step.shell() for step in plan.steps],
            "status": "pending", "error": None, "started": None, "finished": None, "seconds": None, "job_id": None}


def merge_status(entry: dict, status: dict | None) -> None:
    """A member's status file into its manifest entry."""
    if status:
        entry |= {key: status.get(key) for key in ("status", "error", "started", "finished", "seconds",
                                                   "attempts", "requeues", "total_seconds", "steps")}
