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
from pathlib import Path

import schema
from analyses.subject import Subject

logger = logging.getLogger(__name__)

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
        """The document of ``subject``: measured, then written down."""
        return self.document(self.measure(subject), subject, args)

    def summarize(self, documents: list[dict], files: list[str], args: dict) -> dict:
        return schema.summarize(self.summary, documents, files, args=args)

    def summary_match(self, document: dict) -> dict:
        """Keys a folder's documents must share with ``document`` to be summarized together."""
        return {"arch": document["arch"]}

    def log(self, document: dict, path: Path) -> None:
        logger.info("%s (epoch %s) -> %s", document.get("snapshot") or document.get("source"), document["epoch"], path)

    def reference_document(self, document: dict, *, stem: str, subsample_classes: int) -> tuple[str, dict]:
        """``(file name, document)`` as the reference tool writes them (``--layout reference``)."""
        from utils.errors import UserError

        raise UserError(f"the reference tool writes no {self.name} files; drop --layout reference")

    def scalars(self, document: dict) -> dict:
        """What train.py logs to TensorBoard and run.json at a snapshot."""
        return {}


def or_nan(value) -> float:
    """A value for a ``%f`` log field: NaN when undefined (``null`` in the JSON)."""
    return float("nan") if value is None else value


def fmt(value, spec: str = ".3g") -> str:
    """A value for a log table: ``-`` when undefined."""
    return "-" if value is None else format(value, spec)


def log_table(columns: list[tuple[str, str]], rows: list[list]) -> None:
    """One log line per row, under a header: ``columns`` are ``(title, format)`` pairs, the format
    applied to the header as to the values (e.g. ``%-22s``, ``%7s``); values are strings."""
    logger.info("  " + " ".join(fmt_spec % title for title, fmt_spec in columns))
    for row in rows:
        logger.info("  " + " ".join(fmt_spec % value for (_, fmt_spec), value in zip(columns, row)))
