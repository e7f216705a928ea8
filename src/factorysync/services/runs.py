"""Running syncs, resetting where a source's reads stopped, and the run history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select

from factorysync.engine.runner import Runner, RunResult
from factorysync.store.db import plain
from factorysync.store.registry import get_source
from factorysync.store.schema import HISTORY_ROW
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store


def sync_many(
    store: Store,
    source_ids: list[str],
    *,
    trigger: str = "manual",
    progress: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    runner = Runner(store)
    results = []
    for sid in source_ids:
        result = runner.sync(sid, trigger=trigger)
        results.append(result)
        if progress:
            progress(result)
    return results


def reset_source(
    store: Store, source_id: str, *, target_table: str | None = None, reset_by: str
) -> dict[str, Any]:
    """Forget where a source's reads stopped, so its next run reads everything again.

    Removes the incremental cursor and the connector state of each mapping (or only of
    the one writing ``target_table``); rows already synced stay, and the next run upserts
    over them, so unchanged rows count as neither inserted nor updated. Refused while a
    run of the source is in progress (its next checkpoint would store the cursor again).
    An infolog event ``source_reset`` records who reset what, with the cursors removed.

    A streaming source (MQTT, OPC UA, ...) also has its stream's position forgotten, for
    one mapping as for all (the position is the source's): the answer's ``stream`` says
    whether one was stored. A running stream is restarted by the realtime service at its
    next registry scan and starts from scratch, as a fresh source's; until then its
    flushes write rows but no position (:func:`factorysync.engine.state.reset_stream`).
    Its open realtime window does not refuse the reset, a batch run does.
    """
    from factorysync.engine.runner import run_slot
    from factorysync.engine.state import reset_state, reset_stream
    from factorysync.errors import NotFoundError
    from factorysync.observability import infolog

    # The slot keeps runs of this process out meanwhile; the history, those of others.
    with run_slot(source_id), store.begin() as conn:
        # Flushes of a running stream check for a reset after updating this row: locked
        # first, a flush racing the reset sees it or commits before it (reset_stream).
        conn.execute(select(reg_t.c.id).where(reg_t.c.source_id == source_id).with_for_update())
        source = get_source(conn, source_id)
        mappings = source["mappings"]
        if target_table is not None:
            mappings = [m for m in mappings if m["target_table"] == target_table]
            if not mappings:
                have = ", ".join(m["target_table"] for m in source["mappings"]) or "none"
                raise NotFoundError(
                    f"source {source_id!r} has no mapping to target table {target_table!r} "
                    f"(its mappings: {have})"
                )
        refuse_while_running(conn, source_id, "reset", windows=False)
        reset = {m["target_table"]: reset_state(conn, source_id, m["id"]) for m in mappings}
        result: dict[str, Any] = {"source_id": source_id, "reset_by": reset_by, "mappings": reset}
        message = (
            f"cursor and connector state of {', '.join(reset)} reset by {reset_by}: "
            "the next run reads the whole source again"
        )
        if streams(source):
            removed = reset_stream(conn, source_id, reset_by)
            result["stream"] = {"cursor": None, "connector_state": removed}
            message += "; the stream starts again from scratch (a running one is restarted)"
        infolog.record(
            conn,
            "info",
            "source_reset",
            message,
            source_id=source_id,
            details={k: v for k, v in result.items() if k != "source_id"},
        )
    return result


def streams(source: dict[str, Any]) -> bool:
    """Whether the stored ``source`` is run by the realtime service as a stream (its
    primary connection's type streams: MQTT, OPC UA, plugins)."""
    from factorysync.realtime import REALTIME_CONNECTION_TYPES

    primary = next((c for c in source["connections"] if c["is_primary"]), None)
    return primary is not None and primary["connection_type"] in REALTIME_CONNECTION_TYPES


def refuse_while_running(
    conn: Connection, source_id: str, action: str, *, windows: bool = True
) -> None:
    """Raise AlreadyRunning when a run of the source is in progress (``action``: what the
    caller is about to do, named in the message: "reset", "delete").

    A 'running' row left by a process of this host that is gone does not count (it is
    marked interrupted by the next scan). A realtime window is open for as long as the
    source's stream runs: the message says to disable the source first, which stops it;
    ``windows=False``: open windows do not count (a reset, which the stream heeds).
    """
    from factorysync.engine.history import REALTIME, AlreadyRunning
    from factorysync.store.processes import dead_here

    where = [hist_t.c.source_id == source_id, hist_t.c.sync_status == "running"]
    if not windows:
        where.append(hist_t.c.sync_type != REALTIME)
    running = conn.execute(
        select(hist_t.c.id, hist_t.c.worker, hist_t.c.sync_started_at, hist_t.c.sync_type)
        .where(*where)
        .order_by(hist_t.c.id.desc())
    ).first()
    if running is None or dead_here(running.worker, running.sync_started_at):
        return
    if running.sync_type == REALTIME:
        hint = (
            f"its realtime stream is open: disable it first (factorysync source disable "
            f"{source_id}), then {action} it once the stream has stopped"
        )
    else:
        hint = f"{action} it when the run has ended"
    raise AlreadyRunning(
        f"source {source_id!r} is syncing (run {running.id} on {running.worker}): {hint}"
    )


def run_record(store: Store, run_id: int) -> dict[str, Any] | None:
    """One run of the history, or None when there is no such run."""
    with store.connect() as conn:
        row = conn.execute(select(*HISTORY_ROW).where(hist_t.c.id == run_id)).mappings().first()
    return None if row is None else plain(row)


def history(
    store: Store, source_id: str | None = None, limit: int = 50, *, site: str | None = None
) -> list[dict[str, Any]]:
    """The newest runs, of one source or of the sources of ``site`` (NotFoundError when
    there is no such site)."""
    from factorysync.services.status import runs_of_site
    from factorysync.store.sites import check_site

    stmt = select(*HISTORY_ROW).order_by(hist_t.c.id.desc()).limit(limit)
    if source_id:
        stmt = stmt.where(hist_t.c.source_id == source_id)
    if site:
        stmt = stmt.where(runs_of_site(site))
    with store.connect() as conn:
        check_site(conn, site)
        return [plain(r) for r in conn.execute(stmt).mappings()]
