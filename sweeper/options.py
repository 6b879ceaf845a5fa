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


# The numeric flags and the least value that means something. --slurm-time 0 is SLURM's "no time
# limit" and --slurm-gpus-per-member 0 asks for no GPU: both are honoured as given.
LEAST = {"jobs": 1, "nproc_per_member": 1, "slurm_time": 0, "slurm_gpus_per_member": 0, "slurm_mem": 1,
         "slurm_cpus_per_member": 1, "slurm_array_parallelism": 1}
WHY_NOT = {"jobs": "members at once", "nproc_per_member": "processes per member",
           "slurm_mem": "GB per member (leave it out for the cluster's default)",
           "slurm_cpus_per_member": "CPUs per member (leave it out for the cluster's default)",
           "slurm_array_parallelism": "members running at once (leave it out for all)",
           "slurm_time": "minutes (0: no time limit)", "slurm_gpus_per_member": "GPUs per member"}


def check_counts(settings: dict) -> None:
    """Every numeric setting that is set means something: a value below its least is refused, never
    replaced by a default."""
    for key, least in LEAST.items():
        value = settings.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise UserError(f"--{key.replace('_', '-')} {value}: give at least {least} ({WHY_NOT[key]})")


def launch_settings(args: argparse.Namespace, config: dict, recorded: dict | None) -> dict:
    """The flat launcher settings (what the manifest records). A value given explicitly (0 included)
    wins over the file, which wins over the recorded ones, which win over the defaults."""
    settings = dict(DEFAULTS) | {k: v for k, v in (recorded or {}).items() if k in DEFAULTS}
    file = config.get("launcher") or {}
    unknown = sorted(set(file) - set(DEFAULTS))
    if unknown:
        raise UserError(f"--config: unknown [launcher] key(s) {', '.join(unknown)}; use {', '.join(DEFAULTS)}")
    settings |= file
    given = {key: getattr(args, key) for key in DEFAULTS
             if getattr(args, key, None) is not None and getattr(args, key, None) is not False}
    settings |= given
    settings["slurm_extra"] = _extra(settings["slurm_extra"] or {})
    check_counts(settings)
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


def recorded_slurm(recorded: dict | None) -> SlurmSettings:
    """The SLURM settings a manifest recorded (for following its jobs)."""
    return launch_of(dict(DEFAULTS) | {k: v for k, v in (recorded or {}).items() if k in DEFAULTS}, wait=True,
                     uses_gpu=False).slurm
