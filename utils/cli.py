"""What every CLI shares: turning user errors into one line and exit code 2, and logging setup."""
from __future__ import annotations

import collections
import logging
import sys
from collections.abc import Callable, Sequence

from utils import notices
from utils.errors import UserError

EXIT_USER_ERROR = 2


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI ``main`` and map :class:`UserError` to one stderr line and exit code 2."""
    notices.reset()
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


def setup_logging(log_file: str | None = None, *, verbose: bool = False) -> None:
    """Configure the root logger: concise console lines, and the full log in ``log_file``.

    Only entry scripts call this; library modules just use ``logging.getLogger(__name__)``.
    Without ``log_file``, records are also kept in memory, and the next call with a ``log_file``
    writes them there first: CLIs call ``setup_logging(None)`` on start and open their log in the
    results folder only when the first result is written, so a run that fails on bad input leaves
    no file behind, yet its log starts at the beginning.
    """
    root = logging.getLogger()
    pending: list[logging.LogRecord] = []
    for handler in list(root.handlers):
        if isinstance(handler, _PendingRecords):
            pending = list(handler.records)
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(console)
    if not log_file:
        root.addHandler(_PendingRecords())
        return
    file_handler = _LogFile(log_file)
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for record in pending:
        file_handler.handle(record)
    root.addHandler(file_handler)


def open_log_file(path) -> None:
    """The console, and the log file at ``path`` with the records kept since the CLI started: what
    a CLI hands the library (``analyses.runner.Outputs.open_log``, train.py's session) to call when
    it knows where its first result goes."""
    setup_logging(str(path))


class _PendingRecords(logging.Handler):
    """Keeps the records logged before the log file is known (the last 10,000)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: collections.deque = collections.deque(maxlen=10_000)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _LogFile(logging.FileHandler):
    """A log file that, when it cannot be written (disk full), says so once instead of printing a
    traceback per record; the console keeps logging."""

    failed = False

    def __init__(self, filename: str) -> None:
        try:
            super().__init__(filename)
        except OSError as err:
            raise UserError(f"cannot open the log file {filename}: {err.strerror}; check --log") from err

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.failed:
            self.failed = True
            error = sys.exc_info()[1]
            print(f"warning: cannot write the log file {self.baseFilename} ({error}); logging to the console only",
                  file=sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def close(self) -> None:
        try:
            super().close()
        except (OSError, ValueError):  # the final flush on a full disk; the warning was given
            pass
