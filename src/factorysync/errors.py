"""Errors, classified by what the engine should do next.

    FactorySyncError                 root: every error this package raises on purpose
    ├── ConfigError                  bad configuration (YAML, settings, mapping); fix the config
    │                                (its problems are Problem texts: str with a kind and params)
    ├── ConnectorError               a source could not be read
    │   ├── ConnectorFatal           retrying cannot help (missing file, bad JSON, bad password)
    │   └── ConnectorRetriable       may succeed later (timeout, connection refused, locked file)
    ├── MappingError                 a record cannot be mapped into its target table
    ├── StoreError                   our own database refused an operation
    └── NotFoundError                a named source, run or user does not exist

Messages name the thing that is wrong (source, field, file, line) and never carry secrets:
raise sites pass only redacted text. A message is one line for the user; the traceback of
what led to it (often a parser's own exception, hidden with ``raise ... from None``) is
what :func:`full_traceback` formats, for ``factorysync --debug`` and debug logs.
"""

from __future__ import annotations

import traceback


class FactorySyncError(Exception):
    """Root of every error raised on purpose by factorysync."""


class ConfigError(FactorySyncError):
    """Configuration is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class Problem(str):
    """One validation problem as its English text (``path: message``), carrying what it
    was made of, so that a reader in another language can say it again: ``kind`` (a
    pydantic error type such as ``missing``, or a factorysync message key), ``params``
    (the values the message names) and ``path`` (where, kept as written).

    It is a ``str``: the CLI, the API and the logs use it as the English text it is."""

    path: str
    message: str
    kind: str
    params: dict[str, str]

    def __new__(
        cls,
        path: str,
        message: str,
        kind: str = "",
        params: dict[str, str] | None = None,
        sep: str = ": ",
    ) -> Problem:
        made = super().__new__(cls, f"{path}{sep}{message}" if path else message)
        made.path, made.message, made.kind = path, message, kind
        made.params = dict(params or {})
        return made

    def within(self, where: str, sep: str = ".") -> Problem:
        """The same problem, its path prefixed with ``where`` (a problem without a path
        reads ``where`` + ``sep`` + its message, as the text it replaces did)."""
        if not self.path:
            return Problem(where, self.message, self.kind, self.params, sep)
        return Problem(f"{where}{sep}{self.path}", self.message, self.kind, self.params)


class ConnectorError(FactorySyncError):
    """A source could not be reached or read."""


class ConnectorFatal(ConnectorError):
    """Reading failed in a way that retrying cannot fix."""


class ConnectorRetriable(ConnectorError):
    """Reading failed in a way that may succeed on a later attempt."""


class MappingError(FactorySyncError):
    """A record does not fit its mapping."""


class StoreError(FactorySyncError):
    """The factorysync store refused an operation."""


class NotFoundError(FactorySyncError):
    """A named object does not exist."""


def full_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` with every exception that led to it, including those a
    ``raise ... from None`` hides from the ordinary traceback."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    parts = [
        "".join(traceback.format_exception(type(e), e, e.__traceback__, chain=False))
        for e in reversed(chain)
    ]
    return "\nwhich led to:\n\n".join(parts)
