"""One-line notices where the suite deliberately differs from the reference tool (or reads one of
its files with its conventions): each is printed once per run, the first time it applies.

The README's "Differences from the reference tool" table lists every such notice.
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)
_shown: set[str] = set()


def notice(key: str, message: str, *args) -> bool:
    """Log ``notice: <message>`` the first time ``key`` comes up in this run; True when printed."""
    if key in _shown:
        return False
    _shown.add(key)
    logger.warning("notice: " + message, *args)
    return True


def reset() -> None:
    """Forget what was shown (a CLI's start: each run gets its notices)."""
    _shown.clear()
