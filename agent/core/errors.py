"""Error types that carry what went wrong and what to do about it.

The CLI maps :class:`InputError` to exit code 2 with a one-line message; anything that is
not a ``RecsageError`` is a bug and keeps its traceback.
"""

from __future__ import annotations


class RecsageError(Exception):
    """Base class for errors a user can act on (message says what to do next)."""

    exit_code = 1


class InputError(RecsageError):
    """Bad input from the user or a catalog: a file, an argument, a row."""

    exit_code = 2


class Busy(RecsageError):
    """The thing asked for is already working (a chat session answering a message): retry after it."""

    exit_code = 1


class ModelNotReady(RecsageError):
    """A model role is not provisioned or not configured."""

    exit_code = 2


class MissingDependency(RecsageError):
    """An optional package is missing; the message names the install command."""

    exit_code = 2


def require(module: str, extra: str | None = None):
    """Import ``module`` lazily, or raise an error naming the exact install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        what = f"'recsage[{extra}]'" if extra else module
        raise MissingDependency(
            f"{module} is not installed ({exc}); install it with: pip install {what}"
        ) from exc

