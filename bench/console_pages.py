"""Web console page times with many sources.

Builds a store with ``--sources`` sources (default 500; 5 % failing with open alerts),
``--runs`` history rows each, logs in as an admin and requests every main console page
``--repeat`` times through the app in this process (no network in between). Prints the
median, p95 and max server time per page; the target is under 300 ms.

    python bench/console_pages.py [--sources 500] [--runs 20] [--repeat 30]
    python bench/console_pages.py --pg-url postgresql://postgres@127.0.0.1/fs_bench

``--pg-url`` must name an empty database (its tables are created). SQLite is used by
default, in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

TARGET_MS = 300.0
PASSWORD = "Bench-Pass-2026"


def build(store: object, sources: int, runs: int) -> list[str]:
    from sqlalchemy import insert, update

    from factorysync import services
    from factorysync.alerts import records
    from factorysync.store import accounts as auth
    from factorysync.store.schema import data_source_registry as reg_t
    from factorysync.store.schema import data_source_sync_history as hist_t
    from factorysync.store.types import utcnow

    services.init_store(store)  # type: ignore[arg-type]
    kinds = ["json", "csv", "excel", "database", "api", "command", "mqtt", "opcua"]
    ids = []
    declarations = []
    for i in range(sources):
        sid = f"src_{i:04d}"
        ids.append(sid)
        kind = kinds[i % len(kinds)]
        declarations.append(
            {
                "source_id": sid,
                "name": f"Source {i}",
                "source_type": "json",
                "category": ["production", "quality", "energy", "maintenance"][i % 4],
                "refresh_interval": 60 + i % 300,
                "connections": [{"connection_config": {"file_path": f"data/{sid}.{kind}.json"}}],
                "mappings": [{"target_table": f"t_{i % 40}"}],
            }
        )
    from factorysync.intake import parse_source
    from factorysync.store.registry_save import save_source

    now = utcnow()
    with store.begin() as conn:  # type: ignore[attr-defined]
        for raw in declarations:
            decl, problems = parse_source(raw)
            assert decl is not None and not problems, problems
            save_source(conn, decl, store.box)  # type: ignore[attr-defined]
        history = []
        for i, sid in enumerate(ids):
            for r in range(runs):
                started = now - timedelta(minutes=(runs - r) * 5)
                failed = i % 20 == 0 and r >= runs - 3
                history.append(
                    {
                        "source_id": sid,
                        "sync_type": "full",
                        "sync_status": "failed" if failed else "success",
                        "trigger": "schedule",
                        "connection_name": "primary",
                        "records_processed": 0 if failed else 100 + r,
                        "records_inserted": 0 if failed else r,
                        "records_updated": 0,
                        "records_deleted": 0,
                        "records_rejected": 0,
                        "sync_duration_ms": 40 + (i + r) % 200,
                        "error_message": "file not found" if failed else None,
                        "sync_started_at": started,
                        "sync_completed_at": started + timedelta(seconds=1),
                    }
                )
        for chunk in range(0, len(history), 5000):
            conn.execute(insert(hist_t), history[chunk : chunk + 5000])
        failing = [sid for i, sid in enumerate(ids) if i % 20 == 0]
        conn.execute(
            update(reg_t)
            .where(reg_t.c.source_id.in_(failing))
            .values(status="error", error_count=5, last_error="file not found")
        )
        conn.execute(
            update(reg_t)
            .where(reg_t.c.source_id.not_in(failing))
            .values(last_sync=now, next_sync=now + timedelta(minutes=5))
        )
        records.raise_alerts(
            conn,
            [
                {"source_id": sid, "rule": "consecutive_failures", "message": f"{sid} failing"}
                for sid in failing
            ],
            now,
        )
        auth.create_user(conn, "bench", "admin", password=PASSWORD)
    return ids


def measure(store: object, ids: list[str], repeat: int) -> list[dict[str, object]]:
    from fastapi.testclient import TestClient

    from factorysync.api import create_app

    pages = {
        "overview /": "/",
        "data resources /sources": "/sources",
        "live rows /sources/rows": "/sources/rows",
        "filtered /sources?status=error": "/sources?status=error&q=src",
        "source detail": f"/sources/{ids[0]}",
        "alerts /alerts": "/alerts",
        "add source form (csv)": "/sources/new?type=csv",
        "edit source form": f"/sources/{ids[1]}/edit",
    }
    results = []
    with TestClient(create_app(store)) as client:  # type: ignore[arg-type]
        login = client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login)
        assert csrf is not None
        answer = client.post(
            "/login",
            data={"username": "bench", "password": PASSWORD, "csrf": csrf.group(1)},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        for name, url in pages.items():
            assert client.get(url).status_code == 200, url  # warm-up: templates compiled
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (url, response.status_code)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            results.append(
                {
                    "page": name,
                    "url": url,
                    "samples": len(times),
                    "median_ms": round(statistics.median(times), 1),
                    "p95_ms": round(p95, 1),
                    "max_ms": round(times[-1], 1),
                    "bytes": len(response.content),
                }
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20, help="history rows per source")
    parser.add_argument("--repeat", type=int, default=30, help="requests per page")
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
                "FACTORYSYNC_SECRET_KEY_FILE": str(Path(tmp) / "bench.key"),
                "FACTORYSYNC_DATA_ROOTS": str(data),
                "FACTORYSYNC_API_CACHE_S": "0",
                "FACTORYSYNC_LOG_LEVEL": "WARNING",
            }
        )
        from factorysync.settings import Settings
        from factorysync.store.store import Store

        store = Store(Settings())
        clock = time.perf_counter()
        ids = build(store, args.sources, args.runs)
        built = time.perf_counter() - clock
        results = measure(store, ids, args.repeat)
        store.dispose()

    kind = "postgresql" if args.pg_url else "sqlite"
    print(
        f"console pages: {args.sources} sources, {args.runs} runs each, {kind}, "
        f"{args.repeat} requests per page (store built in {built:.1f} s)"
    )
    print(
        f"{'page':<34}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}{'KiB':>7}"
        f"  under {TARGET_MS:.0f} ms"
    )
    for r in results:
        ok = "yes" if float(r["p95_ms"]) < TARGET_MS else "NO"  # type: ignore[arg-type]
        print(
            f"{r['page']:<34}{r['median_ms']:>11}{r['p95_ms']:>9}{r['max_ms']:>9}"
            f"{int(r['bytes']) // 1024:>7}  {ok}"  # type: ignore[call-overload]
        )
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
