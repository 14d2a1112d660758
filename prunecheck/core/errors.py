"""Exception hierarchy. Messages say what was expected, what was found, and where."""

from __future__ import annotations

import re

# Terminal control sequences (colour, bold) that libraries put into their messages,
# e.g. torch.load's weights-only errors: they garble logs, JUnit XML and reports.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def plain_text(message: object) -> str:
    """``str(message)`` without terminal colour codes."""
    return _ANSI.sub("", str(message))


class PrunecheckError(Exception):
    """Base class of every error prunecheck raises on purpose; its text is always plain."""

    def __str__(self) -> str:
        return plain_text(super().__str__())


class ConfigError(PrunecheckError):
    """An invalid configuration value: names the file and the key path."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = ", ".join(part for part in (source, f"key '{key}'" if key else None) if part)
        super().__init__(f"{where}: {message}" if where else message)


class DataError(PrunecheckError):
    """A dataset file or folder that is missing or malformed."""


class ModelError(PrunecheckError):
    """A model that cannot be loaded, or whose output does not fit its dataset."""


class CacheError(PrunecheckError):
    """A cache entry that cannot be written or read back."""


class GateError(PrunecheckError):
    """A gate whose metric cannot be computed (the gate fails closed)."""


class RowsNotStoredError(ValueError):
    """A gate asked for class probabilities of a view stored as per-sample summaries."""


class PrunecheckDeprecationWarning(FutureWarning):
    """A configuration key at a deprecated place; the message says where it belongs now.

    A FutureWarning, Python's category for deprecations aimed at end users: shown by
    default (``prunecheck validate`` too), not only under test runners.
    """
