"""Forwarding benchmark: a plant's changes into JetStream, rows per second.

Starts its own ``nats-server -js`` on a free port in a temporary folder and a fresh store
(SQLite file, or a throw-away PostgreSQL database), then measures:

* first load: a CSV of ``--rows`` production records synced into an empty target table,
  with forwarding off and with it on (the capture adds one outbox entry: the load should
  take the same time);
* publish: the publisher sends the whole first load (batches of 1,000 rows, many in flight)
  until the outbox is empty — plant → JetStream rows/s;
* steady: a realtime source changes ``--changes-per-min`` rows a minute (one flush a
  second) for ``--steady-s`` seconds while the publisher runs: how far the outbox lags
  behind (age of its oldest entry, sampled every 0.2 s) and the drain time after the last
  change.

    python bench/forward_throughput.py [--rows 1000000] [--changes-per-min 10000]
        [--steady-s 60] [--store sqlite|postgresql] [--pg-url URL]

A smoke run: ``--rows 20000 --steady-s 10``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from common import DEFAULT_PG, PgDatabase, write_production_csv

NATS_SERVER = os.environ.get("NATS_SERVER", "/usr/sbin/nats-server")
PG_ADMIN = os.environ.get("FACTORYSYNC_BENCH_PG_URL", DEFAULT_PG)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nats(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (folder / "nats.log").open("ab")
    proc = subprocess.Popen(
        [NATS_SERVER, "-js", "-sd", str(folder / "js"), "-a", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"nats://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nats-server did not start")


def make_store(folder: Path, db_url: str, forward_url: str) -> Any:
    from factorysync import services
    from factorysync.settings import Settings
    from factorysync.store.store import Store

    settings = Settings(
        database_url=db_url,
        data_roots=str(folder / "data"),
        secret_key_file=folder / "factorysync.key",
        forward_url=forward_url,
        site="bench",
    )
    store = Store(settings)
    services.init_store(store)
    return store


def first_load(store: Any, csv: Path) -> float:
    from factorysync.engine.runner import Runner
    from factorysync.intake import parse_sources
    from factorysync.store.registry_save import apply_declarations

    source = {
        "source_id": "line1",
        "name": "line1",
        "source_type": "csv",
        "connections": [{"connection_config": {"file_path": str(csv), "file_type": "csv"}}],
        "mappings": [
            {
                "target_table": "production",
                "sync_strategy": "full",
                "mapping_config": {"primary_key": ["id"]},
            }
        ],
    }
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": [source]}), store.box)
    started = time.perf_counter()
    result = Runner(store).sync("line1")
    if result.sync_status != "success":
        raise SystemExit(f"first load failed: {result.error_message}")
    return time.perf_counter() - started


def depth(store: Any) -> dict[str, Any]:
    from factorysync.forward.outbox import Outbox

    return Outbox(store).depth()


def wait_empty(store: Any, limit_s: float = 3600.0) -> float:
    started = time.perf_counter()
    while depth(store)["outbox_depth"]:
        if time.perf_counter() - started > limit_s:
            raise SystemExit("the outbox did not empty")
        time.sleep(0.05)
    return time.perf_counter() - started


def stream_messages(url: str) -> int:
    async def count() -> int:
        import nats

        nc = await nats.connect(url)
        try:
            info = await nc.jsm().stream_info("FACTORYSYNC")
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def declare_realtime(store: Any) -> Any:
    """A realtime source ``press`` writing ``machine_state`` (key ``id``), and its open
    micro-batch writer."""
    from factorysync.intake import parse_sources
    from factorysync.realtime.writer import MicroBatchWriter
    from factorysync.store.registry_save import apply_declarations

    source = {
        "source_id": "press",
        "name": "press",
        "source_type": "mqtt",
        "connections": [{"connection_config": {"host": "127.0.0.1", "topics": ["x/#"]}}],
        "mappings": [
            {
                "target_table": "machine_state",
                "sync_strategy": "realtime",
                "mapping_config": {"primary_key": ["id"]},
            }
        ],
    }
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": [source]}), store.box)
    writer = MicroBatchWriter(store, "press", window_s=60)
    writer.open()
    return writer


def steady(store: Any, per_min: int, seconds: float) -> dict[str, float]:
    """Changes through the realtime writer, one flush a second, while the publisher runs."""
    from factorysync.realtime.writer import Incoming

    writer = declare_realtime(store)
    ages: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            ages.append(depth(store)["oldest_entry_age_s"])
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    per_flush = max(1, per_min // 60)
    changed = 0
    started = time.perf_counter()
    try:
        tick = 0
        while time.perf_counter() - started < seconds:
            rows = [
                {"id": (tick * per_flush + i) % 5000, "qty": tick, "state": "RUN"}
                for i in range(per_flush)
            ]
            writer.flush([Incoming(rows)])
            changed += len(rows)
            tick += 1
            time.sleep(max(0.0, started + tick - time.perf_counter()))
        drain = wait_empty(store)
    finally:
        done.set()
        sampler.join()
        writer.stop()
    elapsed = time.perf_counter() - started
    return {
        "changes": changed,
        "per_min": changed / elapsed * 60,
        "lag_p50": statistics.median(ages) if ages else 0.0,
        "lag_max": max(ages) if ages else 0.0,
        "drain_s": drain,
    }


def run(args: argparse.Namespace) -> None:
    from factorysync.forward.publisher import Publisher

    with tempfile.TemporaryDirectory(prefix="fs-forward-bench-") as tmp:
        folder = Path(tmp)
        (folder / "data").mkdir()
        csv = folder / "data" / "production.csv"
        write_production_csv(csv, args.rows)
        nats, url = start_nats(folder)
        databases: list[PgDatabase] = []

        def db_url(name: str) -> str:
            if args.store == "sqlite":
                return f"sqlite:///{folder / name}.db"
            db = PgDatabase(args.pg_url, f"fs_fwd_{name}_{uuid.uuid4().hex[:8]}")
            db.create()
            databases.append(db)
            return db.url

        try:
            off = make_store(folder, db_url("off"), "")
            load_off = first_load(off, csv)
            off.dispose()
            store = make_store(folder, db_url("on"), url)
            load_on = first_load(store, csv)
            publisher = Publisher(store)
            publisher.start()
            publish_s = wait_empty(store)
            messages = stream_messages(url)
            calm = steady(store, args.changes_per_min, args.steady_s)
            publisher.stop()
            store.dispose()
        finally:
            nats.terminate()
            nats.wait(30)
            for db in databases:
                db.drop()

    rows = args.rows
    print(f"\nforwarding, {args.store} store, {rows:,} rows, nats-server {url}")
    print(f"{'measure':<44}{'value':>16}")
    print(f"{'first load, forwarding off (s)':<44}{load_off:>16.2f}")
    print(f"{'first load, forwarding on (s)':<44}{load_on:>16.2f}")
    print(f"{'publish the first load (s)':<44}{publish_s:>16.2f}")
    print(f"{'plant -> JetStream (rows/s)':<44}{rows / publish_s:>16,.0f}")
    print(f"{'messages in the stream (first load)':<44}{messages:>16,}")
    print(f"{'steady changes (per min)':<44}{calm['per_min']:>16,.0f}")
    print(f"{'steady: oldest outbox entry, median (s)':<44}{calm['lag_p50']:>16.2f}")
    print(f"{'steady: oldest outbox entry, max (s)':<44}{calm['lag_max']:>16.2f}")
    print(f"{'steady: drain after the last change (s)':<44}{calm['drain_s']:>16.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes-per-min", type=int, default=10_000)
    parser.add_argument("--steady-s", type=float, default=60.0)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=PG_ADMIN)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
