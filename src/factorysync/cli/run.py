"""``run`` and ``serve``: the service with its scheduler, or the API alone."""

from __future__ import annotations

from typing import Annotated

import typer

from factorysync.cli import runtime
from factorysync.cli.base import HostOpt, PortOpt, open_store


def run(host: HostOpt = None, port: PortOpt = None) -> None:
    """Run the scheduler and workers, and serve the API and console, until stopped."""
    runtime.run(open_store(), host, port)


def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
) -> None:
    """Serve the HTTP API only (syncs started over it run here; the scheduler does not)."""
    runtime.serve(open_store(), host, port, workers=workers, access_log=access_log)
