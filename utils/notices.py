"""One-line notices where the suite deliberately differs from the reference tool (or reads one of
its files with its conventions): each is printed once per run, the first time it applies.

The README's "Differences from the reference tool" table lists every such notice.
"""
from __future__ import annotations

import logging
import textwrap

logger = logging.getLogger(__name__)
_shown: set[str] = set()
WIDTH = 120  # a long notice continues on further "notice:" lines, so that log lines stay readable


def notice(key: str, message: str, *args) -> bool:
    """Log ``notice: <message>`` the first time ``key`` comes up in this run; True when printed."""
    if key in _shown:
        return False
    _shown.add(key)
    text = "notice: " + (message % args if args else message)
    # every line starts with "notice:", so that a reader (or a filter) tells notices from other lines
    logger.warning("%s", "\n".join(textwrap.wrap(text, WIDTH, subsequent_indent="notice:   ", break_long_words=False,
                                                  break_on_hyphens=False)))
    return True


def reset() -> None:
    """Forget what was shown (a CLI's start: each run gets its notices)."""
    _shown.clear()
