"""Errors, classified by what the engine should do next.

    FactorySyncError                 root: every error this package raises on purpose
    ├── ConfigError                  bad configuration (YAML, settings, mapping); fix the config
    ├── ConnectorError               a source could not be read
    │   ├── ConnectorFatal           retrying cannot help (missing file, bad JSON, bad password)
    │   └── ConnectorRetriable       may succeed later (timeout, connection refused, locked file)
    ├── MappingError                 a record cannot be mapped into its target table
    ├── StoreError                   our own database refused an operation
    └── NotFoundError                a named source, run or user does not exist

Messages name the thing that is wrong (source, field, file, line) and never carry secrets:
raise sites pass only redacted text.
"""

from __future__ import annotations


class FactorySyncError(Exception):
    """Root of every error raised on purpose by factorysync."""


class ConfigError(FactorySyncError):
    """Configuration is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


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
