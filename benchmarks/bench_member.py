"""A member's analysis steps: one process per step (the old plan) against one command per CLI in one
process (the sweep's plan now: sweeper/host.py, compute_measures.py with every measure at once).

The member is one of `make demo-generalization`'s (the Makefile's GENERALIZATION grid: the parametric
ConvNet on digits, depth 3, width 16, lr 0.01, batch 64, trained to training cross-entropy 0.01), with
its analyses: projections, spectra, norms, margin, sharpness and optimization, then its figures.
It is trained once; each side then starts from a copy of the trained member with no analysis result,
and the sides alternate (before, after, before, ...) so that a change in the machine's load hits both.

- before: each analysis's own command (its declaration's ``sweep_arguments``), then plot_results.py,
  each in a process of its own, exactly as the sweep ran them before (``python -m sweeper.child ...``,
  the runner's environment);
- after: the member's runner (``sweeper.member.MemberRunner``) on its plan.

"analysis steps" is the member's time less its figures (after: the figures' own time in the shared
process, from the member's status), "with figures" all of it. Target (issue 42): the analysis steps'
time halved.

    python benchmarks/bench_member.py [--repeats 2] [--keep DIR]

``--keep DIR`` keeps the trained member in DIR and reuses it next time. Ends with
``ratio: <before / after of the analysis steps>`` (best of ``--repeats`` each).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)  # the plan's commands name the scripts relative to the suite's folder

import sweep  # noqa: E402
from analyses.registry import declaration  # noqa: E402
from sweeper.family import plans_of  # noqa: E402
from sweeper.local import cpu_count  # noqa: E402
from sweeper.manifest import SweepFolder  # noqa: E402
from sweeper.member import MemberRunner, executable, step_env  # noqa: E402
from sweeper.plan import Plan, Step, script  # noqa: E402

ANALYSES = ("projections", "spectra", "norms", "margin", "sharpness", "optimization")
MEMBER = ["--arch", "convnet", "--dataset", "digits", "--depth", "3", "--width", "16", "--lr", "0.01",
          "--batch-size", "64", "--seed", "0", "--optimizer", "adam", "--weight-decay", "0", "--stop-train-loss",
          "0.01", "--epochs", "60", "--snapshot-every", "60", "--dse-sigma", "auto", "--analyses", *ANALYSES]


def plan_in(sweep_dir: Path) -> Plan:
    _, definition = sweep.parse_command(["--name", sweep_dir.name, *MEMBER])
    (plan,) = plans_of(definition, sweep_dir)
    return plan


def old_steps(plan: Plan) -> list[Step]:
    """The plan as the sweep built it before: one command per analysis, then the figures."""
    analyses = [declaration(name) for name in ANALYSES]
    steps = [Step(found.name, ("python", script(found.cli), *found.sweep_arguments(plan.context))) for found in analyses]
    return [*steps, plan.steps[-1]]


def env() -> dict[str, str]:
    """The environment the runner gives a member's commands (one member at a time: every core)."""
    return step_env({"OMP_NUM_THREADS": str(cpu_count()), "CI": "true"})


def trained(keep: Path) -> Path:
    """A sweep folder whose member is trained, with no analysis result (trained first if need be)."""
    folder = keep / "trained"
    plan = plan_in(folder)
    if not (plan.folders.run / "run.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        print("training the member (once) ...", flush=True)
        subprocess.run(executable(plan.steps[0].argv), env=env(), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return folder


def fresh_copy(trained_dir: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(trained_dir, target)
    return target


def before(sweep_dir: Path) -> tuple[float, float]:
    """``(analysis steps s, figures s)``: each step in a process of its own."""
    plan, times = plan_in(sweep_dir), []
    plan.folders.log.parent.mkdir(parents=True, exist_ok=True)
    with open(plan.folders.log, "ab") as log:
        for step in old_steps(plan):
            start = time.perf_counter()
            subprocess.run(executable(step.argv), env=env(), check=True, stdout=log, stderr=subprocess.STDOUT)
            times.append(time.perf_counter() - start)
    return sum(times[:-1]), times[-1]


def after(sweep_dir: Path) -> tuple[float, float]:
    """``(analysis steps s, figures s)``: the member's runner (training is done: it is skipped)."""
    plan = plan_in(sweep_dir)
    start = time.perf_counter()
    status = MemberRunner(SweepFolder(sweep_dir), plan, env={"OMP_NUM_THREADS": str(cpu_count()), "CI": "true"}).run()
    total = time.perf_counter() - start
    if status["status"] != "done" or "train" in status["steps"]:
        raise SystemExit(f"the member's runner did not run its analyses alone: {status}")
    figures = status["steps"]["plots"]["seconds"]
    return total - figures, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each side; the best counts [default = 2].")
    parser.add_argument("--keep", default=None, help="Keep the trained member here and reuse it [default = a temporary folder].")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        trained_dir = trained(Path(args.keep) if args.keep else scratch)
        runs = {"before": [], "after": []}
        for repeat in range(args.repeats):
            for side, measure in (("before", before), ("after", after)):
                runs[side].append(measure(fresh_copy(trained_dir, scratch / f"{side}{repeat}")))
    best = {side: min(found, key=lambda pair: pair[0]) for side, found in runs.items()}
    print(f"one demo-generalization member (convnet depth 3 width 16 on digits): {', '.join(ANALYSES)}, then "
          f"figures; {cpu_count()} cores, best of {args.repeats}")
    print(f"{'':44s} {'analysis steps s':>17s} {'with figures s':>15s}")
    labels = {"before": "before: one process per step", "after": "after: one command per CLI, one process"}
    for side, (analyses, figures) in best.items():
        print(f"{labels[side]:44s} {analyses:17.1f} {analyses + figures:15.1f}")
    ratio = best["before"][0] / best["after"][0]
    with_figures = sum(best["before"]) / sum(best["after"])
    print(f"with figures: {with_figures:.2f}x (target for the analysis steps: 2x)")
    print(f"ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
