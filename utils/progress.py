"""The one progress-bar helper: a tqdm bar that stays silent when not on a terminal or in CI."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """True when stderr is a terminal and we are not running in CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable: Iterable[T], *, enabled: bool = True, **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when ``enabled`` and :func:`progress_enabled`."""
    return tqdm(iterable, disable=not (enabled and progress_enabled()), leave=False, **kwargs)
