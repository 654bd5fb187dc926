"""Helpers shared by the three entry points: one-line errors instead of tracebacks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps

from ddpm.checkpoint import CheckpointError
from ddpm.config import ConfigError
from ddpm.data.base import DatasetNotFoundError

USER_ERRORS = (
    ConfigError,
    CheckpointError,
    DatasetNotFoundError,
    ValueError,
    FileNotFoundError,
    PermissionError,
)


def fail(error: BaseException, code: int = 2) -> None:
    """Print ``error: <message>`` on stderr and exit non-zero: bad input is not a crash."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(code)


def user_errors(fn: Callable) -> Callable:
    """Turn the user-input errors raised by ``fn`` into :func:`fail`."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            fail(e)

    return wrapper
