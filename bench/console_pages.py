"""Web console pages with many sources, over real HTTP (issue #23).

Builds a store with ``--sources`` file sources (default 500; each reads a small JSON or
CSV file), ``--history`` history rows each (every 20th source failing, with an open alert
and quarantined records), syncs a few of them for real, then starts the console server
(``factorysync serve``: uvicorn on 127.0.0.1, in its own process), logs in through the
login form and fetches every main console page ``--rounds`` times with
``Accept-Encoding: gzip``.

For each page it prints the bytes transferred (the gzip body, plus the CSS and script the
page loads, once: a first visit), the server's time from the ``Server-Timing`` header the
console sets, and the client's time (request sent to body read), each as p50 and p95, and
PASS or FAIL against the targets: at most 150 KB transferred, server p95 at most 100 ms.
Pages the server does not have (the data browser, until it exists) are listed as absent.
The exit status is 0 whatever the timings; a page that answers anything but 200 is FAIL.

    python bench/console_pages.py [--sources 500] [--rounds 50] [--history 20]
    python bench/console_pages.py --pg-url postgresql://postgres@127.0.0.1/fs_bench

``--pg-url`` must name an empty database (its tables are created). SQLite is used by
default, in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

MAX_KB = 150.0
MAX_SERVER_P95_MS = 100.0
PASSWORD = "Bench-Pass-2026"
GZIP_MIN = 1024  # bytes: smaller answers go uncompressed (api/app.py's GZipMiddleware)
SYNCED = 5  # sources synced for real: data tables for the data browser, real runs
SERVE = [sys.executable, "-m", "factorysync.cli", "serve"]
ASSET = re.compile(r'<(?:link[^>]*\shref|script[^>]*\ssrc|img[^>]*\ssrc)="(/[^"]*)"')


# -- the store ------------------------------------------------------------------------
def table_of(source_id: str) -> str:
    """Forty target tables, shared by the sources (``src_0041`` writes ``t_01``)."""
    return f"t_{int(source_id.removeprefix('src_')) % 40:02d}"


def build(store: Any, data: Path, sources: int, history: int) -> list[str]:
    """Register the sources through the services, as the API would, then add history,
    failures, alerts and quarantine entries straight through the store."""
    from sqlalchemy import insert, update

    from factorysync import services
    from factorysync.alerts import records
    from factorysync.engine.quarantine import reject, store_rejects
    from factorysync.store import accounts
    from factorysync.store.schema import data_source_registry as reg_t
    from factorysync.store.schema import data_source_sync_history as hist_t
    from factorysync.store.types import utcnow

    services.init_store(store)
    ids = []
    for i in range(sources):
        sid = f"src_{i:04d}"
        ids.append(sid)
        kind = "csv" if i % 3 == 0 else "json"
        path = data / f"{sid}.{kind}"
        content = [(n, f"M-{i % 40:02d}", 100 + (i * n) % 50) for n in range(1, 6)]
        if kind == "csv":
            path.write_text(
                "id,machine,count\n" + "".join(f"{a},{b},{c}\n" for a, b, c in content),
                encoding="utf-8",
            )
        else:
            records_ = [{"id": a, "machine": b, "count": c} for a, b, c in content]
            path.write_text(json.dumps({"data": records_}), encoding="utf-8")
        mapping: dict[str, Any] = {"primary_key": ["id"]}
        if kind == "json":
            mapping["records_path"] = "data"
        services.create_source(
            store,
            {
                "source_id": sid,
                "name": f"Line {i % 40:02d} counter {i}",
                "source_type": kind,
                "category": ["production", "quality", "energy", "maintenance"][i % 4],
                "refresh_interval": 60 + i % 300,
                "connections": [{"connection_config": {"file_path": str(path)}}],
                "mappings": [{"target_table": table_of(sid), "mapping_config": mapping}],
            },
        )
    services.sync_many(store, ids[1 : 1 + SYNCED], trigger="bench")

    now = utcnow()
    failing = [sid for i, sid in enumerate(ids) if i % 20 == 0]
    rows: list[dict[str, Any]] = []
    for i, sid in enumerate(ids):
        for r in range(history):
            started = now - timedelta(minutes=(history - r) * 5)
            failed = sid in failing and r >= history - 3
            rows.append(
                {
                    "source_id": sid,
                    "sync_type": "full",
                    "sync_status": "failed" if failed else "success",
                    "trigger": "schedule",
                    "connection_name": "primary",
                    "records_processed": 0 if failed else 5,
                    "records_inserted": 0 if failed else r % 2,
                    "records_updated": 0,
                    "records_deleted": 0,
                    "records_rejected": 0 if failed else int(r % 3 == 0),
                    "sync_duration_ms": 40 + (i + r) % 200,
                    "error_message": "file not found" if failed else None,
                    "sync_started_at": started,
                    "sync_completed_at": started + timedelta(seconds=1),
                }
            )
    with store.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(insert(hist_t), rows[chunk : chunk + 5000])
        conn.execute(
            update(reg_t)
            .where(reg_t.c.source_id.in_(failing))
            .values(status="error", error_count=3, last_error="file not found")
        )
        records.raise_alerts(
            conn,
            [
                {"source_id": sid, "rule": "consecutive_failures", "message": f"{sid} failing"}
                for sid in failing
            ],
            now,
        )
        store_rejects(
            conn,
            [
                reject(sid, table_of(sid), {"id": k, "count": "n/a"}, ["count: not a number"], None)
                for sid in failing
                for k in range(10)
            ],
            now,
        )
        accounts.create_user(conn, "bench", "admin", password=PASSWORD)
    return ids


# -- the server -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(log: Path, deadline_s: float = 300.0) -> tuple[subprocess.Popen[bytes], str]:
    """``factorysync serve`` on a free loopback port, once it answers /api/health."""
    import httpx2

    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SERVE, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"the server exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx2.get(f"{url}/api/health", timeout=2).status_code == 200:
                return process, url
        except httpx2.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the server did not answer within {deadline_s:g} s:\n{log.read_text()}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- measuring ------------------------------------------------------------------------
def log_in(client: Any) -> None:
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if csrf is None:
        raise SystemExit(f"no CSRF token on the login page ({form.status_code})")
    answer = client.post(
        "/login",
        data={"username": "bench", "password": PASSWORD, "csrf": csrf.group(1)},
        follow_redirects=False,
    )
    if answer.status_code != 303:
        raise SystemExit(f"login refused: {answer.status_code} {answer.text[:200]}")


def pages(client: Any, ids: list[str]) -> dict[str, str | None]:
    """Page name → URL (None when the server does not have the page: the data browser,
    until it exists)."""
    found: dict[str, str | None] = {
        "overview": "/",
        "sources list": "/sources",
        "sources, filtered": "/sources?status=error&q=src",
        "source page (failing)": f"/sources/{ids[0]}",
        "source page (synced)": f"/sources/{ids[1]}",
        "alerts": "/alerts",
        "add form (pick)": "/sources/new",
        "add form (csv)": "/sources/new?type=csv",
    }
    probe = client.get("/data", follow_redirects=False)
    found["data browser"] = "/data" if probe.status_code == 200 else None
    found["data table"] = f"/data/{table_of(ids[1])}" if probe.status_code == 200 else None
    return found


def server_ms(response: Any) -> float | None:
    timing = re.search(r"dur=([\d.]+)", response.headers.get("server-timing", ""))
    return float(timing.group(1)) if timing else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(client: Any, url: str, rounds: int) -> dict[str, Any]:
    first = client.get(url)  # a first visit: the page and, once, what it loads
    assets = 0
    gzipped = first.headers.get("content-encoding") == "gzip"
    for asset in sorted(set(ASSET.findall(first.text))):
        loaded = client.get(asset)
        assets += loaded.num_bytes_downloaded
        small = len(loaded.content) < GZIP_MIN  # the middleware leaves these as they are
        gzipped = gzipped and (small or loaded.headers.get("content-encoding") == "gzip")
    client_ms: list[float] = []
    server: list[float] = []
    statuses = {first.status_code}
    body, html = first.num_bytes_downloaded, len(first.content)
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url)
        client_ms.append((time.perf_counter() - started) * 1000)
        statuses.add(response.status_code)
        body = response.num_bytes_downloaded
        html = len(response.content)
        timing = server_ms(response)
        if timing is not None:
            server.append(timing)
    status = 200 if statuses == {200} else max(statuses - {200})
    return {
        "url": url,
        "status": status,
        "gzip": gzipped,
        "page_bytes": body,
        "html_bytes": html,  # the page as the browser has it, once unzipped
        "asset_bytes": assets,
        "kb": round((body + assets) / 1024, 1),
        "server_p50_ms": round(percentile(server, 0.5), 1) if server else None,
        "server_p95_ms": round(percentile(server, 0.95), 1) if server else None,
        "client_p50_ms": round(percentile(client_ms, 0.5), 1),
        "client_p95_ms": round(percentile(client_ms, 0.95), 1),
        "samples": len(client_ms),
    }


def verdict(r: dict[str, Any]) -> str:
    fast = r["server_p95_ms"] is not None and r["server_p95_ms"] <= MAX_SERVER_P95_MS
    return "PASS" if r["status"] == 200 and r["kb"] <= MAX_KB and fast else "FAIL"


def table(results: dict[str, dict[str, Any] | None]) -> list[str]:
    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}"

    lines = [
        f"{'page':<24}{'status':>7}{'gzip':>5}{'KB':>7}{'srv p50':>9}{'srv p95':>9}"
        f"{'cli p50':>9}{'cli p95':>9}  verdict"
    ]
    for name, r in results.items():
        if r is None:
            lines.append(f"{name:<24}{'—':>7}  absent (the server has no such page)")
            continue
        lines.append(
            f"{name:<24}{r['status']:>7}{'yes' if r['gzip'] else 'no':>5}{r['kb']:>7.1f}"
            f"{ms(r['server_p50_ms']):>9}"
            f"{ms(r['server_p95_ms']):>9}{ms(r['client_p50_ms']):>9}{ms(r['client_p95_ms']):>9}"
            f"  {verdict(r)}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=50, help="requests per page")
    parser.add_argument("--history", type=int, default=20, help="history rows per source")
    parser.add_argument("--pg-url", default="", help="an empty PostgreSQL database instead")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fs-console-bench-") as tmp:
        url = args.pg_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        data = Path(tmp) / "data"  # a data root of its own, without the store or the key
        data.mkdir()
        os.environ.update(
            {
                "FACTORYSYNC_DATABASE_URL": url,
                "FACTORYSYNC_SECRET_KEY": "",
                "FACTORYSYNC_SECRET_KEY_FILE": str(Path(tmp) / "bench.key"),
                "FACTORYSYNC_DATA_ROOTS": str(data),
                "FACTORYSYNC_LOG_LEVEL": "WARNING",
            }
        )
        import httpx2

        from factorysync.settings import Settings
        from factorysync.store.store import Store

        store = Store(Settings())
        clock = time.perf_counter()
        ids = build(store, data, args.sources, args.history)
        built = time.perf_counter() - clock
        store.dispose()

        process, base = start_server(Path(tmp) / "server.log")
        try:
            headers = {"Accept-Encoding": "gzip"}
            with httpx2.Client(base_url=base, headers=headers, timeout=120) as client:
                log_in(client)
                results = {
                    name: None if path is None else measure(client, path, args.rounds)
                    for name, path in pages(client, ids).items()
                }
        finally:
            stop_server(process)

    kind = "postgresql" if args.pg_url else "sqlite"
    print(
        f"console pages: {args.sources} sources, {args.history} runs each, {kind}, "
        f"{args.rounds} requests per page over HTTP (store built in {built:.1f} s)"
    )
    print(
        f"targets: at most {MAX_KB:g} KB transferred, server p95 at most {MAX_SERVER_P95_MS:g} ms"
    )
    print("\n".join(table(results)))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
