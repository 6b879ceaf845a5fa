"""Which measure tracks generalization across many models: runs of a family, a model zoo, or both.

    python rank_measures.py sweeps/noise_study [more run or sweep folders] --out sweeps/noise_study/measures
    python rank_measures.py --zoo vgg11 vgg13 vgg16 vgg19 vgg11_bn vgg13_bn vgg16_bn vgg19_bn --out zoo/vgg
    python rank_measures.py --zoo resnet18 resnet34 --probe-dataset cifar10 --data-path ./data --out zoo/probe
    python rank_measures.py --pgdl public_data/input_data/task1_v4 public_data/input_data/task2_v1 --out pgdl

Each model (a run's last snapshot or ``--epoch``; a torchvision zoo model from the local cache;
``timm/<name>`` with timm installed; ``--weights`` files, ``.pt`` or ``.safetensors``) becomes one
number per measure and its targets (test top-1, generalization and loss gaps from run.json; the
zoo's ImageNet acc@1/acc@5 from torchvision's metadata, or ``--accuracy file.csv``). Zoo models'
analyses are computed (one process per model with ``--jobs``) into ``<out>/models/<name>/``; runs'
are read. Runs that reached their ``--epochs`` cap without their training criterion are named and
left out of the gap targets (``--keep-unconverged`` keeps them); runs at chance are named. Writes
``measures.csv``, ``ranking.csv`` (Kendall's tau-b with a bootstrap CI over settings, Spearman, the
granulated Kendall coefficient with Jiang's tau, Dziugaite et al.'s environments weighted by how
surely the test set tells their targets apart and their robust sign-error, Holm-corrected p-values,
the expected sign, seeds' measure or field's baseline), ``environments.csv``, the scatter, forest
and environment figures and ``report.md``, whose first lines say what the test set cannot tell
apart and whose first table names the measures that predict each target robustly. The parts:
``comparison/measures.py``, ``comparison/ranking.py``, ``comparison/robust.py``, ``analyses/zoo.py``,
``plotting/ranking.py``; the page: ``docs/measures.md``. The PGDL competition's tasks (``--pgdl``):
``analyses/pgdl.py``, ``comparison/pgdl.py``, ``sweeper/calls.py``; the page: ``docs/pgdl.md``.
It also rewrites TensorBoard's HParams view of each sweep folder among the inputs with its
measures (``comparison/hparams.py``).
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import schema
from analyses import pgdl, zoo, zoo_targets
from analyses.dse import sigma_value
from comparison import measures
from comparison import pgdl as pgdl_scoring
from comparison.correlations import BOOTSTRAP
from comparison.hparams import write_views
from comparison.ranking import Ranked, Weighting, factor_columns, ranked
from comparison.ranking_report import report_markdown
from comparison.robust import MIN_ESS
from comparison.targets import TARGETS
from plotting import ranking as figures
from plotting.common import style
from sweeper.calls import LAUNCHERS, CallLaunch, run_calls
from sweeper.local import cpu_count
from sweeper.slurm import SlurmSettings, check_available
from utils.cli import keeps_caller_logging, run_main, setup_logging
from utils.devices import add_device_args, device_from_args
from utils.errors import UserError
from utils.fileio import atomic_savefig, atomic_write
from utils.paths import check_output_folder

logger = logging.getLogger("rank_measures")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Rank measures by how well they track generalization across models.")
    p.add_argument("inputs", nargs="*", help="sweep folders, run folders or results folders")
    p.add_argument("--zoo", nargs="+", default=[], metavar="NAME", help="Pretrained models: torchvision classifier names (resnet18, vgg16_bn, ...) read from the local torch hub cache, or timm/<name> with timm installed [default = none].")
    p.add_argument("--weights", nargs="+", default=[], metavar="[ARCH=]FILE", help="Local weight files (.pt, .pth or .safetensors state dicts), each of --arch or of the ARCH before '=' [default = none].")
    p.add_argument("--arch", default=None, help="The architecture of the --weights files without ARCH= [default = none].")
    p.add_argument("--dataset", default=zoo.ZOO_DATASET, help=f"What the --weights files were trained on (their head and input size) [default = {zoo.ZOO_DATASET}].")
    p.add_argument("--accuracy", default=None, metavar="FILE.csv", help="Targets by model name (columns model, top1[, top5], in %%): override the zoo's metadata, supply them for timm models, weight files or runs [default = none].")
    p.add_argument("--keep-unconverged", action="store_true", help="Keep the runs that reached their --epochs cap without their --stop-train-loss/--stop-train-acc criterion in the gap targets [default = off: they are left out of gen_gap and loss_gap, and named].")
    p.add_argument("--epoch", type=int, default=None, help="The snapshot of each run to measure [default = each run's last].")
    p.add_argument("--out", default=None, help="Where measures.csv, ranking.csv, the figures, report.md and the zoo's results (models/) go [default = <first input>/measures, else ./measures].")
    p.add_argument("--targets", nargs="+", choices=tuple(TARGETS), default=None, help="The targets to rank against [default = every one the models have].")
    p.add_argument("--top", type=int, default=4, help="How many of the best measures the scatter figures show [default = 4].")
    p.add_argument("--analyses", nargs="+", choices=tuple(dict.fromkeys((*zoo.ANALYSES, *pgdl.choices()))), default=None, help=f"What is computed for zoo models [default = {' '.join(zoo.DEFAULT_ANALYSES)}, and dse with --probe-dataset] and for PGDL models [default = {' '.join(pgdl.choices())}].")
    p.add_argument("--probe-dataset", default=None, help="DSE and DSMI(Z; Y) of zoo models on this dataset's images (upscaled to 224x224; the 1000-class head is kept) [default = none].")
    p.add_argument("--data-path", default="./data", help="Path to the --probe-dataset files [default = './data'].")
    p.add_argument("--probe-samples", type=int, default=1000, help="Probe samples of the --probe-dataset's test split (of a PGDL task's training data for --pgdl) [default = 1000].")
    p.add_argument("--dse-sigma", type=sigma_value, default="auto", help="DSE kernel bandwidth for zoo models, or auto (the median pairwise distance: zoo representations differ in scale) [default = auto].")
    p.add_argument("--download", action="store_true", help="Allow downloading zoo weights and the probe dataset [default = off: offline].")
    p.add_argument("--jobs", type=int, default=1, help="Zoo and PGDL models analysed at once, one process each [default = 1].")
    add_pgdl_arguments(p)
    add_device_args(p)
    p.add_argument("--resamples", type=int, default=BOOTSTRAP, help=f"Bootstrap draws of the intervals [default = {BOOTSTRAP}].")
    p.add_argument("--no-noise-filter", action="store_true", help="Weigh every pair of models of an environment 1, noise included, instead of by how surely the test set tells their targets apart (Dziugaite et al.'s Hoeffding weight); the report and ranking.csv say so [default = off: weighted].")
    p.add_argument("--min-ess", type=float, default=MIN_ESS, help=f"The smallest effective sample size of an environment that is judged; smaller ones are named and left out [default = {MIN_ESS:g}, Dziugaite et al.'s].")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"], help="Figure formats [default = png pdf].")
    return p


def add_pgdl_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of the PGDL competition's tasks (docs/pgdl.md) and of their launcher."""
    p.add_argument("--pgdl", nargs="+", default=[], metavar="TASK_DIR", help="PGDL task folders (public_data/input_data/<task>): every model is measured with every analysis that needs no test set, and the measures get the competition's score [default = none].")
    p.add_argument("--pgdl-reference", default=None, metavar="DIR", help="The folder holding <task>/model_configs.json [default = the tasks' sibling reference_data/].")
    p.add_argument("--pgdl-logits", type=int, default=0, metavar="N", help="Also write each PGDL model's logits on its task's first N training examples (shards' order) to <out>/logits/<task>/<model>.npy [default = 0: none].")
    p.add_argument("--pgdl-check-samples", type=int, default=0, metavar="N", help="The self-check's training examples per PGDL model (the first N) [default = 0: all of them].")
    p.add_argument("--pgdl-test-size", type=int, default=10000, help="Test images of the PGDL tasks' test accuracies (model_configs.json does not say; the competition's tasks use 10,000-image test sets), for the weighting of the gaps [default = 10000].")
    p.add_argument("--launcher", choices=LAUNCHERS, default="local", help="Where the PGDL models' analyses run: local (--jobs processes) or slurm (a job array through submitit, one job per model) [default = local].")
    p.add_argument("--slurm-partition", default=None, help="SLURM partition [default = the cluster's].")
    p.add_argument("--slurm-time", type=int, default=120, help="Wall time of each model's job, in minutes; 0 is SLURM's no limit [default = 120].")
    p.add_argument("--slurm-mem", type=int, default=None, help="Memory per model's job, in GB [default = the cluster's].")
    p.add_argument("--slurm-cpus-per-member", type=int, default=None, help="CPUs per model's job [default = the cluster's].")
    p.add_argument("--slurm-array-parallelism", type=int, default=None, help="Jobs running at once in the array [default = all].")
    p.add_argument("--submitit-local", action="store_true", help="With --launcher slurm: submitit's local executor on this machine instead of SLURM [default = off].")


def validate(args: argparse.Namespace) -> tuple[str, ...]:
    """The zoo's analyses; a bad combination of flags is a :class:`UserError`."""
    if not (args.inputs or args.zoo or args.weights or args.pgdl):
        raise UserError("no models: give run or sweep folders, --zoo names, --weights files or --pgdl task folders")
    for flag, value, least in (("--jobs", args.jobs, 1), ("--top", args.top, 1), ("--resamples", args.resamples, 0),
                               ("--probe-samples", args.probe_samples, 2), ("--min-ess", args.min_ess, 1),
                               ("--pgdl-logits", args.pgdl_logits, 0), ("--pgdl-check-samples", args.pgdl_check_samples, 0),
                               ("--pgdl-test-size", args.pgdl_test_size, 1), ("--slurm-time", args.slurm_time, 0)):
        if value < least:
            raise UserError(f"{flag} {value} must be at least {least}")
    analyses = tuple(args.analyses or (*zoo.DEFAULT_ANALYSES, *(["dse"] if args.probe_dataset else [])))
    if "dse" in analyses and not args.probe_dataset and (args.zoo or args.weights or not args.pgdl):
        raise UserError("--analyses dse needs --probe-dataset: the images a zoo model's representation is probed on")
    if args.zoo or args.weights:
        if set(analyses) - set(zoo.ANALYSES):
            raise UserError(f"--analyses {sorted(set(analyses) - set(zoo.ANALYSES))[0]} does not run on zoo models; "
                            f"choose from: {', '.join(zoo.ANALYSES)}")
    return tuple(name for name in analyses if name in zoo.ANALYSES)


def zoo_models(entries: list[zoo.ZooEntry], root: Path, targets: dict[str, dict],
               notes: list[str]) -> list[measures.Model]:
    """A model per zoo entry with results, read back through the schema from its results folder."""
    designs = {entry.name: entry.factors() for entry in entries}
    varying = [key for key in ("family", "batch_norm") if len({str(d[key]) for d in designs.values()}) > 1]
    found = []
    for entry in entries:
        if not (root / entry.folder).is_dir():
            notes.append(f"zoo model {entry.name} has no results; left out")
            continue
        runs, _ = schema.find_runs([root / entry.folder])
        found.append(measures.Model(run=runs[0], name=entry.name, source="zoo",
                                    factors={key: designs[entry.name][key] for key in varying},
                                    targets=dict(targets.get(entry.name) or {}), label=entry.name, group=entry.name))
    return found


def describe(table) -> str:
    models = table.drop_duplicates("model")
    runs = [f"{len(models[models.source == 'run'])} runs"] if (models.source == "run").any() else []
    zoo_part = [f"{len(models[models.source == 'zoo'])} zoo models"] if (models.source == "zoo").any() else []
    pgdl_part = [f"{len(models[models.source == 'pgdl'])} PGDL models"] if (models.source == "pgdl").any() else []
    return " and ".join(runs + zoo_part + pgdl_part)


@dataclass
class PgdlTasks:
    """The --pgdl tasks, checked: their reference data, their models and how they are measured."""

    references: list
    models: list
    settings: pgdl.PgdlSettings
    notes: list[str]


def pgdl_tasks(args: argparse.Namespace, out: Path, device) -> PgdlTasks | None:
    """Every task's reference data, grid, model configs and files checked before any work (bad input:
    one line, exit 2, nothing written)."""
    if not args.pgdl:
        return None
    analyses, notes = pgdl.chosen(args.analyses)
    references, found = [], []
    for task_dir in args.pgdl:
        models = pgdl.task_models(task_dir)
        reference = pgdl_scoring.read_reference(task_dir, args.pgdl_reference)
        pgdl_scoring.check_reference(reference, [model.model for model in models])
        models, _ = pgdl.check_task(models, notes)
        references.append(reference)
        found += models
    tasks = [reference.task for reference in references]
    if len(set(tasks)) < len(tasks):
        raise UserError(f"--pgdl names task {next(t for t in tasks if tasks.count(t) > 1)} twice; give each task once")
    settings = pgdl.PgdlSettings(analyses, str(out / "models"), probe_samples=args.probe_samples,
                                 dse_sigma=args.dse_sigma, check_samples=args.pgdl_check_samples,
                                 logits=args.pgdl_logits, logits_root=str(out / "logits"), device=str(device))
    if args.launcher == "slurm":
        check_available(slurm_settings(args, device))
    return PgdlTasks(references, found, settings, notes)


def slurm_settings(args: argparse.Namespace, device) -> SlurmSettings:
    return SlurmSettings(partition=args.slurm_partition, time_min=args.slurm_time,
                         gpus_per_member=int(device.type == "cuda"), mem_gb=args.slurm_mem,
                         cpus_per_member=args.slurm_cpus_per_member, array_parallelism=args.slurm_array_parallelism,
                         local=args.submitit_local)


def measure_pgdl(tasks: PgdlTasks, args: argparse.Namespace, out: Path, device,
                 notes: list[str]) -> tuple[list[measures.Model], dict, int]:
    """Every model's analyses (one process or SLURM job each), then its :class:`measures.Model`; returns
    the models, the self-checks by (task, model) and the number of models that failed."""
    launch = CallLaunch(args.launcher, args.jobs, slurm_settings(args, device), logs=str(out / "logs" / "submitit"),
                        name="pgdl")
    threads = max(1, cpu_count() // args.jobs) if args.launcher == "local" and args.jobs > 1 else 0
    items = [(f"{m.task}/{m.model}", pgdl.PgdlJob(m, tasks.settings, threads)) for m in tasks.models]
    outcomes = run_calls(pgdl.analyse, items, launch, initializer=setup_logging, what="PGDL model")
    failed = [f"PGDL model {outcome.label} failed: {outcome.error}" for outcome in outcomes if outcome.failed]
    done = [outcome.result for outcome in outcomes if not outcome.failed]
    notes += tasks.notes + failed + [note for result in done for note in result["notes"]]
    checks = {(result["task"], result["model"]): result["check"] for result in done}
    found = pgdl_scoring.pgdl_models(
        tasks.references, lambda task, model: pgdl.results_folder(tasks.settings.root, task, model),
        test_size=args.pgdl_test_size, notes=notes)
    return found, checks, len(failed)


def write_pgdl(out: Path, table, ranking, tasks: PgdlTasks, checks: dict) -> tuple[list[Path], str, list[str]]:
    """``pgdl_check.csv``, the ``.predict`` files and ``pgdl_scores.csv``; the report's section; the
    self-check's lines."""
    check, lines = pgdl_scoring.check_table(tasks.references, checks)
    found = pgdl_scoring.predictions(table, tasks.references)
    scores = pgdl_scoring.scores(found, tasks.references)
    written = [atomic_write(out / name, lambda handle, frame=frame: handle.write(frame.to_csv(index=False).encode()))
               for name, frame in (("pgdl_check.csv", check), ("pgdl_scores.csv", scores))]
    written += pgdl_scoring.write_predictions(out, found)
    return written, pgdl_scoring.report_section(scores, ranking, tasks.references, check_lines=lines), lines


def draw(table, ranking, top: int, environments=None) -> list[tuple[str, object]]:
    """The forest plot of every target, a scatter of the top measures per target, and, with ``environments``
    (environments.csv's rows), the sign-errors of the top measures' judged environments per target."""
    varying = [c for c in factor_columns(table) if table.drop_duplicates("model")[c].astype(str).nunique() > 1]
    color_by = varying[0] if varying else None
    targets = list(dict.fromkeys(ranking.target))
    labels = {name: TARGETS[name].short for name in targets}
    title = describe(table)
    points = table.assign(point=table.label)
    if color_by and len(varying) == 1:  # the colour says the setting: a run's point needs only its seed
        points.loc[points.source == "run", "point"] = "s" + points.seed.astype(str)
    built = [("tau_forest", figures.tau_forest(ranking, targets=targets, target_labels=labels, title=title))]
    for target in targets:
        rows = ranking[(ranking.target == target) & ranking.kendall_tau.notna()]
        chosen = list(rows.measure[:top])
        if chosen:
            built.append((f"scatter_{target}", figures.measure_scatter(
                points, ranking, target=target, target_label=labels[target], measures=chosen, color_by=color_by,
                title=f"{title}: the {len(chosen)} measures with the largest |tau| against {target}",
                label_column="point")))
    for target in targets if environments is not None else []:
        rows = ranking[(ranking.target == target) & ranking.robust_sign_error.notna()]
        chosen = list(rows.sort_values(["robust_sign_error", "mean_sign_error", "measure"]).measure[:top])
        if chosen:
            built.append((f"environments_{target}", figures.environment_cdf(
                environments, ranking, target=target, target_label=labels[target], measures=chosen,
                title=f"the {len(chosen)} measures with the least robust sign-error")))
    return built


def write_outputs(out: Path, table, result: Ranked, args, *, notes: list[str], status: list[str],
                  appendix: str = "") -> list[Path]:
    """measures.csv, ranking.csv, environments.csv, the figures and report.md (``appendix`` at its end),
    each atomically."""
    written = [atomic_write(out / name, lambda handle, frame=frame: handle.write(frame.to_csv(index=False).encode()))
               for name, frame in (("measures.csv", table), ("ranking.csv", result.ranking),
                                   ("environments.csv", result.environments))]
    pngs = []
    with style():
        for stem, figure in draw(table, result.ranking, args.top, result.environments):
            saved = atomic_savefig(figure, out / stem, tuple(args.formats))
            pngs += [path for path in saved if path.suffix == ".png"]
            written += saved
    text = report_markdown(table, result.ranking, description=describe(table), notes=notes, status=status,
                           figures=pngs, report_dir=out, resamples=args.resamples, evidence=result.evidence)
    text = (text + appendix).encode()
    written.append(atomic_write(out / "report.md", lambda handle: handle.write(text)))
    return written


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(None)
    analyses = validate(args)
    out = Path(args.out or (Path(args.inputs[0]) / "measures" if args.inputs else "measures"))
    check_output_folder(out, "--out")
    accuracy = zoo_targets.read_accuracy(args.accuracy) if args.accuracy else {}
    entries = zoo.parse_entries(args.zoo, args.weights, arch=args.arch, dataset=args.dataset, download=args.download)
    zoo.check_cached(entries, download=args.download)
    targets = {name: found | accuracy.get(name, {}) for name, found in zoo_targets.torchvision_targets(entries).items()}
    lacking = [entry.name for entry in entries if not (targets.get(entry.name) or accuracy.get(entry.name))]
    if lacking:
        raise UserError(f"zoo model(s) without a target: {', '.join(lacking)}; give --accuracy FILE.csv with a row "
                        "for each (columns model, top1[, top5])")
    probe = zoo.ProbeSettings(args.probe_dataset, args.data_path, args.probe_samples, args.dse_sigma,
                              download=args.download) if "dse" in analyses else None
    device = device_from_args(args)
    tasks = pgdl_tasks(args, out, device)
    notes, models, checks, failures = [], [], {}, 0
    if args.inputs:
        runs, notes = measures.finished_runs(args.inputs)
        models += measures.run_models(runs, epoch=args.epoch)
    if entries:
        if probe is not None:
            zoo.probe_data(probe)  # a missing or unreadable probe dataset fails before any model is analysed
        done = zoo.analyse_all(entries, out / "models", analyses=analyses, probe=probe, device=str(device),
                               download=args.download, jobs=args.jobs, initializer=setup_logging)
        notes += [note for result in done.values() for note in result["notes"]]
        given = {entry.name: targets.get(entry.name) or accuracy[entry.name] for entry in entries}
        models += zoo_models(entries, out / "models", given, notes)
    if tasks is not None:
        found, checks, failures = measure_pgdl(tasks, args, out, device, notes)
        models += found
    notes += [f"--accuracy names {name}, which is none of the models; ignored"
              for name in measures.apply_accuracy(models, accuracy)]
    status: list[str] = []
    table = measures.measures_table(models, notes=notes, status=status, keep_unconverged=args.keep_unconverged)
    if table.empty:
        raise UserError("the models have no results to measure; run their analyses first (sweep.py does)")
    result = ranked(table, targets=args.targets, resamples=args.resamples,
                    weighting=Weighting(noise_filter=not args.no_noise_filter, min_ess=args.min_ess))
    pgdl_files, appendix = [], ""
    if tasks is not None:
        pgdl_files, appendix, lines = write_pgdl(out, table, result.ranking, tasks, checks)
        status += lines
    written = write_outputs(out, table, result, args, notes=notes, status=status, appendix=appendix) + pgdl_files
    if args.inputs:  # TensorBoard's HParams view of each sweep among the inputs, with these measures
        write_views(args.inputs, runs=[model.run for model in models if model.source == "run"],
                    measured=table if args.epoch is None else None)
    for note in status + notes:
        logger.warning("%s", note)
    logger.info("%d models, %d measures, %d targets: %d files in %s", table.model.nunique(), table.measure.nunique(),
                result.ranking.target.nunique(), len(written), out)
    logger.info("report: %s", out / "report.md")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
