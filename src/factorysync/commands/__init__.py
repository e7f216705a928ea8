"""Command groups kept in their own modules; each registers itself on the Typer apps of
:mod:`factorysync.cli` when imported. :func:`load_all` imports every module here."""

from __future__ import annotations

import pkgutil
from importlib import import_module


def load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        import_module(f"{__name__}.{info.name}")
