"""The one exception type for mistakes a user can make (bad path, unknown name, bad option).

CLIs turn it into a single line on stderr and exit code 2 (see :func:`utils.cli.run_main`).
Messages name the offending value and say how to fix it.
"""


class UserError(Exception):
    """An error caused by the user's input, reported without a traceback."""


def require(checks) -> None:
    """Raise :class:`UserError` with the message of the first ``(ok, message)`` pair that is not ok."""
    for ok, message in checks:
        if not ok:
            raise UserError(message)
