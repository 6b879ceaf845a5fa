"""The parser every analysis CLI shares, built once: which model (the source flags), the
initialization it is compared with, the device, the data of its run, then the CLI's own flags,
then where its results go (``--results``, ``--plots``, ``--log``, ``--layout``).

Each flag keeps its one definition (``SourceSettings``, ``InitSettings``, ``DataSettings``,
``utils.devices``); a CLI names the sections it has and adds its own flags with ``own``:

    p = analysis_parser("Compute weight-spectrum metrics per layer.", log="spectra.log",
                        own=[SpectraSettings.add_arguments])

The sections are argparse groups, so ``--help`` lists each CLI's flags under the same headings.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from analyses.data import DataSettings
from analyses.sources import InitSettings, SourceSettings, add_layout_argument
from utils.devices import add_device_args

AddArguments = Callable[[argparse._ActionsContainer], None]  # adds flags to a parser or one of its groups


def analysis_parser(description: str, *, log: str, own: Sequence[AddArguments], title: str = "analysis",
                    init: bool = True, data: bool = False, zoo: bool = True, latest_only: bool = False,
                    plots: bool = False, layout: bool = False) -> argparse.ArgumentParser:
    """An analysis CLI's parser (see the module docstring).

    ``log``: the default of ``--log``, the CLI's log file; ``own``: what adds the CLI's own flags, in
    order, under the heading ``title``; ``init``: ``--init-from``/``--no-init``; ``data``: the data
    flags of the analyses that read the model's data; ``zoo`` and ``latest_only``: as
    :meth:`SourceSettings.add_arguments`; ``plots``: ``--plots``; ``layout``: ``--layout``.
    """
    parser = argparse.ArgumentParser(description=description)
    SourceSettings.add_arguments(parser.add_argument_group("the model"), zoo=zoo, latest_only=latest_only)
    if init:
        InitSettings.add_arguments(parser.add_argument_group("its initialization"))
    add_device_args(parser.add_argument_group("device"))
    if data:
        DataSettings.add_arguments(parser.add_argument_group("the data of its run"))
    mine = parser.add_argument_group(title)
    for add in own:
        add(mine)
    add_output_arguments(parser.add_argument_group("outputs"), log=log, plots=plots, layout=layout)
    return parser


def add_output_arguments(group: argparse._ActionsContainer, *, log: str, plots: bool, layout: bool) -> None:
    group.add_argument("--results", default="./results", help="Path to store results [default = './results'].")
    if plots:
        group.add_argument("--plots", default="./plots", help="Path to store plots [default = './plots'].")
    group.add_argument("--log", default=log, help="Logfile name, inside the results folder unless it has a folder "
                       f"[default = '{log}'].")
    if layout:
        add_layout_argument(group)
