"""The one snapshot loop: every analysis CLI is its parser plus one :func:`run` call, and
train.py's snapshot analyzers call :func:`record`.

For each model of the sources (snapshot files, a run directory, a glob, the zoo model or a random
init) every analysis measures it, then its document is written to the run's results folder
(``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/<prefix>_<stem>.json``), its
log lines printed and its figures saved; then each folder gets its summaries. Initializations and
data are loaded once and shared by the analyses. Folders are checked before any work, and the log
file appears with the first result, so bad input leaves nothing behind.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

import schema
from analyses.base import SUMMARY_OF_FOLDER, Analysis, Inputs, source_kind
from analyses.data import DataSettings, SnapshotData
from analyses.sources import (REFERENCE_LAYOUT, InitSettings, Initializations, SourceSettings, iter_models, output_dir,
                              subsample_of)
from utils.cli import setup_logging
from utils.fileio import atomic_savefig
from utils.paths import check_log_folder, check_output_folder, log_path

logger = logging.getLogger(__name__)

FigureBuilder = Callable[[dict], list]  # document -> [(file stem, Figure)]


@dataclass(frozen=True)
class Outputs:
    """Where results go: ``--results``, ``--log`` (inside the results folder unless it names a
    folder) and, for analyses with figures, ``--plots``."""

    results: str = "./results"
    log: str = "analysis.log"
    plots: str | None = None
    figures: dict[str, FigureBuilder] = field(default_factory=dict)  # analysis name -> figure builder

    def check(self) -> None:
        check_output_folder(self.results, "--results")
        if self.plots is not None:
            check_output_folder(self.plots, "--plots")
        check_log_folder(self.log)


def run(analyses: Sequence[Analysis], sources: SourceSettings, *, outputs: Outputs, device: torch.device,
        args: dict, init: InitSettings = InitSettings(), data: DataSettings = DataSettings()) -> list[Path]:
    """Every analysis of every model of ``sources``; returns the files written (documents first).

    ``args`` is recorded in every document's header (the CLI's arguments).
    """
    setup_logging(None)
    outputs.check()
    initializations, snapshot_data, probes = Initializations(init, device), SnapshotData(data), {}
    written: dict[tuple[int, Path], list[tuple[Path, dict]]] = defaultdict(list)
    files: list[Path] = []
    for loaded in iter_models(sources, device):
        inputs = Inputs(loaded, device, source_kind(loaded), args, init_lookup=initializations,
                        data_lookup=snapshot_data, probes=probes)
        documents = [analysis.document(analysis.measure(inputs), inputs) for analysis in analyses]
        conventions = snapshot_data.conventions(loaded)
        for document in documents if conventions else ():
            document["data_conventions"] = conventions
        out_dir = output_dir(loaded, outputs.results, sources)
        if not files:  # the log file appears with the first result, not on bad input
            setup_logging(str(log_path(outputs.log, out_dir)))
        for number, (analysis, document) in enumerate(zip(analyses, documents)):
            if sources.layout == REFERENCE_LAYOUT:
                path = write_reference(analysis, document, out_dir, loaded.stem, subsample_of(loaded, sources))
            else:
                path = write_document(analysis, document, out_dir, loaded.stem)
                written[number, out_dir].append((path, document))
            plots_dir = output_dir(loaded, outputs.plots, sources) if outputs.plots is not None else None
            files += [path] + save_figures(analysis, document, outputs, plots_dir)
    for (number, out_dir), rows in written.items():
        summary = write_summary(analyses[number], out_dir, rows, args)
        if summary is not None:
            logger.info("%s summary -> %s", analyses[number].name, summary)
            files.append(summary)
    return files


def record(analysis: Analysis, inputs: Inputs, out_dir: Path) -> dict:
    """Measure one model (train.py's snapshot analyzers), write its document and refresh the folder's
    summary; returns the document."""
    document = analysis.document(analysis.measure(inputs), inputs)
    path = write_document(analysis, document, Path(out_dir), inputs.loaded.stem)
    write_summary(analysis, Path(out_dir), [(path, document)], inputs.args)
    return document


def write_document(analysis: Analysis, document: dict, out_dir: Path, stem: str) -> Path:
    """``<out_dir>/<prefix>_<stem>.json``, atomically, then the analysis's log lines about it."""
    path = schema.write(out_dir / f"{analysis.file_prefix}_{stem}.json", document)
    analysis.log(document, path)
    return path


def write_reference(analysis: Analysis, document: dict, out_dir: Path, stem: str, subsample_classes: int) -> Path:
    """``--layout reference``: the file the reference tool writes, where it writes it (no summaries)."""
    name, converted = analysis.reference_document(document, stem=stem, subsample_classes=subsample_classes)
    path = schema.write(out_dir / name, converted)
    analysis.log(document, path)
    return path


def save_figures(analysis: Analysis, document: dict, outputs: Outputs, plots_dir: Path | None) -> list[Path]:
    """The figures ``outputs`` draws of ``document`` (PNG and PDF), under ``plots_dir``."""
    builder = outputs.figures.get(analysis.name)
    if builder is None or plots_dir is None:
        return []
    paths = [path for stem, figure in builder(document) for path in atomic_savefig(figure, plots_dir / stem)]
    logger.info("figures -> %s", ", ".join(map(str, paths)))
    return paths


def write_summary(analysis: Analysis, out_dir: Path, rows: list[tuple[Path, dict]], args: dict) -> Path | None:
    """The folder's summary of ``analysis``: of the documents just written (when more than one), or of
    every matching result file in the folder (``summary_scope`` folder)."""
    if analysis.summary is None:
        return None
    if analysis.summary_scope == SUMMARY_OF_FOLDER:
        rows = schema.matching(out_dir, analysis.file_prefix, kind=analysis.kind,
                               **analysis.summary_match(rows[-1][1]))
    elif len(rows) < 2:
        return None
    if analysis.summary_needs_epoch:
        rows = [(path, document) for path, document in rows if document["epoch"] is not None]
    if not rows:
        return None
    summary = analysis.summarize([document for _, document in rows], [path.name for path, _ in rows], args)
    return schema.write(out_dir / f"{analysis.file_prefix}_summary.json", summary)
