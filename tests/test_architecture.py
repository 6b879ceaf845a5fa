"""The house rules that keep the code easy to live in, checked on the source itself.

Data flows one way: datasets and models -> training -> snapshots -> analyses (metrics) -> schema
(results) -> plotting. Every import in the tree, lazy ones inside functions included, must follow
the arrows below; no CLI imports another; plotting reads and writes no file; one schema version.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What each package may import from the project (besides the standard library and third parties).
ALLOWED = {
    "utils": {"utils"},
    "datasets": {"utils", "datasets"},
    "models": {"utils", "models"},
    "metrics": {"utils", "models", "metrics"},
    "schema": {"utils", "metrics", "schema"},
    "analyses": {"utils", "datasets", "models", "metrics", "schema", "analyses"},
    "plotting": {"utils", "schema", "plotting"},
    "training": {"utils", "datasets", "models", "metrics", "schema", "analyses", "training"},
    "sweeper": {"utils", "datasets", "models", "schema", "training", "sweeper"},
    "comparison": {"utils", "schema", "comparison"},
}
# Modules a package may import although its package is not in its ALLOWED set: the registry of
# analyses imports no analysis at import time, so the readers of the declarations stay below them.
# The data options' roles are the one list of train.py's data flags, which schema reads too.
NARROW = {package: {"analyses.registry"} for package in ("schema", "sweeper", "comparison")}
NARROW["schema"].add("datasets.options")
# The figures and the single-run report state the same rank correlation as the family comparison.
NARROW["plotting"] = {"comparison.correlation"}
CLIS = sorted(path.stem for path in ROOT.glob("*.py"))
# The demo is a scripted user: it chains the CLIs in-process through their main(argv), as a shell
# script would run them.
DRIVERS = {"demo"}
MAX_MODULE_LINES = 400


def _full_imports(path: Path) -> set[str]:
    """Dotted names of the modules ``path`` imports (``a.b`` for ``import a.b`` or ``from a.b import c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _imports(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports."""
    return {name.split(".")[0] for name in _full_imports(path)}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_packages_are_the_ones_the_rules_know():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_arrows(package):
    project = set(ALLOWED) | set(CLIS)
    narrow = NARROW.get(package, set())
    wrong = [f"{path.relative_to(ROOT)} imports {name}" for path in _modules(package)
             for name in sorted(_full_imports(path) - narrow)
             if name.split(".")[0] in project - ALLOWED[package]]
    assert not wrong, "; ".join(wrong)


def test_the_registry_imports_no_analysis_at_import_time():
    tree = ast.parse((ROOT / "analyses/registry.py").read_text())
    top_level = {node.module for node in tree.body if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    assert not {name for name in top_level if name and name.split(".")[0] in set(ALLOWED)}


@pytest.mark.parametrize("cli", sorted(set(CLIS) - DRIVERS))
def test_no_cli_imports_another(cli):
    assert not _imports(ROOT / f"{cli}.py") & (set(CLIS) - {cli})


def test_the_clis_are_the_readme_s():
    assert {"train", "compute_projections", "compute_spectra", "compute_dse", "reinit_layers",
            "plot_results"} <= set(CLIS) - DRIVERS


# File I/O of any kind: open, pathlib reads/writes, listings, JSON/torch/numpy files, saving figures.
FILE_IO = re.compile(r"\bopen\(|\.(read|write)_(text|bytes)\(|\.(r?glob|iterdir)\(|\bos\.(listdir|walk)\("
                     r"|json\.(load|dump)\(|torch\.(load|save)\(|np\.(load|save)\(|\.savefig\(|matplotlib\.use\(")


def test_plotting_does_no_file_io_and_selects_no_backend():
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for path in _modules("plotting")
             for number, line in enumerate(path.read_text().splitlines(), 1) if FILE_IO.search(line)]
    assert not found, "; ".join(found)
    imported = {name for path in _modules("plotting") for name in _full_imports(path)}
    assert not imported & {"matplotlib.pyplot", "glob", "shutil", "tempfile", "utils.fileio", "schema.load"}


def test_one_schema_version_in_the_tree():
    sources = [path for path in ROOT.rglob("*.py") if ".venv" not in path.parts]
    defined = [path.relative_to(ROOT) for path in sources if re.search(r"^SCHEMA_VERSION\s*=", path.read_text(), re.M)]
    assert defined == [Path("schema/documents.py")]


def test_no_module_is_over_the_size_limit():
    sources = [path for path in ROOT.rglob("*.py") if not {".venv", "tests"} & set(path.parts)]
    long = {str(path.relative_to(ROOT)): n for path in sources if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long


def test_no_test_module_imports_another():
    """Shared test code lives in helper modules (tests/checks.py, tests/sweep_helpers.py, ...)."""
    found = [f"{path.name} imports {name}" for path in sorted((ROOT / "tests").glob("*.py"))
             for name in sorted(_full_imports(path)) if re.match(r"tests\.(test_|conftest)", name)]
    assert not found, "; ".join(found)
