"""The registry of analyses is the one list everyone reads: a toy analysis registered here, and
nowhere else, reaches a sweep's plan, ``schema.load``/``collect``, the tidy table and the family
comparison's notes, while the built-in ones keep their order."""
from __future__ import annotations

import json
import shlex

import pytest

import schema
from analyses import registry
from analyses.registry import Declaration
from tests.sweep_helpers import TINY, run_sweep


def toy_rows(run) -> list[tuple]:
    return [(d["epoch"], "net", "toy_value", d["value"]) for d in run.of_kind("toy")]


def toy_done(results, arch, epochs) -> bool:
    return (results / "toy_done.json").is_file()


TOY = Declaration("toy", kinds=("toy",), cli="compute_spectra.py", table_rows=toy_rows, metrics=("toy_value",),
                  sweep_arguments=lambda at: ["--load-from", at.run, "--results", at.results, *at.device],
                  done=toy_done, compared_as="toy")


@pytest.fixture
def toy():
    registry.register(TOY)
    yield TOY
    registry.unregister(TOY.name)


def _toy_document(epoch: int) -> dict:
    return schema.header("toy", arch="lenet", dataset="digits", seed=0, epoch=epoch, args={}) | {"value": epoch / 10}


def test_the_built_in_analyses_in_their_order():
    """The list is the registry's modules, each declaring itself once, in order."""
    import importlib

    declared = [importlib.import_module(module).DECLARATION.name for module in registry.MODULES]
    assert [found.name for found in registry.declarations()] == declared
    assert len(set(declared)) == len(declared)
    choices, defaults = registry.sweep_analyses()
    assert choices == tuple(found.name for found in registry.declarations() if found.in_sweeps)
    assert defaults == tuple(found.name for found in registry.declarations() if found.sweep_default)
    assert set(defaults) <= set(choices)


def test_every_metric_and_measure_belongs_to_one_analysis():
    owners: dict[str, str] = {}
    for found in registry.declarations():
        for name in registry.names_of(found):
            assert owners.setdefault(name, found.name) == found.name, name
    # every measure the ranking expects a sign for is declared with one of -1, 0, +1
    assert all(measure.direction in (-1, 0, 1) for _, measure in registry.measures().values())


def test_a_taken_name_or_metric_is_refused():
    registry.declarations()
    with pytest.raises(ValueError, match="'spectra' is already registered"):
        registry.register(Declaration("spectra", kinds=("spectra",)))
    with pytest.raises(ValueError, match="alpha, which analysis 'spectra' already declares"):
        registry.register(Declaration("toy2", kinds=("toy2",), metrics=("alpha",)))
    with pytest.raises(ValueError, match="path_norm, which analysis 'norms'"):
        registry.register(Declaration("toy3", kinds=("toy3",), measures={"path_norm": registry.Measure(-1, "", "")}))
    assert "toy2" not in [found.name for found in registry.declarations()]


def test_replace_swaps_a_declaration_of_the_same_name(toy):
    changed = registry.register(Declaration("toy", kinds=("toy",), metrics=("toy_value",)), replace=True)
    assert registry.declaration("toy") is changed


def test_a_toy_analysis_reaches_the_sweep_plan(toy, tmp_path, capsys):
    assert run_sweep(tmp_path, "--name", "toy", *TINY, "--analyses", "toy", "projections", "--dry-run") == 0
    commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines() if line.startswith("python")]
    scripts = [command[1] for command in commands]
    assert scripts == ["train.py", "compute_projections.py", "compute_spectra.py", "plot_results.py"]
    assert commands[2][2:4] == ["--load-from", str(tmp_path / "toy/models/digits/lenet/0")]


def test_an_unknown_analysis_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_sweep(tmp_path, "--name", "toy", *TINY, "--analyses", "toy", "--dry-run")
    assert stopped.value.code == 2
    assert "invalid choice: 'toy'" in capsys.readouterr().err


def test_a_toy_analysis_reaches_schema_load_and_the_table(toy, tmp_path):
    folder = tmp_path / "results/digits/lenet/0"
    for epoch in (0, 2):
        schema.write(folder / f"toy_lenet_epoch{epoch:04d}.json", _toy_document(epoch))
    assert "toy" in schema.result_kinds()
    loaded = schema.load(folder / "toy_lenet_epoch0002.json")
    assert loaded == json.loads((folder / "toy_lenet_epoch0002.json").read_text())
    assert [d["epoch"] for d in schema.collect([tmp_path / "results"])["digits/lenet/0"]["toy"]] == [0, 2]
    table = schema.load_table([tmp_path / "results"])
    assert table[table.metric == "toy_value"][["epoch", "layer", "value"]].values.tolist() == [[0, "net", 0.0],
                                                                                             [2, "net", 0.2]]
    assert schema.table_metrics()["toy"] == ("toy_value",)


def test_without_the_toy_its_documents_are_passed_over(tmp_path):
    folder = tmp_path / "results/digits/lenet/0"
    schema.write(folder / "toy_lenet_epoch0000.json", _toy_document(0))
    schema.write(folder / "projections_lenet_epoch0000.json", schema.header(
        "projections", arch="lenet", dataset="digits", seed=0, epoch=0, args={}) | {"layers": [], "net": {}})
    assert set(schema.collect([tmp_path / "results"])["digits/lenet/0"]) == {"projections"}


def test_a_family_comparison_names_a_run_without_the_toy(toy, tmp_path):
    from comparison.family import build_family

    for seed in (0, 1):
        folder = tmp_path / f"results/digits/lenet/{seed}"
        schema.write(folder / "projections_lenet_epoch0002.json", schema.header(
            "projections", arch="lenet", dataset="digits", seed=seed, epoch=2, args={}) | {"layers": [], "net": {}})
    schema.write(tmp_path / "results/digits/lenet/0/toy_lenet_epoch0002.json", _toy_document(2))
    notes = build_family([tmp_path / "results"]).notes
    assert [note for note in notes if "toy" in note] == [
        f"run {tmp_path / 'results/digits/lenet/1'} has no toy results; compared without it for toy"]
