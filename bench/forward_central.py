"""Forwarding benchmark, end to end: a plant's changes into the central store, rows per
second and lag.

Everything runs as it would in a group of plants, on loopback: a ``nats-server -js`` on
a free port (temporary folder), a throw-away central PostgreSQL database with
``factorysync init`` and a ``factorysync central --no-serve`` process, a plant store
(SQLite file, or a throw-away PostgreSQL database) written by this script with
forwarding on (site ``bench``), and a ``factorysync forward`` process publishing the
plant's outbox. Then:

* first load: a CSV of ``--rows`` production records synced at the plant (a full sync);
  the time until the central ``production`` table holds every row with the same content
  checksum as the plant's, counted from the start of the plant sync and from its end —
  plant → central rows/s;
* steady: a realtime source at the plant writes ``--changes-per-min`` changes a minute
  (one flush a second: 4 updates of existing keys to 1 new key) for ``--steady-s``
  seconds. Each change carries a version number and the wall clock at its write; the
  central table is read every 50 ms and the lag of a change is the time from its write
  to the first read that shows its key at that version or later. Reported: p50, p99
  and max lag, changes never seen at the central (lost) and versions seen going back
  or keys held twice (duplicated), both of which must be 0.

    python bench/forward_central.py [--rows 1000000] [--changes-per-min 10000]
        [--steady-s 60] [--plant-store sqlite|postgresql] [--pg-url URL] [--json PATH]

A smoke run: ``--rows 5000 --steady-s 5 --changes-per-min 1200``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from common import DEFAULT_PG, PgDatabase, write_production_csv
from forward_throughput import declare_realtime, first_load, make_store, start_nats

PG_ADMIN = os.environ.get("FACTORYSYNC_BENCH_PG_URL", DEFAULT_PG)
SITE = "bench"
STREAM = "FACTORYSYNC"
POLL_S = 0.05  # the steady phase's reads of the central table
LOAD_POLL_S = 0.25  # the first load's: a count of up to --rows rows each time
CONVERGE_LIMIT_S = float(os.environ.get("FACTORYSYNC_BENCH_CONVERGE_S", "3600"))
STEADY_COLUMNS = "_source_id, id, ver, qty, state, written_at, _row_hash, _deleted_at"


# -- processes ---------------------------------------------------------------------------
def spawn(args: list[str], folder: Path, env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
    """A ``factorysync`` command in the background, its output in ``folder/log.log``."""
    with (folder / f"{log}.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "factorysync.cli", *args],
            cwd=folder,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)


def alive(process: subprocess.Popen[bytes], folder: Path, log: str) -> None:
    if process.poll() is not None:
        tail = (folder / f"{log}.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"factorysync {log} ended ({process.returncode}):\n{tail}")


def env_of(folder: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "FACTORYSYNC_DATABASE_URL": database_url,
        "FACTORYSYNC_DATA_ROOTS": str(folder / "data"),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_SECRET_KEY_FILE": str(folder / "factorysync.key"),
        "FACTORYSYNC_SITE": SITE,
        "FACTORYSYNC_FORWARD_STREAM": STREAM,
        "FACTORYSYNC_LOG_LEVEL": "WARNING",
        **extra,
    }


def consumers(url: str) -> int:
    """Consumers of the stream (0 while it does not exist yet)."""
    import asyncio

    async def count() -> int:
        import nats

        nc = await nats.connect(url)
        try:
            info = await nc.jsm().stream_info(STREAM)
            return int(info.state.consumer_count)
        except Exception:
            return -1
        finally:
            await nc.close()

    return asyncio.run(count())


def wait_for(what: str, check: Any, limit_s: float, *procs: tuple[Any, Path, str]) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        for proc in procs:
            alive(*proc)
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


# -- reading both sides ------------------------------------------------------------------
class Central:
    """The central PostgreSQL store, read directly (autocommit: each read a fresh view)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            return list(self.conn.execute(sql, params).fetchall())
        except psycopg.errors.UndefinedTable:
            return []

    def count(self, table: str) -> int:
        found = self.rows(f"SELECT count(*) FROM {table} WHERE _site = %s", SITE)
        return int(found[0][0]) if found else 0

    def doubled(self, table: str, key: str) -> int:
        """Keys held by more than one row (the unique index should make this 0)."""
        found = self.rows(
            f"SELECT count(*) - count(DISTINCT (_source_id, {key})) FROM {table} WHERE _site = %s",
            SITE,
        )
        return int(found[0][0]) if found else 0

    def checksum(self, table: str, columns: str, order: str) -> tuple[int, str]:
        import psycopg

        with psycopg.connect(self.url) as conn, conn.cursor(name="checksum") as cur:
            cur.itersize = 10_000
            cur.execute(f"SELECT {columns} FROM {table} WHERE _site = %s ORDER BY {order}", (SITE,))
            return digest(cur)

    def close(self) -> None:
        self.conn.close()


def plant_checksum(store: Any, table: str, columns: str, order: str) -> tuple[int, str]:
    from sqlalchemy import text

    with store.connect() as conn:
        found = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            text(f"SELECT {columns} FROM {table} ORDER BY {order}")
        )
        return digest(tuple(r) for r in found)


def digest(rows: Any) -> tuple[int, str]:
    """(count, sha256) of rows in key order, values made comparable across SQLite and
    PostgreSQL (times in UTC, decimals as floats)."""
    h = hashlib.sha256()
    count = 0
    for row in rows:
        h.update(orjson.dumps([_plain(v) for v in row]))
        count += 1
    return count, h.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return value


def production_columns(store: Any) -> str:
    from sqlalchemy import inspect

    with store.connect() as conn:
        names = [c["name"] for c in inspect(conn).get_columns("production")]
    keep = [n for n in names if not n.startswith("_")] + ["_source_id", "_row_hash", "_deleted_at"]
    return ", ".join(keep)


# -- first load --------------------------------------------------------------------------
def load(store: Any, csv: Path, central: Central, rows: int) -> dict[str, float]:
    """Sync the CSV at the plant; wait for the central table to match it."""
    clock = time.perf_counter()
    sync_s = first_load(store, csv)
    ended = time.perf_counter()
    began = ended - sync_s
    columns = production_columns(store)
    plant = plant_checksum(store, "production", columns, "_source_id, id")
    if plant[0] != rows:
        raise SystemExit(f"the plant holds {plant[0]:,} rows, not {rows:,}")
    deadline = clock + CONVERGE_LIMIT_S
    while True:
        seen = time.perf_counter()
        full = central.count("production") >= rows
        if full and central.checksum("production", columns, "_source_id, id") == plant:
            break
        if seen > deadline:
            raise SystemExit(f"the central table did not match within {CONVERGE_LIMIT_S:.0f} s")
        time.sleep(LOAD_POLL_S)
    return {
        "plant_sync_s": sync_s,
        "to_central_from_start_s": seen - began,
        "to_central_after_sync_s": seen - ended,
        "rows_per_s_from_start": rows / (seen - began),
        "rows_per_s_after_sync": rows / max(seen - ended, 1e-9),
        "central_rows": central.count("production"),
        "plant_rows": plant[0],
        "duplicated": central.doubled("production", "id"),
    }


# -- steady changes ----------------------------------------------------------------------
class LagWatch:
    """Reads the central ``machine_state`` every 50 ms; a change (key, version) counts as
    seen at the first read showing the key at that version or later."""

    def __init__(self, central: Central) -> None:
        self.central = central
        self.pending: dict[int, list[tuple[int, float]]] = defaultdict(list)
        self.lags: list[float] = []
        self.latest: dict[int, int] = {}
        self.backwards = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lag-watch", daemon=True)

    def expect(self, changes: list[dict[str, Any]]) -> None:
        with self.lock:
            for c in changes:
                self.pending[c["id"]].append((c["ver"], c["written_at"]))

    def left(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.pending.values())

    def _run(self) -> None:
        while not self.done.is_set():
            self.poll()
            time.sleep(POLL_S)

    def poll(self) -> None:
        with self.lock:
            waiting = [v for vs in self.pending.values() for v, _ in vs]
        if not waiting:
            return
        at = time.time()  # the read's view is taken now: what it shows was committed before
        found = self.central.rows(
            "SELECT id, ver FROM machine_state WHERE _site = %s AND ver >= %s", SITE, min(waiting)
        )
        with self.lock:
            for key, ver in found:
                if ver < self.latest.get(key, 0):
                    self.backwards += 1
                self.latest[key] = ver
                queue = self.pending.get(key)
                while queue and queue[0][0] <= ver:
                    self.lags.append(at - queue.pop(0)[1])
                if queue == []:
                    del self.pending[key]


def change(key: int, ver: int) -> dict[str, Any]:
    return {"id": key, "ver": ver, "qty": ver % 1000, "state": "RUN", "written_at": time.time()}


def steady(store: Any, central: Central, per_min: int, seconds: float) -> dict[str, Any]:
    from factorysync.realtime.writer import Incoming

    writer = declare_realtime(store)
    watch = LagWatch(central)
    per_flush = max(1, round(per_min / 60))
    keys = max(1000, 4 * per_flush)  # a key changes again only seconds later
    ver = 0
    try:
        # The keys the updates go to, in place at both ends before the clock starts.
        seed = []
        for key in range(keys):
            ver += 1
            seed.append(change(key, ver))
        watch.expect(seed)
        writer.flush([Incoming(seed)])
        watch.thread.start()
        wait_for("the steady keys at the central", lambda: watch.left() == 0, 600)
        watch.lags.clear()
        cursor, changed, tick = 0, 0, 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            rows = []
            for i in range(per_flush):
                ver += 1
                if i % 5 == 4:
                    rows.append(change(keys, ver))
                    keys += 1
                else:
                    rows.append(change(cursor % keys, ver))
                    cursor += 1
            watch.expect(rows)
            writer.flush([Incoming(rows)])
            changed += len(rows)
            tick += 1
            time.sleep(max(0.0, started + tick - time.perf_counter()))
        elapsed = time.perf_counter() - started
        ended = time.monotonic()
        while watch.left() and time.monotonic() - ended < 300:
            time.sleep(0.1)
    finally:
        watch.done.set()
        if watch.thread.is_alive():
            watch.thread.join(10)
        writer.stop()
    plant = plant_checksum(store, "machine_state", STEADY_COLUMNS, "_source_id, id")
    lags = sorted(watch.lags)
    return {
        "changes": changed,
        "changes_per_min": changed / elapsed * 60,
        "lag_p50_s": _quantile(lags, 0.50),
        "lag_p99_s": _quantile(lags, 0.99),
        "lag_max_s": lags[-1] if lags else math.nan,
        "lost": watch.left(),
        "duplicated": watch.backwards + central.doubled("machine_state", "id"),
        "plant_rows": plant[0],
        "central_rows": central.count("machine_state"),
        "same_checksum": central.checksum("machine_state", STEADY_COLUMNS, "_source_id, id")
        == plant,
    }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


# -- the run -----------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fs-central-bench-") as tmp:
        folder = Path(tmp)
        plant_dir, central_dir = folder / "plant", folder / "central"
        for d in (plant_dir / "data", central_dir / "data"):
            d.mkdir(parents=True)
        csv = plant_dir / "data" / "production.csv"
        write_production_csv(csv, args.rows)
        tag = uuid.uuid4().hex[:8]
        central_db = PgDatabase(args.pg_url, f"fs_central_{tag}")
        plant_db = PgDatabase(args.pg_url, f"fs_plant_{tag}")
        databases = [central_db]
        nats, url = start_nats(folder)
        forward = central_proc = store = central = None
        try:
            central_db.create()
            if args.plant_store == "postgresql":
                plant_db.create()
                databases.append(plant_db)
                plant_url = plant_db.url
            else:
                plant_url = f"sqlite:///{plant_dir / 'factorysync.db'}"
            store = make_store(plant_dir, plant_url, url)
            plant_env = env_of(plant_dir, plant_url, FACTORYSYNC_FORWARD_URL=url)
            forward = spawn(["forward"], plant_dir, plant_env, "forward")
            wait_for(
                "the stream", lambda: consumers(url) >= 0, 120, (forward, plant_dir, "forward")
            )
            central_env = env_of(central_dir, central_db.url, FACTORYSYNC_CENTRAL_URL=url)
            subprocess.run(
                [sys.executable, "-m", "factorysync.cli", "init"],
                cwd=central_dir,
                env={**os.environ, **central_env},
                check=True,
                capture_output=True,
            )
            central_proc = spawn(["central", "--no-serve"], central_dir, central_env, "central")
            wait_for(
                "the central consumer",
                lambda: consumers(url) > 0,
                120,
                (central_proc, central_dir, "central"),
            )
            central = Central(central_db.url)
            first = load(store, csv, central, args.rows)
            calm = steady(store, central, args.changes_per_min, args.steady_s)
            alive(forward, plant_dir, "forward")
            alive(central_proc, central_dir, "central")
        finally:
            if central is not None:
                central.close()
            stop(forward)
            stop(central_proc)
            if store is not None:
                store.dispose()
            nats.terminate()
            nats.wait(30)
            for db in databases:
                db.drop()
    return {
        "rows": args.rows,
        "plant_store": args.plant_store,
        "first_load": first,
        "steady": {"target_per_min": args.changes_per_min, "seconds": args.steady_s, **calm},
    }


def report(result: dict[str, Any]) -> None:
    first, calm = result["first_load"], result["steady"]
    rows = [
        ("first load: plant sync (s)", f"{first['plant_sync_s']:.2f}"),
        (
            "first load: central equal, from sync start (s)",
            f"{first['to_central_from_start_s']:.2f}",
        ),
        (
            "first load: central equal, after sync end (s)",
            f"{first['to_central_after_sync_s']:.2f}",
        ),
        ("plant -> central, from sync start (rows/s)", f"{first['rows_per_s_from_start']:,.0f}"),
        ("plant -> central, after sync end (rows/s)", f"{first['rows_per_s_after_sync']:,.0f}"),
        ("first load: plant rows", f"{first['plant_rows']:,}"),
        ("first load: central rows", f"{first['central_rows']:,}"),
        ("first load: duplicated", f"{first['duplicated']:,}"),
        ("steady: changes", f"{calm['changes']:,}"),
        ("steady: changes per min", f"{calm['changes_per_min']:,.0f}"),
        ("steady: lag p50 (s)", f"{calm['lag_p50_s']:.3f}"),
        ("steady: lag p99 (s)", f"{calm['lag_p99_s']:.3f}"),
        ("steady: lag max (s)", f"{calm['lag_max_s']:.3f}"),
        ("steady: lost", f"{calm['lost']:,}"),
        ("steady: duplicated", f"{calm['duplicated']:,}"),
        ("steady: plant rows", f"{calm['plant_rows']:,}"),
        ("steady: central rows", f"{calm['central_rows']:,}"),
        ("steady: same checksum", "yes" if calm["same_checksum"] else "NO"),
    ]
    print(
        f"\nplant -> central forwarding, {result['plant_store']} plant, "
        f"{result['rows']:,} rows, PostgreSQL central"
    )
    print(f"{'measure':<50}{'value':>16}")
    for name, value in rows:
        print(f"{name:<50}{value:>16}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes-per-min", type=int, default=10_000)
    parser.add_argument("--steady-s", type=float, default=60.0)
    parser.add_argument("--plant-store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=PG_ADMIN)
    parser.add_argument("--json", type=Path, help="Also write the numbers to this file.")
    args = parser.parse_args(argv)
    result = run(args)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
