"""``central``: the central store of a group of plants, fed by every site's forwarding."""

from __future__ import annotations

from typing import Annotated

import typer

from factorysync.cli import runtime
from factorysync.cli.base import HostOpt, PortOpt, open_store
from factorysync.errors import ConfigError


def central(
    host: HostOpt = None,
    port: PortOpt = None,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Also serve the API and console.")
    ] = True,
) -> None:
    """Apply the changes every site forwards (FACTORYSYNC_CENTRAL_URL, a NATS server with
    the JetStream stream) to this PostgreSQL store, and serve the API and console on it.

    Each forwarded table gets every site's rows, told apart by the `_site` column."""
    # Which store it is shows before whether it is ready: SQLite is refused either way.
    store = open_store(ready=False)
    if store.dialect != "postgresql":
        raise ConfigError(
            "factorysync central needs a PostgreSQL store (FACTORYSYNC_DATABASE_URL="
            "postgresql://…): the central tables take every site's rows; SQLite is for a "
            "plant's own store"
        )
    store.ensure_ready()
    runtime.central(store, host, port, serve=serve)
