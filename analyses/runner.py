"""The one snapshot loop: every analysis CLI is its parser plus one :func:`run` call, and
train.py's snapshot analyzers call :func:`record`.

For each model of the sources (snapshot files, a run directory, a glob, the zoo model or a random
init) every analysis measures it, then its document is written to the run's results folder
(``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/<prefix>_<stem>.json``), its
log lines logged and its figures saved; then each folder gets its summaries. Each model comes built
whole (``analyses.loading.subjects``), with the initialization and the data its analyses declare
they need, each loaded once and shared. Folders are checked before any work, and the CLI's
log file is opened with the first result (``Outputs.open_log``), so bad input leaves nothing behind.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

import schema
from analyses.base import SUMMARY_OF_FOLDER, Analysis, log_chance, log_wrapped, log_written, shown_path
from analyses.data import DataSettings
from analyses.loading import snapshot_paths, subjects
from analyses.sources import REFERENCE_LAYOUT, InitSettings, SourceSettings, output_dir, subsample_of
from analyses.subject import Subject
from utils.fileio import atomic_savefig
from utils.paths import check_log_folder, check_output_folder, log_path
from utils.progress import progress

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
    # Called with the log file's path when the first result is written: the CLIs open their log
    # file there (utils.cli.open_log_file). The library never configures logging itself, so a
    # notebook keeps its own handlers.
    open_log: Callable[[Path], None] | None = None

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
    outputs.check()
    written: dict[tuple[int, Path], list[tuple[Path, dict]]] = defaultdict(list)
    files: list[Path] = []
    needs_init = any(analysis.needs_init for analysis in analyses)
    needs_data = any(analysis.needs_data for analysis in analyses)
    models = subjects(sources, device=device, init=init if needs_init else None, data=data if needs_data else None)
    total = len(snapshot_paths(sources)) if sources.load_from else 1
    bar = progress(models, enabled=total > 1, total=total, desc=", ".join(analysis.name for analysis in analyses),
                   unit="snapshot")
    for subject in bar:
        documents = [analysis.run(subject, args) for analysis in analyses]
        if subject.epoch != 0 and not any(analysis.logs_chance for analysis in analyses):  # an init is at chance
            log_chance(logger, subject.chance, label=subject.stem,
                       findings=f"its {', '.join(a.name for a in analyses)} describe such a model")
        out_dir = output_dir(subject, outputs.results, sources)
        if not files and outputs.open_log is not None:  # the log file appears with the first result
            outputs.open_log(log_path(outputs.log, out_dir))
        for number, (analysis, document) in enumerate(zip(analyses, documents)):
            if sources.layout == REFERENCE_LAYOUT:
                path = write_reference(analysis, document, out_dir, subject.stem, subsample_of(subject, sources))
            else:
                path = write_document(analysis, document, out_dir, subject.stem)
                written[number, out_dir].append((path, document))
            plots_dir = output_dir(subject, outputs.plots, sources) if outputs.plots is not None else None
            files += [path] + save_figures(analysis, document, outputs, plots_dir)
    bar.close()
    for (number, out_dir), rows in written.items():
        summary = write_summary(analyses[number], out_dir, rows, args)
        if summary is not None:
            log_written(logger, f"{analyses[number].name} summary", summary)
            files.append(summary)
    return files


def record(analysis: Analysis, subject: Subject, args: dict) -> dict:
    """Measure one model (train.py's snapshot analyzers), write its document to ``subject.results_dir``
    and refresh the folder's summary; returns the document."""
    document = analysis.run(subject, args)
    out_dir = Path(subject.results_dir)
    path = write_document(analysis, document, out_dir, subject.stem)
    write_summary(analysis, out_dir, [(path, document)], args)
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
    log_wrapped(logger, "figures -> " + ", ".join(shown_path(path) for path in paths), indent="  ")
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
