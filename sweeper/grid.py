"""A family's definition: fixed train.py flags, axes (flags given several values), analyses; and
its members, the product of the axes, each with its flags, its folders and its commands.

Flags keep train.py's names and are kept as the argv tokens the user typed, so that every member's
commands are exactly what one would type by hand. A boolean flag (``--augmentation``) is on when
given alone; given values (``--augmentation off on``) it is an axis (on/off, true/false, yes/no, 1/0).
"""
from __future__ import annotations

import argparse
import inspect
import itertools
from dataclasses import dataclass, field

from analyses.registry import sweep_analyses
from utils.errors import UserError
from utils.paths import run_subdir

BOOLEAN_VALUES = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False,
                  "0": False}
# Flags of the standard run layout <dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/; any other
# axis adds a folder level named after its values.
LAYOUT_FLAGS = tuple(inspect.signature(run_subdir).parameters)
# Flags the sweep sets (folders, progress) or that make no sense for a family.
SET_BY_SWEEP = ("models_path", "results", "tb_logdir", "no_progress")
NOT_IN_SWEEPS = ("resume_from", "evaluate", "evaluate_train", "eval_regularization_loss", "override", "start_epoch")
DEFAULT_SEED = "0"


@dataclass(frozen=True)
class Flag:
    """One train.py flag: its long option, destination and whether it takes a value."""

    option: str
    dest: str
    boolean: bool


def flags_of(parser: argparse.ArgumentParser) -> dict[str, Flag]:
    """Every option string of ``parser`` (aliases too) to its :class:`Flag`."""
    known = {}
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        long = next((s for s in action.option_strings if s.startswith("--")), action.option_strings[0])
        flag = Flag(long, action.dest, action.nargs == 0)
        known |= {option: flag for option in action.option_strings}
    return known


@dataclass
class Definition:
    """The family: ``fixed`` and ``axes`` map a train.py option to the tokens that follow it (a
    boolean's are ``[]`` when on); an axis holds one token list per value (``None``: a boolean off)."""

    fixed: dict[str, list[str]] = field(default_factory=dict)
    axes: dict[str, list[list[str] | None]] = field(default_factory=dict)
    analyses: tuple[str, ...] = field(default_factory=lambda: sweep_analyses()[1])

    def record(self) -> dict:
        return {"fixed": self.fixed, "axes": self.axes, "analyses": list(self.analyses)}

    @classmethod
    def from_record(cls, record: dict) -> Definition:
        axes = {option: [None if v is None else list(v) for v in values] for option, values in record["axes"].items()}
        return cls(dict(record["fixed"]), axes, tuple(record["analyses"]))


def _boolean(option: str, token: str) -> bool:
    value = BOOLEAN_VALUES.get(str(token).lower())
    if value is None:
        raise UserError(f"{option} {token}: a boolean flag takes on/off (or true/false, yes/no, 1/0)")
    return value


def add_flag(definition: Definition, flag: Flag, values: list[str]) -> None:
    """Record ``--option values...`` as a fixed flag (one value, or a boolean alone) or an axis."""
    option = flag.option
    if option in definition.fixed or option in definition.axes:
        raise UserError(f"{option} is given twice; give all its values at once, e.g. {option} 1 2")
    if flag.dest in NOT_IN_SWEEPS:
        raise UserError(f"{option} has no place in a sweep: members are new runs that the sweep resumes itself")
    if flag.dest in SET_BY_SWEEP:
        raise UserError(f"{option} is set by the sweep (every folder lives under --root/--name); drop it")
    if flag.boolean:
        states = [True] if not values else list(dict.fromkeys(_boolean(option, value) for value in values))
        if len(states) == 1:
            if states[0]:
                definition.fixed[option] = []
            return
        definition.axes[option] = [[] if state else None for state in states]
        return
    if not values:
        raise UserError(f"{option} needs a value (several values make it an axis of the grid)")
    if len(values) == 1:
        definition.fixed[option] = [values[0]]
    else:
        definition.axes[option] = [[value] for value in dict.fromkeys(values)]


def parse_train_tokens(tokens: list[str], known: dict[str, Flag], definition: Definition) -> None:
    """``--flag v1 v2 --other v ...`` (train.py's flags, as typed) into ``definition``."""
    current, values = None, []
    for token in [*tokens, None]:
        flag_token = token is not None and (token in known or token.startswith("--"))
        if token is not None and not flag_token:
            if current is None:
                raise UserError(f"{token!r} is not a flag; give train.py flags with their values, e.g. --lr 0.1 0.01")
            values.append(token)
            continue
        if current is not None:
            add_flag(definition, current, values)
        if token is None:
            break
        option, _, inline = token.partition("=")
        if option not in known:
            raise UserError(f"{option} is neither a sweep.py nor a train.py flag; see python train.py --help")
        current, values = known[option], [inline] if inline else []


def axis_label(option: str, tokens: list[str] | None) -> str:
    """``noise=0.5``; a boolean axis ``augmentation=on|off``."""
    name = option.lstrip("-").replace("-", "_")
    return f"{name}={'off' if tokens is None else tokens[0] if tokens else 'on'}"


def member_argv(definition: Definition, choice: dict[str, list[str] | None]) -> list[str]:
    """train.py's flags of one member: the fixed flags, then its axis values (a boolean off: absent)."""
    argv = []
    for option, tokens in [*definition.fixed.items(), *choice.items()]:
        if tokens is not None:
            argv += [option, *tokens]
    if "--seed" not in definition.fixed and "--seed" not in choice:
        argv += ["--seed", DEFAULT_SEED]  # folders must be known before the run starts
    return argv


@dataclass(frozen=True)
class Member:
    id: str  # "noise=0.5,seed=1" (or "run" without axes)
    values: dict[str, str]  # axis name -> value, as labelled
    argv: tuple[str, ...]  # train.py flags
    extra: str  # the folder level of the axes outside the run layout ("" without any)


def members(definition: Definition, flags: dict[str, Flag]) -> list[Member]:
    """The product of the axes, first axis outermost."""
    options = list(definition.axes)
    found = []
    for combination in itertools.product(*(definition.axes[o] for o in options)):
        choice = dict(zip(options, combination))
        labels = [axis_label(option, tokens) for option, tokens in choice.items()]
        extra = ",".join(label for option, label in zip(options, labels) if flags[option].dest not in LAYOUT_FLAGS)
        values = dict(label.split("=", 1) for label in labels)
        found.append(Member(",".join(labels) or "run", values, tuple(member_argv(definition, choice)), extra))
    return found
