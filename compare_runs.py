"""Compare a family's members: the tidy table, the comparison figures and a report with statistics.

    python compare_runs.py sweeps/noise_study [more run or sweep folders] --out sweeps/noise_study/compare

Finds the runs (run.json and their results, or results folders alone), groups them by the factors
that vary between them (``--by`` to choose; seeds are replicates) and writes ``table.csv`` (one row
per run, epoch, layer and metric; the same as ``schema.load_table``), six figures (PNG and PDF) and
``report.md``; rewrites TensorBoard's HParams view of each sweep folder among the inputs. The parts:
``comparison/`` (levels, statistics, report, ``hparams.py``) and ``plotting/family.py``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from comparison import stats
from comparison.family import Family, build_family
from comparison.hparams import write_views
from comparison.report import report_markdown
from plotting import family as figures
from plotting.common import style
from utils.cli import keeps_caller_logging, run_main, setup_logging
from utils.fileio import atomic_savefig, atomic_write
from utils.paths import check_output_folder

logger = logging.getLogger("compare_runs")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Compare runs: figures, a tidy table and a report of contrasts.")
    p.add_argument("inputs", nargs="+", help="sweep folders, run folders or results folders")
    p.add_argument("--out", default=None, help="Where table.csv, the figures and report.md go [default = <first input>/compare].")
    p.add_argument("--by", nargs="+", default=None, help="The factors that make the levels, e.g. noise or noise lr [default = every factor that varies].")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"], help="Figure formats [default = png pdf].")
    return p


def draw(family: Family, bias, criticality, points, correlations) -> list[tuple[str, object]]:
    """The figures the family's results support; each missing one is a notice."""
    title = f"{family.description}, {len(family.runs)} runs by {', '.join(family.by) or 'nothing'}"
    table, levels = family.table, family.levels
    built = []
    if not bias.empty:
        built.append(("bias_heatmap", figures.bias_heatmap(bias, levels=levels, layers=family.layers, title=title)))
        built.append(("bias_dynamics", figures.bias_dynamics(stats.layer_curves(table, "mass"), levels=levels,
                                                             layers=family.layers, title=title)))
    if not points.empty:
        built.append(("bias_vs_criticality", figures.bias_vs_criticality(points, correlations, levels=levels,
                                                                         title=title)))
    dse, dsmi, dsmi_x = stats.curves(table, "dse"), stats.curves(table, "dsmi_y"), stats.curves(table, "dsmi_x")
    if not dse.empty:
        panels = [("DSE(Z)", "bits", dse), ("DSMI(Z; Y)", "bits", dsmi)]
        panels += [("DSMI(Z; X)", "bits", dsmi_x)] if not dsmi_x.empty else []
        built.append(("dse_curves", figures.curves_figure(
            panels, levels=levels,
            title=f"{title}: diffusion spectral entropy of the penultimate representation")))
    accuracy, validation = stats.curves(table, "test_top1"), stats.curves(table, "val_top1")
    if not accuracy.empty or not validation.empty:  # every epoch's validation top-1, then the final test top-1
        split = "validation" if not validation.empty else "test"
        built.append(("accuracy_curves", figures.accuracy_curves(validation if not validation.empty else accuracy,
                                                                 accuracy, levels=levels, split=split,
                                                                 title=f"{title}: accuracy")))
    grids = stats.reinit_grids(family)
    if grids:
        built.append(("reinit_heatmaps", figures.reinit_heatmaps(grids, title=title)))
    missing = {"bias_heatmap": bias.empty, "bias_vs_criticality": points.empty, "dse_curves": dse.empty,
               "accuracy_curves": accuracy.empty and validation.empty, "reinit_heatmaps": not grids}
    for name, absent in missing.items():
        if absent:
            logger.info("skipped %s: the runs lack its results", name)
    return built


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(None)
    out = Path(args.out or Path(args.inputs[0]) / "compare")
    check_output_folder(out, "--out")
    family = build_family(args.inputs, by=args.by)
    bias, criticality = stats.bias_table(family), stats.criticality_table(family)
    points = stats.bias_criticality_points(family)
    correlations = {"all": stats.spearman(points)} | {level: stats.spearman(points[points.level == level])
                                                      for level in family.levels}
    contrasts = stats.contrasts(family, bias, criticality)
    csv = family.table.to_csv(index=False).encode()
    written = [atomic_write(out / "table.csv", lambda handle: handle.write(csv))]
    pngs = []
    with style():
        for stem, figure in draw(family, bias, criticality, points, correlations):
            saved = atomic_savefig(figure, out / stem, tuple(args.formats))
            pngs += [path for path in saved if path.suffix == ".png"]
            written += saved
    text = report_markdown(family, bias=bias, criticality=criticality, correlations=correlations,
                           contrasts=contrasts, figures=pngs, report_dir=out).encode()
    written.append(atomic_write(out / "report.md", lambda handle: handle.write(text)))
    write_views(args.inputs, runs=family.runs)  # TensorBoard's HParams view of each sweep among the inputs
    for note in family.status + family.notes:
        logger.warning("%s", note)
    logger.info("%d runs in %d levels (%s): %d files in %s", len(family.runs), len(family.levels),
                ", ".join(family.levels), len(written), out)
    logger.info("report: %s", out / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
