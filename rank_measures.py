"""Which measure tracks generalization across many models: runs of a family, a model zoo, or both.

    python rank_measures.py sweeps/noise_study [more run or sweep folders] --out sweeps/noise_study/measures
    python rank_measures.py --zoo vgg11 vgg13 vgg16 vgg19 vgg11_bn vgg13_bn vgg16_bn vgg19_bn --out zoo/vgg
    python rank_measures.py --zoo resnet18 resnet34 --probe-dataset cifar10 --data-path ./data --out zoo/probe

Each model (a run's last snapshot or ``--epoch``; a torchvision zoo model from the local cache;
``timm/<name>`` with timm installed; ``--weights`` files, ``.pt`` or ``.safetensors``) becomes one
number per measure and its targets (test top-1, generalization and loss gaps from run.json; the
zoo's ImageNet acc@1/acc@5 from torchvision's metadata, or ``--accuracy file.csv``). Zoo models'
analyses are computed (one process per model with ``--jobs``) into ``<out>/models/<name>/``; runs'
are read. Runs that reached their ``--epochs`` cap without their training criterion are named and
left out of the gap targets (``--keep-unconverged`` keeps them); runs at chance are named. Writes
``measures.csv``, ``ranking.csv`` (Kendall tau with a bootstrap CI over settings, Spearman, the
granulated Kendall coefficient, Dziugaite et al.'s sign agreement and its worst axis, Holm-corrected
p-values, the expected sign, seeds' measure or field's baseline), the scatter and forest figures
and ``report.md``, whose first table names the measures that predict each target robustly, and
rewrites TensorBoard's HParams view of each sweep folder among the inputs with its measures. The
parts: ``comparison/measures.py``, ``comparison/ranking.py``, ``comparison/robust.py``,
``analyses/zoo.py``, ``plotting/ranking.py``; the page: ``docs/measures.md``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import schema
from analyses import zoo, zoo_targets
from analyses.dse import sigma_value
from comparison import measures
from comparison.hparams import write_views
from comparison.ranking import BOOTSTRAP, factor_columns, rank
from comparison.ranking_report import report_markdown
from plotting import ranking as figures
from plotting.common import style
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
    p.add_argument("--targets", nargs="+", choices=tuple(measures.TARGETS), default=None, help="The targets to rank against [default = every one the models have].")
    p.add_argument("--top", type=int, default=4, help="How many of the best measures the scatter figures show [default = 4].")
    p.add_argument("--analyses", nargs="+", choices=zoo.ANALYSES, default=None, help=f"What is computed for zoo models [default = {' '.join(zoo.DEFAULT_ANALYSES)}, and dse with --probe-dataset].")
    p.add_argument("--probe-dataset", default=None, help="DSE and DSMI(Z; Y) of zoo models on this dataset's images (upscaled to 224x224; the 1000-class head is kept) [default = none].")
    p.add_argument("--data-path", default="./data", help="Path to the --probe-dataset files [default = './data'].")
    p.add_argument("--probe-samples", type=int, default=1000, help="Probe samples of the --probe-dataset's test split [default = 1000].")
    p.add_argument("--dse-sigma", type=sigma_value, default="auto", help="DSE kernel bandwidth for zoo models, or auto (the median pairwise distance: zoo representations differ in scale) [default = auto].")
    p.add_argument("--download", action="store_true", help="Allow downloading zoo weights and the probe dataset [default = off: offline].")
    p.add_argument("--jobs", type=int, default=1, help="Zoo models analysed at once, one process each [default = 1].")
    add_device_args(p)
    p.add_argument("--resamples", type=int, default=BOOTSTRAP, help=f"Bootstrap draws of the intervals [default = {BOOTSTRAP}].")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"], help="Figure formats [default = png pdf].")
    return p


def validate(args: argparse.Namespace) -> tuple[str, ...]:
    """The zoo's analyses; a bad combination of flags is a :class:`UserError`."""
    if not (args.inputs or args.zoo or args.weights):
        raise UserError("no models: give run or sweep folders, --zoo names or --weights files")
    for flag, value, least in (("--jobs", args.jobs, 1), ("--top", args.top, 1), ("--resamples", args.resamples, 0),
                               ("--probe-samples", args.probe_samples, 2)):
        if value < least:
            raise UserError(f"{flag} {value} must be at least {least}")
    analyses = tuple(args.analyses or (*zoo.DEFAULT_ANALYSES, *(["dse"] if args.probe_dataset else [])))
    if "dse" in analyses and not args.probe_dataset:
        raise UserError("--analyses dse needs --probe-dataset: the images a zoo model's representation is probed on")
    return analyses


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
    return " and ".join(runs + zoo_part)


def draw(table, ranking, top: int) -> list[tuple[str, object]]:
    """The forest plot of every target, and a scatter of the top measures per target."""
    varying = [c for c in factor_columns(table) if table.drop_duplicates("model")[c].astype(str).nunique() > 1]
    color_by = varying[0] if varying else None
    targets = list(dict.fromkeys(ranking.target))
    labels = {name: measures.TARGETS[name].short for name in targets}
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
    return built


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
    notes, models = [], []
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
    notes += [f"--accuracy names {name}, which is none of the models; ignored"
              for name in measures.apply_accuracy(models, accuracy)]
    status: list[str] = []
    table = measures.measures_table(models, notes=notes, status=status, keep_unconverged=args.keep_unconverged)
    if table.empty:
        raise UserError("the models have no results to measure; run their analyses first (sweep.py does)")
    ranking = rank(table, targets=args.targets, resamples=args.resamples)
    written = [atomic_write(out / name, lambda handle, frame=frame: handle.write(frame.to_csv(index=False).encode()))
               for name, frame in (("measures.csv", table), ("ranking.csv", ranking))]
    pngs = []
    with style():
        for stem, figure in draw(table, ranking, args.top):
            saved = atomic_savefig(figure, out / stem, tuple(args.formats))
            pngs += [path for path in saved if path.suffix == ".png"]
            written += saved
    text = report_markdown(table, ranking, description=describe(table), notes=notes, status=status, figures=pngs,
                           report_dir=out, resamples=args.resamples).encode()
    written.append(atomic_write(out / "report.md", lambda handle: handle.write(text)))
    if args.inputs:  # TensorBoard's HParams view of each sweep among the inputs, with these measures
        write_views(args.inputs, runs=[model.run for model in models if model.source == "run"],
                    measured=table if args.epoch is None else None)
    for note in status + notes:
        logger.warning("%s", note)
    logger.info("%d models, %d measures, %d targets: %d files in %s", table.model.nunique(), table.measure.nunique(),
                ranking.target.nunique(), len(written), out)
    logger.info("report: %s", out / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
