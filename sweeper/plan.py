"""What a member is on disk and what it runs: its folders in the standard layout under the sweep
folder, and its commands, exactly as one would type them by hand.

``<sweep>/{models,results,plots,tensorboard}/[<extra>/]<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``,
where ``<extra>`` names the values of the axes outside the run layout (e.g. ``lr=0.01``), and the
member's output in ``<sweep>/logs/<member>.log``.
"""
from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analyses.registry import Declaration, SweepContext, declaration, declarations
from sweeper.grid import Member
from utils.checkpoints import snapshot_filename
from utils.errors import UserError
from utils.paths import run_subdir

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Folders:
    models: Path  # the roots train.py and the analyses are given (--models-path, --results, ...)
    results: Path
    plots: Path
    tensorboard: Path
    sub: str  # the run's folder below each root
    log: Path

    @property
    def run(self) -> Path:
        return self.models / self.sub

    def record(self, sweep_dir: Path) -> dict:
        """Paths relative to the sweep folder (the manifest's)."""
        return {name: str((getattr(self, name) / self.sub).relative_to(sweep_dir))
                for name in ("models", "results", "plots", "tensorboard")} | {"log": str(self.log.relative_to(sweep_dir))}


@dataclass(frozen=True)
class Step:
    name: str  # train, plots, an analysis's name, or the names of the analyses it runs joined by "+"
    argv: tuple[str, ...]  # the command, "python <script> ..." as typed by hand
    analyses: tuple[str, ...] = ()  # the analyses whose results it writes
    shared: bool = False  # it may run in one process with the member's other shared steps (sweeper.host)

    def shell(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class Plan:
    member: Member
    args: argparse.Namespace  # the member's parsed train.py arguments
    folders: Folders
    steps: tuple[Step, ...]
    analyses: tuple[str, ...]
    nproc: int = 1

    @property
    def last_snapshot(self) -> Path:
        return self.folders.run / snapshot_filename(self.args.arch, self.args.epochs)

    @property
    def context(self) -> SweepContext:
        """What its analysis steps' commands are built from."""
        return context(self.folders, self.args)


def folders(sweep_dir: Path, member: Member, args: argparse.Namespace) -> Folders:
    sub = run_subdir(dataset=args.dataset, arch=args.arch, seed=args.seed, subsample_classes=args.subsample_classes,
                     noise=args.noise)

    def root(name: str) -> Path:
        return sweep_dir / name / member.extra if member.extra else sweep_dir / name

    return Folders(root("models"), root("results"), root("plots"), root("tensorboard"), sub,
                   sweep_dir / "logs" / f"{member.id}.log")


def device_flags(args: argparse.Namespace) -> list[str]:
    """The training's device, for the analyses of its snapshots."""
    return ["--device", args.device] if args.device else ["--cuda"] if args.cuda else []


def script(name: str) -> str:
    """``train.py``, or its full path when the command is not run from the suite's folder."""
    return name if Path.cwd().resolve() == ROOT else str(ROOT / name)


def context(where: Folders, args: argparse.Namespace) -> SweepContext:
    return SweepContext(str(where.run), str(where.results), str(where.plots), tuple(device_flags(args)))


def analysis_step(group: Sequence[Declaration], at: SweepContext) -> Step:
    """The command of one analysis, or of several of one CLI that declare ``sweep_together``."""
    first, names = group[0], tuple(found.name for found in group)
    arguments = first.sweep_together(at, names) if len(group) > 1 else first.sweep_arguments(at)
    return Step("+".join(names), ("python", script(first.cli), *arguments), analyses=names, shared=True)


def analysis_steps(declared: Sequence[Declaration], at: SweepContext) -> list[Step]:
    """One step per analysis run after training, in the registry's order, except that the analyses of
    one CLI that declare ``sweep_together`` share one step, at the place of the first of them."""
    groups: dict[str, list[Declaration]] = {}
    for found in declared:
        if found.sweep_arguments is not None:
            key = f"cli:{found.cli}" if found.sweep_together is not None else f"analysis:{found.name}"
            groups.setdefault(key, []).append(found)
    return [analysis_step(group, at) for group in groups.values()]


def steps(member: Member, args: argparse.Namespace, where: Folders, analyses: tuple[str, ...], *,
          nproc: int = 1) -> tuple[Step, ...]:
    """train.py, then the analyses of its snapshots (as their declarations say), then the run's figures."""
    chosen = {declaration(name).name for name in analyses}
    declared = [found for found in declarations() if found.name in chosen]  # in the registry's order
    runner = ["python"] if nproc <= 1 else ["torchrun", "--nproc_per_node", str(nproc)]
    train = [*runner, script("train.py"), *member.argv, "--models-path", str(where.models), "--results",
             str(where.results), "--tb-logdir", str(where.tensorboard), "--no-progress"]
    train += [flag for found in declared for flag in found.sweep_train_flags]  # per snapshot, during training
    plots = ["python", script("plot_results.py"), str(where.results / where.sub), str(where.run), "--plots",
             str(where.plots / where.sub)]
    return (Step("train", tuple(train)), *analysis_steps(declared, context(where, args)),
            Step("plots", tuple(plots), shared=True))


def plan_members(sweep_dir: Path, members: list[Member], parsed: dict[str, argparse.Namespace],
                 analyses: tuple[str, ...], *, nproc: int = 1) -> list[Plan]:
    """Every member's plan; two members sharing a run folder are a :class:`UserError`."""
    plans, owners = [], {}
    for member in members:
        args = parsed[member.id]
        where = folders(sweep_dir, member, args)
        if where.run in owners:
            raise UserError(f"members {owners[where.run]} and {member.id} would share the run folder {where.run} "
                            "(e.g. noise levels that round to the same percent); change the grid")
        owners[where.run] = member.id
        plans.append(Plan(member, args, where, steps(member, args, where, analyses, nproc=nproc), analyses, nproc))
    return plans
