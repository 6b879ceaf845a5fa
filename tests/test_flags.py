"""One home for every flag: a flag that several CLIs share has one default and one help text.

The analysis CLIs describe a model that was trained; train.py describes a run to train, so its help
texts differ, but a default it shares must be the same unless the analysis CLI's is None (``the
snapshot's``: our snapshots know their run's options). The few differences on purpose are listed
below, each with its reason; the CLIs' help says it too.
"""
from __future__ import annotations

import importlib
from itertools import combinations

import pytest

from analyses.registry import declarations

# Every analysis CLI, from the registry (each declaration names the CLI that runs it).
ANALYSIS_CLIS = tuple(dict.fromkeys(found.cli.removesuffix(".py") for found in declarations() if found.cli))
OTHER_CLIS = ("train", "plot_results", "compare_runs", "sweep")
# (flag, CLI): why its default or help differs from the other CLIs'.
ON_PURPOSE = {
    ("--log", "compute_projections"): "each CLI's log file keeps its reference name",
    ("--log", "compute_spectra"): "each CLI's log file is named after its analysis",
    ("--log", "compute_dse"): "each CLI's log file is named after its analysis",
    ("--log", "compute_measures"): "each CLI's log file is named after its analysis",
    ("--log", "reinit_layers"): "each CLI's log file keeps its reference name",
    ("--log", "plot_results"): "plot_results.py writes no results folder, so no log file by default",
    ("--load-from", "reinit_layers"): "reinit sweeps one snapshot: a run directory means its latest",
    ("--seed", "reinit_layers"): "its seed also seeds the --rand draws",
    ("--batch-size", "compute_dse"): "DSE's forward passes take larger batches than reinit's evaluations",
    ("--batch-size", "train"): "a training batch",
    ("--plots", "plot_results"): "plot_results.py draws every figure, reinit_layers.py its heatmap",
    ("--data-path", "train"): "train.py reads ./data; the analyses read the snapshot's",
    ("--shuffle", "train"): "train.py shuffles; the analyses read what the snapshot did",
}


def _options(cli: str) -> dict[str, tuple[object, str]]:
    parser = importlib.import_module(cli).get_args_parser()
    return {option: (action.default, action.help) for action in parser._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"}


@pytest.fixture(scope="module")
def options() -> dict[str, dict[str, tuple[object, str]]]:
    return {cli: _options(cli) for cli in (*ANALYSIS_CLIS, *OTHER_CLIS)}


def test_the_analysis_clis_share_each_flag_s_default_and_help(options):
    different = []
    for first, second in combinations([*ANALYSIS_CLIS, "plot_results", "compare_runs", "sweep"], 2):
        for option in sorted(set(options[first]) & set(options[second])):
            if (option, first) in ON_PURPOSE or (option, second) in ON_PURPOSE:
                continue
            if options[first][option] != options[second][option]:
                different.append(f"{option}: {first} {options[first][option]} != {second} {options[second][option]}")
    assert not different, "\n".join(different)


def test_train_py_and_the_analysis_clis_share_defaults(options):
    different = []
    for cli in ANALYSIS_CLIS:
        for option in sorted(set(options["train"]) & set(options[cli])):
            ours, theirs = options["train"][option][0], options[cli][option][0]
            if theirs is None or (option, "train") in ON_PURPOSE or (option, cli) in ON_PURPOSE:
                continue
            if ours != theirs:
                different.append(f"{option}: train {ours!r} != {cli} {theirs!r}")
    assert not different, "\n".join(different)


def test_every_flag_says_its_default(options):
    silent = [f"{cli} {option}" for cli, found in options.items() for option, (default, text) in found.items()
              if not text]
    assert not silent


def test_the_differences_on_purpose_are_real(options):
    """The list above is no blanket: each entry names a flag the CLI has."""
    assert [key for key in ON_PURPOSE if key[0] not in options[key[1]]] == []


def test_every_data_option_is_one_train_py_flag(options):
    import dataclasses

    from datasets.options import DataOptions, flag_of

    train = importlib.import_module("train").get_args_parser()
    destinations = {action.dest: action.default for action in train._actions}
    for option in dataclasses.fields(DataOptions):
        assert flag_of(option.name) in destinations, option.name


@pytest.mark.parametrize("cli", ["train", *ANALYSIS_CLIS])
def test_without_arch_the_architectures_are_listed(cli, capsys):
    """As the reference does: no --arch (and no --load-from) lists the architectures, exit 0."""
    assert importlib.import_module(cli).main([]) == 0
    assert "lenet" in capsys.readouterr().out


@pytest.mark.parametrize("cli", ["train", *(cli for cli in ANALYSIS_CLIS if cli != "reinit_layers")])
def test_without_dataset_the_datasets_are_listed(cli, capsys):
    assert importlib.import_module(cli).main(["--arch", "lenet"]) == 0
    assert "digits" in capsys.readouterr().out
