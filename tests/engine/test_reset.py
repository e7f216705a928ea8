"""``factorysync source reset`` and ``POST /api/sources/{id}/reset``: an incremental
source's cursor and connector state are forgotten, the next run reads everything again
and counts exactly; the event log says who reset what."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from factorysync import services
from factorysync.engine.runner import AlreadyRunning, Runner
from factorysync.engine.state import CONNECTOR_KEY, CURSOR_KEY, SHAPE_KEY
from factorysync.errors import NotFoundError
from factorysync.store.registry import get_source
from factorysync.store.schema import data_source_sync_state as state_t
from factorysync.store.schema import infolog
from factorysync.store.store import Store
from tests.api.conftest import Api, make_api
from tests.conftest import run_cli, write_json
from tests.engine.test_runner import counts, json_source, register, table_rows


def readings(ids: range) -> list[dict[str, Any]]:
    """Rows of a machine log; two rows share each timestamp."""
    return [{"id": i, "ts": f"2026-01-05T{i // 2:02d}:00:00+07:00", "v": i * 10} for i in ids]


def incremental(source_id: str, path: Path, **extra: Any) -> dict[str, Any]:
    return json_source(
        source_id,
        path,
        primary_key="id",
        cursor_field="ts",
        sync_strategy="incremental",
        **extra,
    )


def state_keys(store: Store, source_id: str) -> dict[tuple[int, str], Any]:
    """The source's state entries where reads start (not the unchanged-source marker,
    which each run rewrites)."""
    with store.connect() as conn:
        rows = conn.execute(
            select(state_t.c.mapping_id, state_t.c.state_key, state_t.c.state).where(
                state_t.c.source_id == source_id, state_t.c.state_key != "unchanged"
            )
        ).all()
    return {(r.mapping_id, r.state_key): r.state for r in rows}


def reset_events(store: Store, source_id: str) -> list[Any]:
    with store.connect() as conn:
        return list(
            conn.execute(
                select(infolog)
                .where(infolog.c.source_id == source_id, infolog.c.event == "source_reset")
                .order_by(infolog.c.id)
            )
        )


def test_cli_reset_backfills_and_counts_exactly(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "log.json", readings(range(1, 7)))
    register(store, incremental("log", path))
    runner = Runner(store)
    assert counts(runner.sync("log")) == (6, 0, 0)
    # A row arrives late, older than the cursor: incremental runs never see it.
    write_json(path, readings(range(0, 7)))
    assert counts(runner.sync("log")) == (0, 0, 0)
    assert 0 not in {r["id"] for r in table_rows(store, "log")}
    before = state_keys(store, "log")
    assert {key for _, key in before} == {CURSOR_KEY, CONNECTOR_KEY, SHAPE_KEY}

    proc = run_cli("source", "reset", "log", check=True)
    assert "log → log: reset (cursor was 2026-01-04T20:00:00+00:00" in proc.stdout
    assert "connector state cleared" in proc.stdout
    assert "reads the whole source again" in proc.stdout
    # The shape of the source's records stays (the API keeps serving rows in it).
    assert {key for _, key in state_keys(store, "log")} == {SHAPE_KEY}

    backfill = runner.sync("log")
    assert backfill.sync_status == "success", backfill.error_message
    assert (backfill.records_processed, *counts(backfill)) == (7, 1, 0, 0)
    assert sorted(r["id"] for r in table_rows(store, "log")) == list(range(7))
    # The cursor is back where it was: the newest row is the same.
    cursor = next(k for k in before if k[1] == CURSOR_KEY)
    assert state_keys(store, "log")[cursor] == before[cursor]

    # Reset again with nothing changed upstream: everything is read, nothing written.
    run_cli("source", "reset", "log", check=True)
    again = runner.sync("log")
    assert (again.records_processed, *counts(again)) == (7, 0, 0, 0)

    events = reset_events(store, "log")
    assert len(events) == 2
    first = events[0]
    assert first.level == "info" and first.details["reset_by"].startswith("cli")
    assert first.details["mappings"] == {
        "log": {"cursor": "2026-01-04T20:00:00+00:00", "connector_state": True}
    }
    assert "reset by cli" in first.message


def test_reset_one_mapping_keeps_the_others(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "log.json", readings(range(6)))
    source = incremental("log", path)
    source["mappings"].append(
        {
            "target_table": "log_copy",
            "sync_strategy": "incremental",
            "mapping_config": {"primary_key": "id", "cursor_field": "ts"},
        }
    )
    register(store, source)
    assert counts(Runner(store).sync("log")) == (12, 0, 0)
    before = state_keys(store, "log")

    proc = run_cli("source", "reset", "log", "--mapping", "log_copy", "--json", check=True)
    answer = orjson.loads(proc.stdout)
    assert list(answer["mappings"]) == ["log_copy"]
    after = state_keys(store, "log")
    with store.connect() as conn:
        ids = {m["target_table"]: m["id"] for m in get_source(conn, "log")["mappings"]}
    assert (ids["log_copy"], CURSOR_KEY) in before
    assert (ids["log_copy"], CURSOR_KEY) not in after
    assert (ids["log_copy"], CONNECTOR_KEY) not in after
    kept = (ids["log"], CURSOR_KEY)
    assert after[kept] == before[kept]

    missing = run_cli("source", "reset", "log", "--mapping", "nope")
    assert missing.returncode != 0
    assert "source 'log' has no mapping to target table 'nope'" in missing.stderr
    assert "log, log_copy" in missing.stderr
    unknown = run_cli("source", "reset", "ghost")
    assert unknown.returncode != 0 and "no source 'ghost'" in unknown.stderr
    # Nothing else was reset by the refused calls.
    assert state_keys(store, "log") == after


def test_reset_refused_while_a_run_is_in_progress(store: Store, data_dir: Path) -> None:
    path = write_json(data_dir / "log.json", readings(range(4)))
    register(store, incremental("log", path))
    runner = Runner(store)
    runner.sync("log")
    before = state_keys(store, "log")
    claim = runner.claim("log")  # the run's 'running' row is committed
    try:
        with pytest.raises(AlreadyRunning, match="'log' is already syncing"):
            services.reset_source(store, "log", reset_by="test")
        # Another process sees the run in the history.
        other = run_cli("source", "reset", "log")
        assert other.returncode == 1
        assert f"source 'log' is syncing (run {claim.run_id} on " in other.stderr
        assert "reset it when the run has ended" in other.stderr
    finally:
        runner.execute(claim)
    assert state_keys(store, "log") == before and reset_events(store, "log") == []
    with pytest.raises(NotFoundError, match="no source 'ghost'"):
        services.reset_source(store, "ghost", reset_by="test")


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


def test_api_reset_then_sync(api: Api, data_dir: Path) -> None:
    path = write_json(data_dir / "log.json", readings(range(1, 9)))
    register(api.store, incremental("log", path))
    first = api.post("/api/sources/log/sync?wait_s=600", role="operator")
    assert first.status_code == 200 and first.json()["records_inserted"] == 8
    write_json(path, readings(range(0, 9)))

    assert api.post("/api/sources/log/reset", role="viewer").status_code == 403
    assert api.post("/api/sources/log/reset", role=None).status_code == 401
    assert api.post("/api/sources/ghost/reset", role="operator").status_code == 404
    wrong = api.post("/api/sources/log/reset?mapping=other", role="operator")
    assert wrong.status_code == 404 and "no mapping to target table 'other'" in wrong.text

    answer = api.post("/api/sources/log/reset?mapping=log", role="operator")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "source_id": "log",
        "reset_by": "api:operator-user",
        "mappings": {"log": {"cursor": "2026-01-04T21:00:00+00:00", "connector_state": True}},
        "stream": None,  # not a streaming source
    }
    run = api.post("/api/sources/log/sync?wait_s=600", role="operator").json()
    assert run["sync_status"] == "success", run["error_message"]
    assert (run["records_processed"], run["records_inserted"], run["records_updated"]) == (9, 1, 0)

    assert api.post("/api/sources/log/reset", role="operator").status_code == 200
    run = api.post("/api/sources/log/sync?wait_s=600", role="operator").json()
    assert (run["records_processed"], run["records_inserted"], run["records_updated"]) == (9, 0, 0)
    assert [e.details["reset_by"] for e in reset_events(api.store, "log")] == [
        "api:operator-user"
    ] * 2
