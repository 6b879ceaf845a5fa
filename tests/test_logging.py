"""Logging belongs to the entry scripts: library code logs through ``getLogger(__name__)`` and never
touches the root logger, so a notebook that calls the library keeps its own handlers."""
from __future__ import annotations

import ast
import importlib
import logging
from pathlib import Path

import pytest

from analyses import runner
from analyses.projections import Projections, ProjectionSettings
from analyses.sources import SourceSettings
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("analyses", "training", "sweeper", "schema", "comparison", "plotting", "metrics", "datasets", "models")


class Notebook(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_notebook_calling_the_runner_keeps_its_handlers(tmp_path):
    root = logging.getLogger()
    notebook, level = Notebook(), root.level
    before = list(root.handlers)
    root.addHandler(notebook)
    root.setLevel(logging.INFO)
    try:
        files = runner.run([Projections(ProjectionSettings(normalize=True))],
                           SourceSettings(arch="lenet", dataset="digits", seed=0), outputs=runner.Outputs(str(tmp_path)),
                           device="cpu", args={})
        assert root.handlers == [*before, notebook]
    finally:
        root.removeHandler(notebook)
        root.setLevel(level)
    assert files and all(path.is_file() for path in files)
    assert any("random init" in message for message in notebook.messages)  # the runner's lines reach it
    assert not list(tmp_path.rglob("*.log"))  # no log file unless the caller asks for one


def _calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("basicConfig", "setup_logging", "open_log_file"):
                found.append(f"{path.relative_to(ROOT)}: {name}()")
            if name == "getLogger" and not (node.args and isinstance(node.args[0], ast.Name)
                                            and node.args[0].id == "__name__"):
                found.append(f"{path.relative_to(ROOT)}: getLogger() of another name than __name__")
    return found


def test_library_modules_log_through_their_own_logger_only():
    found = [call for package in LIBRARY for path in sorted((ROOT / package).rglob("*.py")) for call in _calls(path)]
    assert not found, "; ".join(found)


# -- a CLI's main(argv) called from a notebook ----------------------------------------------------------
# An argv per CLI that gets past the CLI's logging setup and fails on bad input (cheap: nothing runs).
FAILING_ARGV = {
    "compute_projections": ["--load-from", "{tmp}/missing.pt"],
    "compute_dse": ["--load-from", "{tmp}/missing.pt"],
    "compute_measures": ["--load-from", "{tmp}/missing.pt"],
    "compute_spectra": ["--load-from", "{tmp}/missing.pt"],
    "reinit_layers": ["--load-from", "{tmp}/missing.pt", "--rand"],
    "plot_results": ["{tmp}/missing"],
    "compare_runs": ["{tmp}/missing"],
    "rank_measures": ["{tmp}/missing"],
    "sweep": ["--name", "x", "--root", "{tmp}", "--arch", "no_such_arch", "--dataset", "digits"],
    "train": ["--arch", "lenet", "--dataset", "digits", "--epochs", "0", "--models-path", "{tmp}"],
    "demo": ["--epochs", "0", "--output", "{tmp}/demo"],
}


def cli_names() -> list[str]:
    """The top-level scripts with a ``main`` (every CLI)."""
    return sorted(path.stem for path in ROOT.glob("*.py")
                  if any(isinstance(node, ast.FunctionDef) and node.name == "main"
                         for node in ast.parse(path.read_text()).body))


class NotebookFormat:
    """A notebook's root logger: its own handler and format, at WARNING; restored by :meth:`close`."""

    def __init__(self) -> None:
        self.root = logging.getLogger()
        self.before, self.level = list(self.root.handlers), self.root.level
        self.handler = Notebook()
        self.formatter = logging.Formatter("NOTEBOOK %(levelname)s %(message)s")
        self.handler.setFormatter(self.formatter)
        self.root.addHandler(self.handler)
        self.root.setLevel(logging.WARNING)

    def assert_unchanged(self) -> None:
        assert self.root.handlers == [*self.before, self.handler]
        assert self.handler.formatter is self.formatter and self.handler.level == logging.INFO
        assert self.root.level == logging.WARNING
        assert not [h for h in self.root.handlers if getattr(h, "owned_by_cli", False)]

    def close(self) -> None:
        """The root logger as before the test, whatever the CLI left (so that one failure stays one)."""
        for handler in list(self.root.handlers):
            if handler not in self.before:
                self.root.removeHandler(handler)
        self.root.setLevel(self.level)


def test_every_cli_is_listed_and_keeps_its_callers_logging():
    assert sorted(FAILING_ARGV) == cli_names(), "give the new CLI an argv here and decorate its main"
    for name in cli_names():
        module = importlib.import_module(name)
        assert getattr(module.main, "keeps_caller_logging", False), f"{name}.main lacks @keeps_caller_logging"


@pytest.mark.parametrize("name", sorted(FAILING_ARGV))
def test_a_cli_that_fails_leaves_the_notebooks_logging_as_it_was(name, tmp_path):
    notebook = NotebookFormat()
    try:
        with pytest.raises(UserError):
            importlib.import_module(name).main([arg.format(tmp=tmp_path) for arg in FAILING_ARGV[name]])
        notebook.assert_unchanged()
    finally:
        notebook.close()
    assert not list(tmp_path.rglob("*.log"))


def test_a_cli_that_writes_results_leaves_the_notebooks_logging_as_it_was(tmp_path):
    import compute_projections

    notebook = NotebookFormat()
    try:
        assert compute_projections.main(["--arch", "lenet", "--dataset", "digits", "--results", str(tmp_path)]) == 0
        notebook.assert_unchanged()
        logging.getLogger("analyses").warning("after the CLI")
    finally:
        notebook.close()
    logs = list(tmp_path.rglob("*.log"))
    assert len(logs) == 1 and "after the CLI" not in logs[0].read_text()  # the CLI's log file is closed
    assert "random init" in logs[0].read_text()
    assert notebook.handler.messages == ["after the CLI"]
