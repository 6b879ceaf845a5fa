"""What every CLI shares: turning user errors into one line and exit code 2, and logging setup."""
from __future__ import annotations

import logging
import sys
from typing import Callable, Sequence

from utils.errors import UserError

EXIT_USER_ERROR = 2


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI ``main`` and map :class:`UserError` to one stderr line and exit code 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


def setup_logging(log_file: str | None = None, *, verbose: bool = False) -> None:
    """Configure the root logger: concise console lines, and the full log in ``log_file``.

    Only entry scripts call this; library modules just use ``logging.getLogger(__name__)``.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(console)
    if log_file:
        file_handler = logging.FileHandler(log_file)
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(file_handler)
