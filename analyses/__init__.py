"""One module per analysis, and ``runner.py``, the one snapshot loop they all go through.

Each analysis module has a settings dataclass (``add_arguments(parser)`` / ``from_args(args)``) and
an :class:`analyses.base.Analysis` subclass (``measure``, ``document``, ``summarize``, ``log``); its
pure math lives in ``metrics/``. A new analysis is one module here, one line in :data:`ANALYSES`
and, if train.py should run it at every snapshot, one adapter in ``training/adapters.py``.
"""
from __future__ import annotations

import importlib

# name -> (module, settings class, analysis class)
ANALYSES: dict[str, tuple[str, str, str]] = {
    "projections": ("analyses.projections", "ProjectionSettings", "Projections"),
    "spectra": ("analyses.spectra", "SpectraSettings", "Spectra"),
    "dse": ("analyses.dse", "DSESettings", "DSE"),
    "hsic": ("analyses.hsic", "HSICSettings", "HSIC"),
    "reinit": ("analyses.reinit", "ReinitSettings", "Reinit"),
}


def list_analyses() -> list[str]:
    return list(ANALYSES)


def get_analysis(name: str) -> tuple[type, type]:
    """``(settings class, analysis class)`` of the analysis called ``name``."""
    from utils.errors import UserError

    if name not in ANALYSES:
        raise UserError(f"unknown analysis {name!r}; choose one of: {', '.join(ANALYSES)}")
    module, settings, analysis = ANALYSES[name]
    loaded = importlib.import_module(module)
    return getattr(loaded, settings), getattr(loaded, analysis)
