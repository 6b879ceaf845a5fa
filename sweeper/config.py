"""``--config sweep.toml``: the same definition as the command line, from a file.

    name = "noise_study"
    analyses = ["projections", "reinit"]

    [train]            # fixed train.py flags (names with - or _), booleans as true/false
    arch = "lenet"
    dataset = "digits"
    epochs = 30

    [axes]             # one list of values per axis
    noise = [0, 0.5, 1.0, -1]
    seed = [0, 1, 2]
    augmentation = [false, true]

    [launcher]         # sweep.py's flags: jobs, nproc_per_member, launcher = "slurm", slurm_partition, ...
    jobs = 2

A flag on the command line wins over the file.
"""
from __future__ import annotations

from pathlib import Path

import tomllib

from sweeper.grid import Definition, Flag, add_flag
from utils.errors import UserError

SECTIONS = ("name", "root", "analyses", "train", "axes", "launcher")


def read_config(path: str) -> dict:
    try:
        config = tomllib.loads(Path(path).read_text())
    except OSError as err:
        raise UserError(f"cannot read --config {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"--config {path} is not valid TOML: {err}") from err
    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise UserError(f"--config {path}: unknown key(s) {', '.join(unknown)}; use {', '.join(SECTIONS)}")
    return config


def _tokens(value) -> list[str]:
    if isinstance(value, bool):
        return ["on" if value else "off"]
    if isinstance(value, (int, float, str)):
        return [str(value)]
    raise UserError(f"{value!r}: a flag's value in --config is a number, a string or a boolean")


def _flag(known: dict[str, Flag], key: str, path: str) -> Flag:
    option = "--" + key.replace("_", "-")
    if option not in known:
        raise UserError(f"--config {path}: {key} is not a train.py flag; see python train.py --help")
    return known[option]


def apply_config(config: dict, definition: Definition, known: dict[str, Flag], *, given: set[str], path: str) -> None:
    """The file's ``[train]`` and ``[axes]`` into ``definition``, except the options in ``given``
    (the command line's)."""
    for key, value in (config.get("train") or {}).items():
        flag = _flag(known, key, path)
        if flag.option not in given:
            tokens = _tokens(value)
            add_flag(definition, flag, [] if tokens == ["on"] else tokens)
    for key, values in (config.get("axes") or {}).items():
        flag = _flag(known, key, path)
        if not isinstance(values, list) or not values:
            raise UserError(f"--config {path}: axes.{key} must be a list of values")
        if flag.option not in given:
            add_flag(definition, flag, [token for value in values for token in _tokens(value)])
