"""How a sweep is launched: sweep.py's flags, else its ``--config``'s ``[launcher]``, else what the
manifest recorded (``--resume``), else the defaults."""
from __future__ import annotations

import argparse

from sweeper.launch import Launch
from sweeper.slurm import SlurmSettings
from utils.errors import UserError

DEFAULTS = {"launcher": "local", "jobs": None, "nproc_per_member": 1, "slurm_partition": None, "slurm_time": 120,
            "slurm_gpus_per_member": None, "slurm_mem": None, "slurm_cpus_per_member": None,
            "slurm_array_parallelism": None, "slurm_extra": {}, "submitit_local": False}


def _extra(items) -> dict:
    if isinstance(items, dict):
        return dict(items)
    pairs = [item.partition("=") for item in items]
    bad = [item for item, (key, equal, _) in zip(items, pairs) if not key or not equal]
    if bad:
        raise UserError(f"--slurm-extra {bad[0]}: give sbatch parameters as KEY=VALUE, e.g. account=lab")
    return {key: value for key, _, value in pairs}


def launch_settings(args: argparse.Namespace, config: dict, recorded: dict | None) -> dict:
    """The flat launcher settings (what the manifest records)."""
    settings = dict(DEFAULTS) | {k: v for k, v in (recorded or {}).items() if k in DEFAULTS}
    file = config.get("launcher") or {}
    unknown = sorted(set(file) - set(DEFAULTS))
    if unknown:
        raise UserError(f"--config: unknown [launcher] key(s) {', '.join(unknown)}; use {', '.join(DEFAULTS)}")
    settings |= file
    given = {key: getattr(args, key) for key in DEFAULTS if getattr(args, key, None) not in (None, False)}
    settings |= given
    settings["slurm_extra"] = _extra(settings["slurm_extra"] or {})
    for key in ("jobs", "nproc_per_member", "slurm_time"):
        if settings[key] is not None and settings[key] < 1:
            raise UserError(f"--{key.replace('_', '-')} {settings[key]} must be at least 1")
    return settings


def launch_of(settings: dict, *, wait: bool, uses_gpu: bool) -> Launch:
    gpus = settings["slurm_gpus_per_member"]
    slurm = SlurmSettings(partition=settings["slurm_partition"], time_min=settings["slurm_time"],
                          gpus_per_member=(1 if uses_gpu else 0) if gpus is None else gpus,
                          mem_gb=settings["slurm_mem"], cpus_per_member=settings["slurm_cpus_per_member"],
                          array_parallelism=settings["slurm_array_parallelism"], extra=settings["slurm_extra"],
                          local=bool(settings["submitit_local"]))
    return Launch(launcher=settings["launcher"], jobs=settings["jobs"], nproc=settings["nproc_per_member"],
                  slurm=slurm, wait=wait)
