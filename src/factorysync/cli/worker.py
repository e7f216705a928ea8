"""``worker``: one of many schedulers sharing a PostgreSQL store."""

from __future__ import annotations

from typing import Annotated

import typer

from factorysync.cli import runtime
from factorysync.cli.base import open_store
from factorysync.errors import ConfigError


def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=1024, help="Runs at once (default: the setting).")
    ] = None,
    lease_seconds: Annotated[
        float | None, typer.Option(min=2, help="Lease length (default: FACTORYSYNC_LEASE_S).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            envvar="FACTORYSYNC_WORKER_NAME",
            help="A stable name for this worker (e.g. the systemd instance): MQTT shared "
            "subscriptions keep its session across restarts.",
        ),
    ] = None,
) -> None:
    """Run due sources together with other workers on the same PostgreSQL store.

    Batch sources are claimed run by run; realtime sources (MQTT, OPC UA, file watches)
    are held by one worker at a time and move to another when it stops or dies."""
    # Which store it is shows before whether it is ready: SQLite is refused either way.
    store = open_store(ready=False)
    if store.dialect != "postgresql":
        raise ConfigError(
            "factorysync worker needs a PostgreSQL store shared by all workers "
            "(FACTORYSYNC_DATABASE_URL=postgresql://…); with SQLite run one 'factorysync run'"
        )
    store.ensure_ready()
    runtime.work(store, concurrency=concurrency, lease_s=lease_seconds, name=name)
