"""One-line error messages and exit codes for failures of CLI commands.

1  anything else (a server bug, a config file that cannot be read, ...)
2  usage: wrong arguments, or the server rejected a field (INVALID_ARGUMENT)
3  authentication: no credentials, or UNAUTHENTICATED
4  NOT_FOUND or PERMISSION_DENIED
5  conflict: ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED
6  UNAVAILABLE or DEADLINE_EXCEEDED (server not reachable or too slow)
"""

from __future__ import annotations

import sys

from bai.cli.config import ConfigError
from bai.cli.context import AuthRequired, UsageError

OTHER, USAGE, AUTH, NOT_FOUND, CONFLICT, UNAVAILABLE = 1, 2, 3, 4, 5, 6

_BY_CODE_NAME = {
    "INVALID_ARGUMENT": USAGE,
    "OUT_OF_RANGE": USAGE,
    "UNAUTHENTICATED": AUTH,
    "NOT_FOUND": NOT_FOUND,
    "PERMISSION_DENIED": NOT_FOUND,
    "ALREADY_EXISTS": CONFLICT,
    "FAILED_PRECONDITION": CONFLICT,
    "ABORTED": CONFLICT,
    "UNAVAILABLE": UNAVAILABLE,
    "DEADLINE_EXCEEDED": UNAVAILABLE,
}


def describe(exc: BaseException) -> tuple[str, int]:
    """(message without the "error: " prefix, exit code) for an exception."""
    if isinstance(exc, UsageError):
        return str(exc), USAGE
    if isinstance(exc, AuthRequired):
        return str(exc), AUTH
    if isinstance(exc, ConfigError):
        return str(exc), OTHER
    client_errors = sys.modules.get("bai.client.errors")
    if client_errors is not None and isinstance(exc, client_errors.BaiError):
        text = str(exc)
        if exc.code.name == "UNAVAILABLE" and exc.reason == "UNAVAILABLE":
            text += " (is the server running and the endpoint right?)"
        return text, _BY_CODE_NAME.get(exc.code.name, OTHER)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), OTHER
    return f"{type(exc).__name__}: {exc}", OTHER
