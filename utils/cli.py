"""What every CLI shares: turning user errors into one line and exit code 2, and logging setup.

A CLI's ``main(argv)`` is also called from notebooks and from other scripts (``demo.py``): decorated
with :func:`keeps_caller_logging`, it configures the root logger for its own run and gives the
caller's back when it returns, on error too.
"""
from __future__ import annotations

import collections
import functools
import logging
import sys
from collections.abc import Callable, Sequence

from utils import notices
from utils.errors import UserError

EXIT_USER_ERROR = 2
_SAVED: list[_RootState] = []  # the root loggers of the callers of the CLIs' mains now running


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI ``main`` and map :class:`UserError` to one stderr line and exit code 2."""
    notices.reset()
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


def keeps_caller_logging(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a CLI's ``main`` so that it leaves the root logger as it found it: the same handlers
    (with their formatters and levels) and the same level, and none of the CLI's own handlers (its
    console, its pending records, its log file, closed), whether ``main`` returns or raises."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        saved = _RootState.save()
        _SAVED.append(saved)
        try:
            return main(*args, **kwargs)
        finally:
            _SAVED.pop()
            saved.restore()

    wrapper.keeps_caller_logging = True
    return wrapper


def _close_unless_saved(handler: logging.Handler) -> None:
    """Close a CLI's own handler once no caller (an enclosing ``main``) will put it back."""
    if getattr(handler, "owned_by_cli", False) and not any(state.holds(handler) for state in _SAVED):
        handler.close()


class _RootState:
    """The root logger's handlers, their formatters and levels, and its level."""

    def __init__(self, handlers: list[tuple[logging.Handler, logging.Formatter | None, int]], level: int) -> None:
        self.handlers = handlers
        self.level = level

    @classmethod
    def save(cls) -> _RootState:
        root = logging.getLogger()
        return cls([(handler, handler.formatter, handler.level) for handler in root.handlers], root.level)

    def holds(self, handler: logging.Handler) -> bool:
        return any(handler is saved for saved, _, _ in self.handlers)

    def restore(self) -> None:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
            if not self.holds(handler):
                _close_unless_saved(handler)
        for handler, formatter, level in self.handlers:
            handler.setFormatter(formatter)
            handler.setLevel(level)
            root.addHandler(handler)
        root.setLevel(self.level)


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
        _close_unless_saved(handler)  # a caller's handler comes back when its main returns
    root.setLevel(logging.DEBUG)
    console = _Console(sys.stderr)
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


class _Console(logging.StreamHandler):
    """The CLI's console handler (closed when the CLI's ``main`` returns)."""

    owned_by_cli = True


class _PendingRecords(logging.Handler):
    """Keeps the records logged before the log file is known (the last 10,000)."""

    owned_by_cli = True

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: collections.deque = collections.deque(maxlen=10_000)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _LogFile(logging.FileHandler):
    """A log file that, when it cannot be written (disk full), says so once instead of printing a
    traceback per record; the console keeps logging."""

    failed = False
    owned_by_cli = True

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
