"""``factorysync worker``: one of many schedulers sharing a PostgreSQL store."""

from __future__ import annotations

import logging
import signal
from typing import Annotated, Any

import typer

from factorysync.cli import app, err, out
from factorysync.errors import ConfigError
from factorysync.settings import get_settings
from factorysync.store.store import Store


@app.command()
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
    from factorysync.engine.scheduler import Scheduler
    from factorysync.realtime.service import RealtimeService

    store = Store(get_settings())
    if store.dialect != "postgresql":
        raise ConfigError(
            "factorysync worker needs a PostgreSQL store shared by all workers "
            "(FACTORYSYNC_DATABASE_URL=postgresql://…); with SQLite run one 'factorysync run'"
        )
    store.ensure_ready()
    level = getattr(logging, store.settings.log_level.upper(), logging.INFO)
    logging.getLogger("factorysync").setLevel(level)
    scheduler = Scheduler(store, max_concurrent=concurrency, lease_s=lease_seconds, name=name)
    realtime = RealtimeService(
        store, owner=scheduler.worker_id, member=name, lease_s=scheduler.lease_s
    )

    def _stop(signum: int, _frame: Any) -> None:
        err.print(f"stopping ({signal.Signals(signum).name}): finishing runs in progress…")
        scheduler.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    out.print(
        f"worker {scheduler.worker_id} on {store.safe_url}: {scheduler.max_concurrent} at once, "
        f"leases of {scheduler.lease_s:g} s (Ctrl-C stops)"
    )
    scheduler.beat()  # registered as alive before the realtime sources are shared out
    realtime.start()
    try:
        scheduler.run_forever()
    finally:
        realtime.stop()
