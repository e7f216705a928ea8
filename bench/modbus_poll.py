"""Modbus TCP polling benchmark: many simulated PLCs polled by factorysync's realtime service.

A simulator process serves ``--devices`` Modbus TCP devices (one pymodbus server per
device, each on a loopback port of its own, all on one event loop) with ``--registers``
register values each (float32, uint32 and int16, changing on every read). factorysync's
realtime service runs in a process of its own, as ``factorysync run`` runs it, with one
Modbus source per device polling every ``--poll-ms`` into one table of the store
(SQLite or PostgreSQL). After ``--warmup`` seconds, for ``--duration`` seconds:

* rows/s: rows the store received with a ``ts`` inside the window (one row per poll),
  and how many of the polls the schedule asks for (devices × window / period) they are;
* poll jitter: how late each poll started against its fixed schedule, from the rows'
  ``ts`` (per device: the start times against a grid of one period, measured from the
  least late poll), p50 / p99 / max in ms;
* CPU: user + system time of the factorysync process over the window (100 % = one
  core), and of the simulator process, measured apart.

    python bench/modbus_poll.py [--devices 200] [--registers 50] [--poll-ms 1000]
                                [--duration 60] [--warmup 10] [--store sqlite|postgresql]
                                [--pg-url URL] [--json]

Every realtime source keeps one store connection for its writer: the service process
gets ``FACTORYSYNC_MAX_CONCURRENT_SYNCS`` = devices + 16, so that its pool holds them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PG_ADMIN_URL = os.environ.get(
    "FACTORYSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TABLE = "plc_rows"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_ports(count: int) -> list[int]:
    held = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [int(s.getsockname()[1]) for s in held]
    for s in held:
        s.close()
    return ports


# -- the register layout ----------------------------------------------------------------------
def register_layout(count: int) -> list[dict[str, Any]]:
    """``count`` register values as a press PLC might hold them: a fifth float32, a tenth
    uint32 counters, the rest int16, packed from address 0."""
    layout, address = [], 0
    for i in range(count):
        if i % 5 == 0:
            kind = "float32"
        elif i % 10 == 1:
            kind = "uint32"
        else:
            kind = "int16"
        layout.append({"name": f"r{i:03d}", "address": address, "type": kind})
        address += 1 if kind == "int16" else 2
    return layout


def words(layout: list[dict[str, Any]]) -> int:
    return sum(1 if r["type"] == "int16" else 2 for r in layout)


# -- processes --------------------------------------------------------------------------------
def simulate(ports: list[int], size: int, ready: Any, stop: Any) -> None:
    """Serve one Modbus TCP device per port until ``stop``."""
    import asyncio
    import logging

    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    async def changing(
        fc: int, start: int, address: int, count: int, regs: list[int], _v: Any
    ) -> None:
        regs[1] = (regs[1] + 1) & 0xFFFF  # the low word of the first value moves
        return None

    async def main() -> None:
        servers = []
        for port in ports:
            block = [SimData(0, count=size + 8, values=1234, datatype=DataType.REGISTERS)]
            device = SimDevice(id=0, simdata=block, action=changing)
            server = ModbusTcpServer(device, address=("127.0.0.1", port))
            await server.serve_forever(background=True)
            servers.append(server)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for server in servers:
            await server.shutdown()

    asyncio.run(main())


def serve(env: dict[str, str], sources: list[str], ready: Any, stop: Any) -> None:
    """The realtime service process, as ``factorysync run`` would run it."""
    os.environ.update(env)
    from factorysync.realtime.service import RealtimeService
    from factorysync.settings import reset_settings
    from factorysync.store.store import Store

    reset_settings()
    store = Store()
    service = RealtimeService(store, file_watch=False)
    service.reconcile()
    missing = [s for s in sources if s not in service.workers]
    if missing:
        raise SystemExit(f"{len(missing)} source(s) did not start: {service.failed}")
    deadline = time.monotonic() + 120
    for sid in sources:
        subscriber = service.workers[sid][1].subscriber  # type: ignore[attr-defined]
        subscriber.connected.wait(max(0.0, deadline - time.monotonic()))
    ready.set()
    stop.wait()
    service.stop()
    store.dispose()


# -- set-up -----------------------------------------------------------------------------------
def prepare_store(
    kind: str, workdir: Path, pg_url: str, devices: int
) -> tuple[dict[str, str], Any]:
    """Environment for a fresh store, and a clean-up callable."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        cleanup: Any = lambda: None  # noqa: E731
    else:
        import psycopg

        admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
        name = f"fs_bench_modbus_{os.getpid()}"
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = pg_url.rsplit("/", 1)[0] + "/" + name

        def cleanup() -> None:
            with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    data = workdir / "data"
    data.mkdir(exist_ok=True)
    env = {
        "FACTORYSYNC_DATABASE_URL": url,
        "FACTORYSYNC_DATA_ROOTS": str(data),
        "FACTORYSYNC_SECRET_KEY_FILE": str(workdir / "bench.key"),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_LOG_LEVEL": "WARNING",
        "FACTORYSYNC_MAX_CONCURRENT_SYNCS": str(devices + 16),
    }
    os.environ.update(env)
    return env, cleanup


def register(ports: list[int], layout: list[dict[str, Any]], args: argparse.Namespace) -> Any:
    from factorysync import services
    from factorysync.settings import reset_settings
    from factorysync.store.store import Store

    reset_settings()
    store = Store()
    services.init_store(store)
    sources = [
        {
            "source_id": f"press-{i:03d}",
            "name": f"Press {i:03d} PLC (benchmark)",
            "source_type": "modbus",
            "connections": [
                {
                    "connection_config": {
                        "host": "127.0.0.1",
                        "port": port,
                        "poll_ms": args.poll_ms,
                        "timeout": 5,
                        "device": f"press-{i:03d}",
                        "registers": layout,
                        "batch_ms": args.batch_ms,
                    }
                }
            ],
            "mappings": [
                {
                    "target_table": TABLE,
                    "sync_strategy": "realtime",
                    "mapping_config": {"primary_key": ["device", "ts"]},
                }
            ],
        }
        for i, port in enumerate(ports)
    ]
    declared = Path(os.environ["FACTORYSYNC_DATA_ROOTS"]).parent / "sources.yaml"
    declared.write_text(json.dumps({"sources": sources}))  # JSON is YAML
    services.apply_file(store, declared)  # as 'factorysync apply' does
    return store


# -- measuring --------------------------------------------------------------------------------
def lateness_ms(stamps: list[datetime], period_s: float) -> list[float]:
    """How late each poll started against a fixed grid of ``period_s``: each start's
    offset from the grid, measured from the least late one (the grid's origin is the
    schedule's, which the rows do not carry)."""
    if len(stamps) < 2:
        return []
    first = stamps[0]
    offsets = []
    for ts in stamps:
        elapsed = (ts - first).total_seconds()
        offsets.append(elapsed - round(elapsed / period_s) * period_s)
    base = min(offsets)
    return [(o - base) * 1000 for o in offsets]


def measured_rows(store: Any, start: datetime, end: datetime) -> dict[str, list[datetime]]:
    from sqlalchemy import text

    by_device: dict[str, list[datetime]] = {}
    with store.connect() as conn:
        found = conn.execute(text(f"SELECT device, ts FROM {TABLE}")).all()
    for device, ts in found:
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts)
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        if start <= ts < end:
            by_device.setdefault(device, []).append(ts)
    for stamps in by_device.values():
        stamps.sort()
    return by_device


def run_once(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="fs-bench-modbus-"))
    env, cleanup = prepare_store(kind, workdir, args.pg_url, args.devices)
    layout = register_layout(args.registers)
    ports = free_ports(args.devices)
    ctx = mp.get_context("spawn")
    sim_ready, sim_stop = ctx.Event(), ctx.Event()
    simulator = ctx.Process(target=simulate, args=(ports, words(layout), sim_ready, sim_stop))
    simulator.start()
    store = service = None
    try:
        if not sim_ready.wait(120):
            raise SystemExit("the simulator did not start within 120 s")
        began = time.monotonic()
        store = register(ports, layout, args)
        log(f"{kind}: {args.devices} sources registered in {time.monotonic() - began:.1f} s")
        ready, stop = ctx.Event(), ctx.Event()
        sources = [f"press-{i:03d}" for i in range(args.devices)]
        began = time.monotonic()
        service = ctx.Process(target=serve, args=(env, sources, ready, stop))
        service.start()
        if not ready.wait(600):
            raise SystemExit("the realtime service did not get ready within 600 s")
        log(f"{kind}: every device polled after {time.monotonic() - began:.1f} s")
        time.sleep(args.warmup)
        start = datetime.now(UTC)
        cpu_fs, cpu_sim, wall = (
            cpu_seconds(service.pid),
            cpu_seconds(simulator.pid),
            time.monotonic(),
        )
        time.sleep(args.duration)
        cpu_fs = cpu_seconds(service.pid) - cpu_fs
        cpu_sim = cpu_seconds(simulator.pid) - cpu_sim
        span = time.monotonic() - wall
        end = datetime.now(UTC)
        stop.set()
        service.join(120)
        by_device = measured_rows(store, start, end)
    finally:
        if service is not None and service.is_alive():
            service.terminate()
        sim_stop.set()
        simulator.join(30)
        if simulator.is_alive():
            simulator.terminate()
        if store is not None:
            store.dispose()
        cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    period = args.poll_ms / 1000
    late = [ms for stamps in by_device.values() for ms in lateness_ms(stamps, period)]
    rows = sum(len(s) for s in by_device.values())
    expected = args.devices * span / period
    return {
        "store": kind,
        "devices": args.devices,
        "registers": args.registers,
        "requests_per_poll": -(-words(layout) // 125),
        "rows": rows,
        "rows_per_s": rows / span,
        "polls_done_pct": 100 * rows / expected if expected else 0.0,
        "devices_seen": len(by_device),
        "jitter_p50_ms": percentile(late, 0.5),
        "jitter_p99_ms": percentile(late, 0.99),
        "jitter_max_ms": max(late) if late else float("nan"),
        "cpu_pct": 100 * cpu_fs / span,
        "simulator_cpu_pct": 100 * cpu_sim / span,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--registers", type=int, default=50, help="register values per device")
    parser.add_argument("--poll-ms", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    parser.add_argument("--batch-ms", type=int, default=200, help="micro-batch age (ms)")
    parser.add_argument("--stores", default="sqlite", help="sqlite, postgresql or both")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help="admin URL of a PostgreSQL server")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    results = []
    for kind in [s.strip() for s in args.stores.split(",") if s.strip()]:
        try:
            results.append(run_once(kind, args))
        except Exception as exc:
            print(f"{kind}: failed ({type(exc).__name__}: {exc})", file=sys.stderr)
    print(
        f"\nModbus TCP polling: {args.devices} devices × {args.registers} registers, "
        f"poll_ms {args.poll_ms}, {args.duration:g} s measured after {args.warmup:g} s, "
        f"{os.cpu_count()} cores\n"
    )
    header = (
        f"{'store':<11} {'devices':>7} {'req/poll':>8} {'rows':>7} {'rows/s':>8} {'polls %':>8} "
        f"{'jitter p50':>10} {'p99 ms':>7} {'max ms':>7} {'CPU %':>6} {'sim CPU %':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['store']:<11} {r['devices']:>7} {r['requests_per_poll']:>8} {r['rows']:>7} "
            f"{r['rows_per_s']:>8.1f} {r['polls_done_pct']:>8.1f} {r['jitter_p50_ms']:>10.1f} "
            f"{r['jitter_p99_ms']:>7.1f} {r['jitter_max_ms']:>7.1f} {r['cpu_pct']:>6.1f} "
            f"{r['simulator_cpu_pct']:>9.1f}"
        )
    if args.json:
        print(json.dumps(results))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
