"""Logging belongs to the entry scripts: library code logs through ``getLogger(__name__)`` and never
touches the root logger, so a notebook that calls the library keeps its own handlers."""
from __future__ import annotations

import ast
import logging
from pathlib import Path

from analyses import runner
from analyses.projections import Projections, ProjectionSettings
from analyses.sources import SourceSettings

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
