"""``version``: the installed factorysync's version."""

from __future__ import annotations

from factorysync import __version__
from factorysync.cli.base import out


def version() -> None:
    """Print the version."""
    out.print(__version__)
