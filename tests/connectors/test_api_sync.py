"""API sources through the engine and the command line, against real HTTP servers:
a 10,000-record paged API, incremental cursors, secrets kept out of the store and the
logs, ``source test``/``discover``, and the shared rate limit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
from sqlalchemy import select, text

from factorysync.engine.runner import Runner
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import metadata
from factorysync.store.store import Store
from tests.conftest import run_cli
from tests.connectors.http_server import HttpServer, Reply, Request
from tests.engine.test_runner import register, table_rows


@pytest.fixture
def fast(store: Store) -> Store:
    """The store, with retry back-off in milliseconds."""
    store.settings.retry_backoff_s = 0.01
    return store


def api_source(
    source_id: str,
    config: dict[str, Any],
    auth: dict[str, Any] | None = None,
    **mapping: Any,
) -> dict[str, Any]:
    strategy = mapping.pop("sync_strategy", "full")
    return {
        "source_id": source_id,
        "name": source_id.title(),
        "source_type": "api",
        "refresh_interval": 60,
        "connections": [{"connection_config": config, "authentication_config": auth or {}}],
        "mappings": [
            {"target_table": source_id, "sync_strategy": strategy, "mapping_config": mapping}
        ],
    }


def counts(result: Any) -> tuple[int, int, int]:
    return result.records_inserted, result.records_updated, result.records_deleted


# -- a large paged API -----------------------------------------------------------------------
class Production:
    """10,000 production records behind offset/limit paging; can fail one page on demand."""

    def __init__(self, n: int) -> None:
        self.rows = [
            {
                "id": i,
                "machine": f"M-{i % 40:02d}",
                "good": i % 97,
                "ts": f"2026-01-05T{i % 24:02d}:00:00Z",
            }
            for i in range(n)
        ]
        self.fail_at: int | None = None

    def __call__(self, req: Request) -> Reply:
        offset, limit = int(req.arg("offset") or 0), int(req.arg("limit") or 100)
        if offset == self.fail_at:
            return Reply(400, {"error": "offset out of range"})
        return Reply(200, {"data": self.rows[offset : offset + limit], "total": len(self.rows)})


def test_10000_records_over_100_pages(fast: Store, serve: Callable[..., HttpServer]) -> None:
    api = Production(10_000)
    server = serve(api)
    config = {
        "base_url": server.url,
        "endpoint": "/api/production",
        "pagination": {"type": "offset", "limit": 100},
    }
    register(fast, api_source("production", config, records_path="data", primary_key="id"))
    runner = Runner(fast)

    first = runner.sync("production")
    assert first.sync_status == "success", first.error_message
    assert first.records_processed == 10_000 and counts(first) == (10_000, 0, 0)
    # check() reads page 1; the read 100 full pages and the empty one that ends it.
    assert len(server.requests) == 1 + 101
    assert len(table_rows(fast, "production")) == 10_000

    # Rows gone from the API are deleted.
    removed = {r["id"] for r in api.rows[::400]}
    api.rows = [r for r in api.rows if r["id"] not in removed]
    again = runner.sync("production")
    assert again.sync_status == "success" and counts(again) == (0, 0, len(removed))
    assert {r["id"] for r in table_rows(fast, "production")}.isdisjoint(removed)


def test_full_sync_deletes_only_after_every_page(
    fast: Store, serve: Callable[..., HttpServer]
) -> None:
    api = Production(500)
    server = serve(api)
    config = {"url": server.url + "/p", "pagination": {"type": "offset", "limit": 100}}
    register(fast, api_source("shift", config, records_path="data", primary_key="id"))
    runner = Runner(fast)
    assert counts(runner.sync("shift")) == (500, 0, 0)

    api.rows = api.rows[:250]
    api.fail_at = 200
    failed = runner.sync("shift")
    assert failed.sync_status == "failed"
    assert failed.error_message == (
        f"connection 'primary' failed: GET {server.url}/p?offset=200&limit=100: "
        """HTTP 400 Bad Request: '{"error":"offset out of range"}'"""
    )
    assert len(table_rows(fast, "shift")) == 500

    api.fail_at = None
    assert counts(runner.sync("shift")) == (0, 0, 250)


# -- incremental -------------------------------------------------------------------------------
def readings(n: int, start: datetime) -> list[dict[str, Any]]:
    return [
        {"sensor": "T1", "ts": (start + timedelta(minutes=i)).isoformat(), "value": 20.0 + i}
        for i in range(n)
    ]


def test_incremental_cursor_in_a_query_parameter(
    fast: Store, serve: Callable[..., HttpServer]
) -> None:
    start = datetime.fromisoformat("2026-01-05T06:00:00+07:00")
    rows = readings(5, start)

    def app(req: Request) -> Reply:
        since = req.arg("since")
        found = [r for r in rows if since is None or r["ts"] >= since]
        return Reply(200, {"data": found})

    server = serve(app)
    config = {"url": server.url + "/readings", "params": {"since": "{{cursor}}", "site": "P1"}}
    register(
        fast,
        api_source(
            "readings",
            config,
            records_path="data",
            primary_key=["sensor", "ts"],
            cursor_field="ts",
            sync_strategy="incremental",
        ),
    )
    runner = Runner(fast)
    assert counts(runner.sync("readings")) == (5, 0, 0)
    assert [r.arg("since") for r in server.requests] == [None, None]  # check, read

    rows.extend(readings(8, start)[5:])
    second = runner.sync("readings")
    assert counts(second) == (3, 0, 0)
    since = server.requests[-1].arg("since")
    assert since is not None and datetime.fromisoformat(since) == start + timedelta(minutes=4)
    assert server.requests[-1].arg("site") == "P1"


def test_incremental_cursor_in_the_body_as_epoch_ms(
    fast: Store, serve: Callable[..., HttpServer]
) -> None:
    start = datetime.fromisoformat("2026-01-05T06:00:00+00:00")
    rows = readings(6, start)

    def app(req: Request) -> Reply:
        after = (req.json() or {}).get("filter", {}).get("after_ms")
        found = [
            r
            for r in rows
            if after is None or datetime.fromisoformat(r["ts"]).timestamp() * 1000 >= after
        ]
        return Reply(200, {"data": found})

    server = serve(app)
    config = {
        "url": server.url + "/query",
        "method": "POST",
        "json": {"filter": {"sensor": "T1", "after_ms": "{{cursor}}"}},
        "cursor_format": "epoch_ms",
    }
    register(
        fast,
        api_source(
            "epoch",
            config,
            records_path="data",
            primary_key=["sensor", "ts"],
            cursor_field="ts",
            lookback=120,
            sync_strategy="incremental",
        ),
    )
    runner = Runner(fast)
    assert counts(runner.sync("epoch")) == (6, 0, 0)
    assert server.requests[-1].json() == {"filter": {"sensor": "T1"}}
    assert counts(runner.sync("epoch")) == (0, 0, 0)
    latest = start + timedelta(minutes=5)
    expected = int((latest - timedelta(seconds=120)).timestamp() * 1000)
    assert server.requests[-1].json() == {"filter": {"sensor": "T1", "after_ms": expected}}


# -- secrets ---------------------------------------------------------------------------------
HEADER_TOKEN = "hdr-7Qx9-Secret"
QUERY_KEY = "qry/8Kp+2=Secret"
BODY_TOKEN = "body-3Lm5-Secret"
SECRETS = (HEADER_TOKEN, QUERY_KEY, BODY_TOKEN)


def leaks(found: str) -> list[str]:
    return [
        form
        for secret in SECRETS
        for form in {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
        if form in found
    ]


def store_text(store: Store) -> str:
    """Every row of every registry table and every target table, as text."""
    parts = []
    with store.connect() as conn:
        for table in metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in conn.execute(select(table))]
        names = conn.execute(select(hist_t.c.source_id).distinct()).scalars().all()
        for name in names:
            for row in conn.execute(text(f'SELECT * FROM "{name}"')):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_secrets_never_reach_history_infolog_or_logs(
    fast: Store,
    serve: Callable[..., HttpServer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sqlalchemy")
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FS_TEST_BEARER", HEADER_TOKEN)
    mode = {"now": "ok"}

    def echo(req: Request) -> str:
        return orjson.dumps(
            {"target": req.target, "headers": req.headers, "body": req.json()}
        ).decode()

    other = serve(lambda req: Reply(400, echo(req)))

    def app(req: Request) -> Reply:
        now = mode["now"]
        if now == "ok":
            assert req.headers["authorization"] == f"Bearer {HEADER_TOKEN}"
            assert req.arg("access_code") == QUERY_KEY
            assert req.json() == {"auth": {"token": BODY_TOKEN}, "line": "A"}
            return Reply(200, {"data": [{"id": 1, "good": 10}]})
        if now == "redirect":
            location = f"http://localhost:{other.port}/landing?access_code={quote(QUERY_KEY)}&t={HEADER_TOKEN}"
            return Reply(307, "", {"Location": location, "X-Echo": HEADER_TOKEN})
        if now == "not-json":
            return Reply(200, "token accepted: " + echo(req), {"Content-Type": "text/plain"})
        status = {"401": 401, "500": 500}[now]
        return Reply(status, echo(req), {"Content-Type": "text/plain", "X-Echo": BODY_TOKEN})

    server = serve(app)
    config = {
        "url": server.url + "/api/counts",
        "method": "POST",
        "params": {"access_code": "{{code}}"},
        "json": {"auth": {"token": "{{body_token}}"}, "line": "A"},
        "auth": {"type": "bearer"},
        "retries": 1,
    }
    auth = {"token": "${env:FS_TEST_BEARER}", "code": QUERY_KEY, "body_token": BODY_TOKEN}
    register(fast, api_source("counts", config, auth, records_path="data", primary_key="id"))
    runner = Runner(fast)
    outputs = []

    assert runner.sync("counts").sync_status == "success"
    for now in ("401", "500", "not-json"):
        mode["now"] = now
        result = runner.sync("counts")
        assert result.sync_status == "failed" and "***" in (result.error_message or "")
    mode["now"] = "redirect"
    result = runner.sync("counts")
    assert "redirect to another host refused: the request body" in (result.error_message or "")
    # A GET follows it: the other host gets no credentials, and its echo is masked.
    config |= {"method": "GET", "json": None}
    register(fast, api_source("counts", config, auth, records_path="data", primary_key="id"))
    result = runner.sync("counts")
    assert result.sync_status == "failed" and "HTTP 400" in (result.error_message or "")
    assert HEADER_TOKEN not in other.requests[-1].headers.get("authorization", "")

    for command in (("source", "test", "counts"), ("source", "sync", "counts")):
        proc = run_cli(*command)
        assert proc.returncode != 0
        outputs += [proc.stdout, proc.stderr]
    mode["now"] = "401"
    proc = run_cli("source", "discover", "counts")
    assert proc.returncode != 0 and "HTTP 401" in proc.stderr
    outputs += [proc.stdout, proc.stderr]

    assert len(caplog.records) > 20  # httpx and httpcore did log
    assert leaks(caplog.text) == []
    assert leaks(store_text(fast)) == []
    assert leaks("\n".join(outputs)) == []


# -- the command line --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite"])
def test_source_test_and_discover(store: Store, serve: Callable[..., HttpServer]) -> None:
    rows = [{"machineId": f"M-{i}", "oee": 0.5 + i / 100, "running": i % 2 == 0} for i in range(50)]

    def app(req: Request) -> Reply:
        if req.headers.get("x-api-key") != "k-31415":
            return Reply(403, {"error": "forbidden"})
        page = int(req.arg("page") or 1)
        return Reply(200, {"items": rows[(page - 1) * 20 : page * 20]})

    server = serve(app)
    config = {
        "url": server.url + "/machines",
        "pagination": {"type": "page"},
        "auth": {"type": "api_key"},
    }
    register(
        store,
        api_source("machines", config, {"api_key": "k-31415"}, records_path="items"),
        api_source("locked", config, {"api_key": "wrong-key"}, records_path="items"),
    )
    ok = run_cli("source", "test", "machines")
    assert ok.returncode == 0, ok.stderr
    assert f"GET {server.url}/machines?page=1" in ok.stdout and "HTTP 200" in ok.stdout

    server.requests.clear()
    found = run_cli("source", "discover", "machines", "--json", check=True)
    fields = {f["name"]: f for f in orjson.loads(found.stdout)["fields"]}
    assert set(fields) == {"machineId", "oee", "running"}
    assert fields["oee"]["kind"] == "float" and fields["running"]["kind"] == "boolean"
    assert [r.arg("page") for r in server.requests] == ["1"]  # the first page only

    locked = run_cli("source", "test", "locked")
    assert locked.returncode == 1
    assert "HTTP 403 Forbidden" in locked.stderr and "wrong-key" not in locked.stderr


# -- the shared rate limit -------------------------------------------------------------------
def never_faster_than(arrivals: list[float], began: float, interval: float) -> None:
    """The limiter gives each request a start at least ``interval`` after the one
    before, from ``began`` on; a request reaches the server after its start. So the k-th
    arrival (k from 0) comes no earlier than ``began + k * interval``, however late a
    busy machine makes any of them: a limit not kept breaks this as requests pile up."""
    for k, at in enumerate(sorted(arrivals)):
        assert at >= began + k * interval - 0.001, (k, at - began, k * interval)


def run_syncs(store: Store, source_ids: list[str], seconds: float) -> list[Any]:
    """Sync each source over and over, each in its own thread, for ``seconds`` (and each
    at least once, however late its thread starts)."""
    end = time.monotonic() + seconds
    results: list[Any] = []

    def loop(source_id: str) -> None:
        runner = Runner(store)
        while True:
            results.append(runner.sync(source_id))
            if time.monotonic() >= end:
                return

    threads = [threading.Thread(target=loop, args=(sid,)) for sid in source_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def paged_app(req: Request) -> Reply:
    page = int(req.arg("page") or 1)
    return Reply(200, {"data": [{"id": i} for i in range(10)] if page <= 3 else []})


@pytest.mark.parametrize("backend", ["sqlite"])
def test_rate_limit_spaces_requests(store: Store, serve: Callable[..., HttpServer]) -> None:
    server = serve(paged_app)
    config = {"url": server.url, "pagination": {"type": "page"}, "rate_limit": 600}
    register(store, *(api_source(f"r{i}", config, records_path="data") for i in range(2)))
    began = time.monotonic()
    results = run_syncs(store, ["r0", "r1"], 2.0)
    assert results and all(r.sync_status == "success" for r in results)
    # 600 per minute is one each 0.1 s, whichever source sends it.
    never_faster_than([r.at for r in server.requests], began, 0.1)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_rate_limit_holds_over_a_minute(store: Store, serve: Callable[..., HttpServer]) -> None:
    """Three sources on one API share its 120 requests per minute."""
    limit = 120
    server = serve(paged_app)
    config = {"url": server.url + "/api", "pagination": {"type": "page"}, "rate_limit": limit}
    sources = [f"line{i}" for i in range(3)]
    register(store, *(api_source(sid, config, records_path="data") for sid in sources))
    began = time.monotonic()
    results = run_syncs(store, sources, 62)
    assert {r.sync_status for r in results} == {"success"}
    assert {r.source_id for r in results} == set(sources)
    # Never ahead of `limit` a minute, counted from the start; without the limit, three
    # threads would send thousands of requests a minute.
    never_faster_than([r.at for r in server.requests], began, 60 / limit)
