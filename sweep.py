"""Define a family of runs once, run it on this machine or on a SLURM cluster, resume it after anything.

    python sweep.py --name noise_study --arch lenet --dataset digits \\
        --noise 0 0.5 1.0 -1 --seed 0 1 2 --epochs 30 --lr 0.01 --snapshot-every 5 --jobs 2

Any train.py flag is accepted with its own name; a flag given several values is an axis and the
members are the product of the axes (a boolean flag takes ``off on``). Each member is train.py,
then the analyses of its run (``--analyses``: projections and reinit by default) and its figures,
in the standard layout under ``<root>/<name>/``, with ``sweep.json`` as the manifest. Re-running
the same command resumes; ``--status`` prints the members table. When the members end, TensorBoard's
HParams view of the family is written (``comparison/hparams.py``). The parts: ``sweeper/``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from analyses.registry import sweep_analyses
from sweeper import launch as launching
from sweeper.checks import train_parser
from sweeper.config import apply_config, read_config
from sweeper.family import plan_of_entry, plans_of, reconcile
from sweeper.follow import wait as slurm_wait
from sweeper.grid import Definition, flags_of, parse_train_tokens
from sweeper.local import uses_gpu
from sweeper.manifest import SweepFolder, merge_status, new_manifest
from sweeper.options import launch_of, launch_settings, recorded_slurm
from sweeper.states import pending_reasons
from utils.cli import keeps_caller_logging, run_main, setup_logging
from utils.errors import UserError

logger = logging.getLogger("sweep")
SWEEP_SETS = "--no-progress"  # a train.py flag every member gets anyway: accepted, and dropped


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run a family of train.py runs and their analyses.", allow_abbrev=False,
                                epilog="Every other flag is train.py's; several values make it an axis.")
    p.add_argument("--name", default=None, help="The sweep's name: its folder is <root>/<name> [default: --config's].")
    p.add_argument("--config", default=None, help="A TOML file with the fixed flags, axes, analyses and launcher (the command line wins) [default = none].")
    p.add_argument("--root", default=None, help="Where sweeps live [default = './sweeps'].")
    choices, defaults = sweep_analyses()
    p.add_argument("--analyses", nargs="+", choices=choices, default=None, help=f"Analyses of each member's run after training (DSE runs during training) [default = {' '.join(defaults)}].")
    p.add_argument("--launcher", choices=("local", "slurm"), default=None, help="local: processes on this machine; slurm: a job array through submitit [default = local].")
    p.add_argument("--jobs", type=int, default=None, help="Members at once (local) [default = one per visible GPU for CUDA members, else 1].")
    p.add_argument("--nproc-per-member", type=int, default=None, help="Processes of each member's training, under torchrun [default = 1].")
    p.add_argument("--dry-run", action="store_true", help="Print the members and the commands that reproduce each by hand; run nothing.")
    p.add_argument("--status", metavar="FOLDER", default=None, help="Print the members table of a sweep folder (with --wait: until its jobs end).")
    p.add_argument("--resume", metavar="FOLDER", default=None, help="Resume the sweep of this folder, as recorded in its sweep.json.")
    p.add_argument("--retry-failed", action="store_true", help="Also run the members that failed before [default = off: they are skipped].")
    p.add_argument("--extend", action="store_true", help="Add the members of a changed grid to an existing sweep (existing members are never touched).")
    p.add_argument("--wait", action="store_true", help="With --launcher slurm (or --status): follow the jobs until they end.")
    p.add_argument("--slurm-partition", default=None, help="SLURM partition [default = the cluster's].")
    p.add_argument("--slurm-time", type=int, default=None, help="Wall time of each member's job, in minutes; 0 is SLURM's no limit (the time-limit signal then has nothing to precede) [default = 120]. SLURM sends SIGUSR2 90 s before it (30 s to a quarter of it when shorter); the member then stops at the next training step and its job requeues itself to continue from last.pt. Give at least 2 minutes more than the longest epoch or analysis (docs/slurm.md).")
    p.add_argument("--slurm-gpus-per-member", type=int, default=None, help="GPUs per member's job [default = 1 for CUDA members, else 0].")
    p.add_argument("--slurm-mem", type=int, default=None, help="Memory per member's job, in GB, at least 1 [default = the cluster's]. A request larger than every node of the partition is refused before submission.")
    p.add_argument("--slurm-cpus-per-member", type=int, default=None, help="CPUs per member's job, at least 1 [default = the cluster's]. A request larger than every node of the partition is refused before submission.")
    p.add_argument("--slurm-array-parallelism", type=int, default=None, help="Members running at once in the job array [default = all].")
    p.add_argument("--slurm-extra", nargs="+", metavar="KEY=VALUE", default=None, help="Other sbatch parameters, e.g. account=lab qos=high [default = none].")
    p.add_argument("--submitit-local", action="store_true", help="With --launcher slurm: use submitit's local executor on this machine instead of SLURM (for testing the SLURM path).")
    return p


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """sweep.py's flags, and the rest (train.py's flags with their values, in order)."""
    parser = get_args_parser()
    mine = {option for action in parser._actions for option in action.option_strings}
    ours, theirs = [], []
    target = theirs
    for token in list(sys.argv[1:] if argv is None else argv):
        if token.startswith("-") and token.partition("=")[0] in mine:
            target = ours
        elif token.startswith("--") or token.startswith("-") and not _number(token):
            target = theirs
        if token != SWEEP_SETS:
            target.append(token)
    return parser.parse_args(ours), theirs


def parse_command(argv: Sequence[str]) -> tuple[argparse.Namespace, Definition | None]:
    """A command's flags and the family it describes (not yet checked member by member)."""
    args, tokens = parse(argv)
    if args.status or args.resume:
        return args, None
    return args, definition_of(args, tokens, read_config(args.config) if args.config else {})


def _number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def definition_of(args: argparse.Namespace, tokens: list[str], config: dict) -> Definition:
    """The family the command line (and ``--config``) describe."""
    known = flags_of(train_parser())
    definition = Definition(analyses=tuple(args.analyses or config.get("analyses") or sweep_analyses()[1]))
    parse_train_tokens(tokens, known, definition)
    apply_config(config, definition, known, given=set(definition.fixed) | set(definition.axes), path=args.config)
    if not definition.fixed and not definition.axes:
        raise UserError("no train.py flags: give at least --arch and --dataset (and the axes, e.g. --seed 0 1 2)")
    return definition


def target(args: argparse.Namespace, tokens: list[str]) -> tuple[SweepFolder, Definition, dict, dict | None]:
    """``(folder, definition, config, manifest or None)`` of the command line or of ``--resume``."""
    if args.resume:
        if tokens or args.config:
            raise UserError("--resume takes the sweep's own definition from its sweep.json; drop the other flags")
        folder = SweepFolder(args.resume)
        manifest = folder.load()
        return folder, Definition.from_record(manifest["grids"][-1]), {}, manifest
    config = read_config(args.config) if args.config else {}
    for key in ("no_progress", "no-progress"):  # as SWEEP_SETS, from the file
        (config.get("train") or {}).pop(key, None)
    name = args.name or config.get("name")
    if not name:
        raise UserError("give the sweep a --name (its folder is <root>/<name>), or --resume a sweep folder")
    folder = SweepFolder(Path(args.root or config.get("root") or "./sweeps") / name)
    return folder, definition_of(args, tokens, config), config, folder.load() if folder.exists() else None


def dry_run(plans: list) -> None:
    for plan in plans:
        print(f"# {plan.member.id}  ->  {plan.folders.run}")
        for step in plan.steps:
            print(step.shell())
        print()


def status(path: str, *, wait: bool) -> int:
    """The members table of a sweep folder; with ``wait``, once its jobs have ended (and then
    ``sweep.json`` is brought up to date, unless a running sweep.py holds the folder and does it)."""
    folder = SweepFolder(path)
    manifest = folder.load()
    settings = recorded_slurm(manifest.get("launcher"))
    if wait:
        jobs = {entry["id"]: entry["job_id"] for entry in manifest["members"]
                if entry.get("job_id") and entry["status"] not in ("done", "failed")}
        slurm_wait(folder, jobs, local=settings.local, settings=settings)
    for entry in manifest["members"]:
        merge_status(entry, folder.member_status(entry["id"]))
    if wait:
        save_unless_held(folder, manifest)
        hparams_view(folder.path)
    show_pending_reasons(manifest, local=settings.local)
    for line in launching.tables(manifest):
        print(line.rstrip())
    return launching.exit_code(manifest)


def show_pending_reasons(manifest: dict, *, local: bool) -> None:
    """A pending member's error column says why SLURM keeps its job waiting (shown, not saved)."""
    pending = {entry["job_id"]: entry for entry in manifest["members"]
               if entry["status"] == "pending" and entry.get("job_id")}
    for job_id, reason in pending_reasons(list(pending), local=local).items():
        if job_id in pending:
            pending[job_id]["error"] = f"pending: {reason}"


def hparams_view(path: Path) -> None:
    """TensorBoard's HParams view of the family, once its members have ended (imported here: the
    comparison's modules are not needed before)."""
    from comparison.hparams import write_views

    write_views([path])


def save_unless_held(folder: SweepFolder, manifest: dict) -> None:
    try:
        with folder.lock():
            folder.save(manifest)
    except UserError:
        logger.info("another sweep.py holds %s; it keeps sweep.json up to date", folder.path)


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args, tokens = parse(argv)
    setup_logging(None)
    if args.status:
        return status(args.status, wait=args.wait)
    folder, definition, config, manifest = target(args, tokens)
    settings = launch_settings(args, config, (manifest or {}).get("launcher"))
    plans = plans_of(definition, folder.path, nproc=settings["nproc_per_member"])  # every member checked first
    launch = launch_of(settings, wait=args.wait, uses_gpu=any(uses_gpu(plan) for plan in plans))
    launch.check(plans)
    if args.dry_run:
        dry_run(plans)
        return 0
    with folder.lock():
        manifest = manifest or new_manifest(folder.path.name, definition.record(), settings)
        reconcile(manifest, definition, plans, folder.path, extend=args.extend)
        manifest["launcher"] = settings
        folder.save(manifest)
        (folder.path / "logs").mkdir(exist_ok=True)
        setup_logging(str(folder.path / "logs" / "sweep.log"))
        by_id = {plan.member.id: plan for plan in plans}
        every = {entry["id"]: by_id.get(entry["id"]) or plan_of_entry(folder.path, entry)
                 for entry in manifest["members"]}
        todo = launching.to_run(manifest, every, folder, retry_failed=args.retry_failed)
        if launch.launcher == "slurm":
            code = launching.run_slurm(folder, manifest, todo, launch, folder.path.name)
        else:
            code = launching.run_local(folder, manifest, todo, launch)
        if code < 128 and (launch.launcher == "local" or args.wait):  # the members ended (not stopped by a signal)
            hparams_view(folder.path)
        return code


if __name__ == "__main__":
    sys.exit(run_main(main))
