"""What every analysis offers the runner.

An analysis module defines a settings dataclass (``add_arguments(parser)`` / ``from_args(args)``)
and a subclass of :class:`Analysis`: ``measure(subject)`` returns plain results, ``document(measured,
subject, args)`` the JSON document (built on :meth:`Subject.header`, ended by
:meth:`Subject.conventions_record` when it reads data), ``summarize(documents, files, args)`` the run's
summary, ``log(document, path)`` the lines a user reads first. The model and its lookups come as one
:class:`analyses.subject.Subject`. The pure math lives in ``metrics/``.
"""
from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import schema
from analyses.subject import Subject
from metrics.chance import ChanceVerdict

logger = logging.getLogger(__name__)

LINE_WIDTH = 120  # log lines stay readable in a terminal and a log file

SUMMARY_OF_ANALYSED = "analysed"  # the snapshots this process analysed (when more than one)
SUMMARY_OF_FOLDER = "folder"  # every matching result file in the folder (train.py adds one per snapshot)


class Analysis:
    """Base of the analyses; see the module docstring."""

    name: str = ""  # registry name, also the default file prefix
    kind: str = ""  # the documents' kind
    summary: schema.SummarySpec | None = None
    summary_scope: str = SUMMARY_OF_ANALYSED
    summary_needs_epoch: bool = False  # leave documents without an epoch out of the summary
    needs_data: bool = False  # reads the data of the model's run (``subject.data``, ``subject.probe``)
    needs_init: bool = False  # compares with the model's initialization (``subject.initialization``)
    logs_chance: bool = False  # its log says whether the model is above chance (else the runner's does)

    def __init__(self, settings) -> None:
        if hasattr(settings, "validate"):
            settings.validate()
        self.settings = settings

    @property
    def file_prefix(self) -> str:
        """Files are ``<prefix>_<snapshot stem>.json`` and ``<prefix>_summary.json``."""
        return self.name

    def measure(self, subject: Subject):
        raise NotImplementedError

    def document(self, measured, subject: Subject, args: dict) -> dict:
        """``args``: the arguments of the analysis run, recorded in the header (the CLI's)."""
        raise NotImplementedError

    def run(self, subject: Subject, args: dict) -> dict:
        """The document of ``subject``: measured, then written down, with whether the model is above
        chance (``"chance"``, where its snapshot records its held-out top-1 and the analysis did not
        measure it itself)."""
        document = self.document(self.measure(subject), subject, args)
        chance = subject.chance
        if chance is not None and "chance" not in document:
            document["chance"] = chance
        return document

    def summarize(self, documents: list[dict], files: list[str], args: dict) -> dict:
        return schema.summarize(self.summary, documents, files, args=args)

    def summary_match(self, document: dict) -> dict:
        """Keys a folder's documents must share with ``document`` to be summarized together."""
        return {"arch": document["arch"]}

    def log(self, document: dict, path: Path) -> None:
        log_written(logger, f"{model_label(document)} (epoch {document['epoch']})", path)

    def reference_document(self, document: dict, *, stem: str, subsample_classes: int) -> tuple[str, dict]:
        """``(file name, document)`` as the reference tool writes them (``--layout reference``)."""
        from utils.errors import UserError

        raise UserError(f"the reference tool writes no {self.name} files; drop --layout reference")

    def scalars(self, document: dict) -> dict:
        """What train.py logs to TensorBoard and run.json at a snapshot."""
        return {}


def model_label(document: dict) -> str:
    """The model a document describes, briefly: its snapshot's file name, else its source."""
    snapshot = document.get("snapshot")
    return Path(snapshot).name if snapshot else str(document.get("source"))


def shown_path(path) -> str:
    """``path`` as a log shows it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def log_written(log: logging.Logger, head: str, path) -> None:
    """``<head> -> <path>``, or ``head`` then ``  -> <path>`` when one line would pass :data:`LINE_WIDTH`."""
    line = f"{head} -> {shown_path(path)}"
    if len(line) <= LINE_WIDTH:
        log.info("%s", line)
    else:
        log.info("%s", head)
        log.info("  -> %s", shown_path(path))


def log_wrapped(log: logging.Logger, text: str, *, indent: str = "  ", level: int = logging.INFO) -> None:
    """``text`` as lines of at most :data:`LINE_WIDTH` characters, the later ones indented."""
    for line in textwrap.wrap(text, LINE_WIDTH, subsequent_indent=indent, break_on_hyphens=False,
                              break_long_words=False):
        log.log(level, "%s", line)


def log_chance(log: logging.Logger, chance: dict | None, *, label: str, findings: str) -> None:
    """Whether the model ``label`` names is above chance (``chance``: a
    :class:`metrics.chance.ChanceVerdict` as a dict; nothing when unknown). When it is not, one
    warning says so, and that ``findings`` describe a model that is untrained or fits labels the
    test set does not share (random labels), not the task's solution."""
    if chance is None:
        return
    verdict = ChanceVerdict(**chance)
    if verdict.above_chance:
        log.info("%s is %s", label, verdict.describe())
        return
    log_wrapped(log, f"warning: {label} is {verdict.describe()}: it is untrained, or it fits labels the test set "
                f"does not share (random labels), and {findings}", level=logging.WARNING)


def or_nan(value) -> float:
    """A value for a ``%f`` log field: NaN when undefined (``null`` in the JSON)."""
    return float("nan") if value is None else value


def fmt(value, spec: str = ".3g") -> str:
    """A value for a log table: ``-`` when undefined."""
    return "-" if value is None else format(value, spec)


def log_table(columns: list[tuple[str, str]], rows: list[list], *, log: logging.Logger | None = None) -> None:
    """One log line per row, under a header: ``columns`` are ``(title, format)`` pairs, the format
    applied to the header as to the values (e.g. ``%-22s``, ``%7s``); values are strings. ``log``:
    the calling module's logger (``getLogger(__name__)``)."""
    log = log or logger
    log.info("  " + " ".join(fmt_spec % title for title, fmt_spec in columns))
    for row in rows:
        log.info("  " + " ".join(fmt_spec % value for (_, fmt_spec), value in zip(columns, row)))
