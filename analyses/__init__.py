"""One module per analysis, and ``runner.py``, the one snapshot loop they all go through.

Each analysis module has a settings dataclass (``add_arguments(parser)`` / ``from_args(args)``), an
:class:`analyses.base.Analysis` subclass (``measure``, ``document``, ``summarize``, ``log``) and, at
its end, its :class:`analyses.registry.Declaration`: what the CLIs, sweeps, the tidy table, family
comparisons and train.py need to know about it. Its pure math lives in ``metrics/``. A new analysis
is one module here, one line in :data:`analyses.registry.MODULES` and, if it has one, its CLI.
"""
from __future__ import annotations

from analyses.registry import Declaration, declaration, declarations, register

__all__ = ["Declaration", "declaration", "declarations", "register"]
