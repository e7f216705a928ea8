"""Sparkplug B ingest benchmark: edge nodes' DDATA through Mosquitto into PostgreSQL.

A publisher process plays ``--nodes`` edge nodes with ``--devices`` devices each: it
publishes their NBIRTH and DBIRTHs (``--metrics`` Double metrics per device, each with an
alias), then DDATA messages that send every metric by alias only, ``--rate`` metrics/s in
all for ``--duration`` seconds (QoS 1; each device's metrics of one message share its
timestamp, the time it was published). factorysync's realtime service (a process of its
own, as ``factorysync run`` runs it) resolves the aliases, checks the sequence numbers
and writes one row per metric sample as a time series (key: edge node, device, metric,
ts) through the micro-batch writer. Measured by polling the target table: metrics/s
(rows visible ÷ time from the first DDATA to the last row visible), publish → row-visible
latency (p50/p99) and metrics lost (published, never visible), next to the quarantine
entries and sequence gaps the run caused (both should be 0) and the CPU the service
process used (CPU-seconds per second of DDATA: 100 % is one core); then the p99 of each
``--window`` seconds, and the checkpoints other clients forced on the server meanwhile
(a CREATE or DROP DATABASE forces one), which tell a steady run from one stretch that
made the p99. The target table holds every field of a row (9 columns), or with
``--mapping lean`` the five a trend needs (edge node, device, metric, value, ts).

The store is the PostgreSQL database ``--pg-url`` (the local ``test`` database by
default): each run registers a source and a target table of its own and removes both at
the end. ``--store sqlite`` uses a throw-away SQLite file instead.

    python bench/sparkplug_ingest.py [--rate 10000] [--duration 60] [--nodes 4]
        [--devices 10] [--metrics 25] [--store postgresql|sqlite] [--pg-url URL]
        [--broker 127.0.0.1:1883] [--batch-rows 2000] [--batch-ms 100] [--mapping full|lean]
        [--profile FILE.svg]

``--profile`` records the service process with py-spy (``pip install py-spy``) while the
DDATA flow, waits included, as a flame graph (``.svg``) or, with ``--profile-format raw``,
collapsed stacks.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mqtt_realtime import _utf8, _varint, percentile

PG_URL = os.environ.get(
    "FACTORYSYNC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DOUBLE = 10


# -- the publisher process ----------------------------------------------------------------
def publish(args: argparse.Namespace, host: str, port: int, group: str, start_at: float) -> None:
    """Edge nodes over a plain MQTT 3.1.1 socket (as bench/mqtt_realtime.py does: a client
    library's per-message bookkeeping would take CPU the service needs): births first,
    then DDATA in 10 ms ticks, every message acknowledged by the broker before it ends."""
    import socket

    from factorysync.connectors import sparkplug_b_pb2 as pb

    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = _utf8("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big")
    body += _utf8(f"bench-spb-{uuid.uuid4().hex[:12]}")
    sock.sendall(b"\x10" + _varint(len(body)) + body)
    connack = sock.recv(4)
    if len(connack) < 4 or connack[0] != 0x20 or connack[3] != 0:
        raise SystemExit(f"publisher: the broker refused the connection ({connack!r})")
    acked = [0]

    def read_acks() -> None:
        buffer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
            whole = len(buffer) - len(buffer) % 4  # PUBACK: 0x40 0x02 <packet id>
            acked[0] += whole // 4
            buffer = buffer[whole:]

    threading.Thread(target=read_acks, daemon=True).start()
    sent = [0]

    def packet(topic: str, payload: bytes) -> bytes:
        sent[0] += 1
        variable = _utf8(topic) + (sent[0] % 65535 + 1).to_bytes(2, "big")
        return b"\x32" + _varint(len(variable) + len(payload)) + variable + payload

    names = [f"metric_{m:03d}" for m in range(args.metrics)]
    seq = dict.fromkeys(range(args.nodes), 0)
    births = []
    birth_ms = birth_ms_of(start_at)
    for n in range(args.nodes):
        p = pb.Payload(timestamp=birth_ms, seq=0)
        p.metrics.add(name="bdSeq", datatype=4, long_value=0)
        births.append(packet(f"spBv1.0/{group}/NBIRTH/edge-{n}", p.SerializeToString()))
        for d in range(args.devices):
            seq[n] = (seq[n] + 1) % 256
            p = pb.Payload(timestamp=birth_ms, seq=seq[n])
            for alias, name in enumerate(names):
                p.metrics.add(name=name, alias=alias, datatype=DOUBLE, double_value=0.0)
            births.append(packet(f"spBv1.0/{group}/DBIRTH/edge-{n}/dev-{d}", p.SerializeToString()))
    sock.sendall(b"".join(births))
    time.sleep(max(0.0, start_at - time.time()))

    devices = [(n, d) for d in range(args.devices) for n in range(args.nodes)]
    topics = [f"spBv1.0/{group}/DDATA/edge-{n}/dev-{d}" for n, d in devices]
    last_ms = [0] * len(devices)
    messages = int(args.rate * args.duration) // args.metrics
    per_s = args.rate / args.metrics
    began = time.perf_counter()
    i = 0
    while i < messages:
        due = min(int((time.perf_counter() - began + 0.01) * per_s), messages)
        out = []
        while i < due:
            k = i % len(devices)
            n = devices[k][0]
            # Strictly increasing per device, so every sample is a row of its own.
            ms = last_ms[k] = max(int(time.time() * 1000), last_ms[k] + 1)
            seq[n] = (seq[n] + 1) % 256
            p = pb.Payload(timestamp=ms, seq=seq[n])
            for alias in range(args.metrics):
                p.metrics.add(alias=alias, double_value=(i + alias) % 1000 / 10)
            out.append(packet(topics[k], p.SerializeToString()))
            i += 1
        sock.sendall(b"".join(out))
        time.sleep(max(0.0, began + i / per_s - time.perf_counter()))
    deadline = time.monotonic() + 60
    while acked[0] < sent[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    if acked[0] < sent[0]:
        print(f"publisher: {sent[0] - acked[0]} message(s) not acknowledged", file=sys.stderr)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()


def birth_ms_of(start_at: float) -> int:
    """The births' timestamp: a second before any DDATA, whose samples alone are counted."""
    return int(start_at * 1000) - 1000


# -- the service process ------------------------------------------------------------------
def serve(env: dict[str, str], source_id: str, ready: Any, stop: Any) -> None:
    """The realtime service, as ``factorysync run`` would run it."""
    os.environ.update(env)
    from factorysync.realtime.service import RealtimeService
    from factorysync.settings import reset_settings
    from factorysync.store.store import Store

    reset_settings()
    store = Store()
    service = RealtimeService(store, file_watch=False)
    service.reconcile()
    if source_id not in service.workers:
        raise SystemExit(f"realtime source did not start: {service.failed}")
    service.workers[source_id][1].subscriber.connected.wait(10)  # type: ignore[attr-defined]
    ready.set()
    stop.wait()
    service.stop()
    store.dispose()


# -- set-up -------------------------------------------------------------------------------
# Columns of the target table: every field of a Sparkplug row, or (``--mapping lean``) a
# time series of the fields a trend needs.
LEAN = ("edge_node_id", "device_id", "metric", "value", "ts")


def source(source_id: str, table: str, host: str, port: int, group: str, a: Any) -> Any:
    fields: dict[str, Any] = {
        "group_id": "group_id",
        "edge_node_id": "edge_node_id",
        "device_id": {"from": "device_id", "default": ""},
        "metric": "metric",
        "value": {"from": "value", "type": "float"},
        "datatype": "datatype",
        "ts": {"from": "ts", "type": "datetime"},
        "is_historical": {"from": "is_historical", "type": "boolean"},
        "stale": {"from": "stale", "type": "boolean"},
    }
    if a.mapping == "lean":
        fields = {name: spec for name, spec in fields.items() if name in LEAN}
    return {
        "source_id": source_id,
        "name": "Sparkplug B edge nodes (benchmark)",
        "source_type": "mqtt",
        "connections": [
            {
                "connection_config": {
                    "host": host,
                    "port": port,
                    "topics": [f"spBv1.0/{group}/#"],
                    "qos": 1,
                    "payload_format": "sparkplug_b",
                    "client_id": f"bench-{source_id}",
                    "session_expiry_s": 60,
                    "batch_rows": a.batch_rows,
                    "batch_ms": a.batch_ms,
                }
            }
        ],
        "mappings": [
            {
                "target_table": table,
                "sync_strategy": "realtime",
                "sync_frequency": "realtime",
                "mapping_config": {
                    "primary_key": ["edge_node_id", "device_id", "metric", "ts"],
                    "fields": fields,
                },
            }
        ],
    }


class Poller(threading.Thread):
    """Polls the target table; records when each metric sample became visible.

    The source's one writer commits its flushes one after the other, each with a
    ``_synced_at`` of its own (indexed, and later than the last): a poll reads only the
    timestamps of the rows of the flushes committed since the previous poll, so the
    poller's own work stays small beside the service's on the same cores."""

    def __init__(self, store: Any, table: str, counted_from_ms: int) -> None:
        super().__init__(daemon=True)
        self.store, self.table, self.counted_from_ms = store, table, counted_from_ms
        self.latencies: list[float] = []
        self.sent: list[float] = []  # when each counted sample was published
        self.written = 0
        self.last_visible = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        from sqlalchemy import text

        newest = text(f"SELECT max(_synced_at) FROM {self.table}")
        rows = f"SELECT ts FROM {self.table} WHERE _synced_at <= :upto"
        first, later = text(rows), text(rows + " AND _synced_at > :since")
        since: Any = None
        while not self.stop.wait(0.02):
            try:
                with self.store.connect() as conn:
                    upto = conn.execute(newest).scalar()
                    if upto is None or upto == since:
                        continue
                    if since is None:
                        stamps = conn.execute(first, {"upto": upto}).scalars().all()
                    else:
                        stamps = conn.execute(later, {"upto": upto, "since": since}).scalars().all()
            except Exception:  # the table does not exist before the first flush
                continue
            since, now = upto, time.time()
            for ts in stamps:
                if isinstance(ts, str):  # SQLite: UTC text
                    ts = datetime.fromisoformat(ts).replace(tzinfo=UTC)
                sent = ts.timestamp()
                if round(sent * 1000) >= self.counted_from_ms:  # births are not counted
                    self.written += 1
                    self.latencies.append(now - sent)
                    self.sent.append(sent)
                    self.last_visible = now


def outcome(store: Any, source_id: str) -> tuple[int, int]:
    """Quarantine entries and sequence gaps the run recorded."""
    from sqlalchemy import func, select

    from factorysync.store.schema import data_source_quarantine, infolog

    with store.connect() as conn:
        refused = conn.execute(
            select(func.count())
            .select_from(data_source_quarantine)
            .where(data_source_quarantine.c.source_id == source_id)
        ).scalar_one()
        gaps = conn.execute(
            select(func.count())
            .select_from(infolog)
            .where(infolog.c.source_id == source_id, infolog.c.event == "realtime.gap")
        ).scalar_one()
    return int(refused), int(gaps)


def run(args: argparse.Namespace, host: str, port: int) -> dict[str, Any]:
    from factorysync import services
    from factorysync.settings import reset_settings
    from factorysync.store.store import Store

    workdir = Path(tempfile.mkdtemp(prefix="fs-bench-spb-"))
    run_id = uuid.uuid4().hex[:8]
    source_id, table, group = f"bench-spb-{run_id}", f"bench_spb_{run_id}", f"bench-{run_id}"
    url = args.pg_url if args.store == "postgresql" else f"sqlite:///{workdir / 'bench.db'}"
    (workdir / "data").mkdir()
    env = {
        "FACTORYSYNC_DATABASE_URL": url,
        "FACTORYSYNC_DATA_ROOTS": str(workdir / "data"),
        "FACTORYSYNC_SECRET_KEY_FILE": str(workdir / "bench.key"),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    reset_settings()
    store = Store()
    services.init_store(store)
    services.create_source(store, source(source_id, table, host, port, group, args))
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    service = ctx.Process(target=serve, args=(env, source_id, ready, stop))
    service.start()
    try:
        if not ready.wait(60):
            raise SystemExit("the realtime service did not get ready within 60 s")
        start_at = time.time() + 1.0  # births first, then DDATA from here on
        poller = Poller(store, table, birth_ms_of(start_at) + 1)
        poller.start()
        publisher = ctx.Process(target=publish, args=(args, host, port, group, start_at))
        publisher.start()
        spy = profile(args, service.pid) if args.profile else None
        cpu_from = cpu_seconds(service.pid)
        checkpoints_from = checkpoints(store)
        publisher.join(args.duration + 180)
        cpu_used = cpu_seconds(service.pid) - cpu_from
        forced = checkpoints(store) - checkpoints_from
        if spy is not None:
            spy.wait(120)
        published_s = time.time() - start_at
        total = int(args.rate * args.duration) // args.metrics * args.metrics
        deadline = time.time() + max(30.0, args.duration)
        while poller.written < total and time.time() < deadline:
            time.sleep(0.05)
        poller.stop.set()
        poller.join(5)
        refused, gaps = outcome(store, source_id)
        span = max(poller.last_visible - start_at, 1e-9)
        return {
            "store": args.store,
            "published": total,
            "publish_rate": total / max(published_s, 1e-9),
            "written": poller.written,
            "rate": poller.written / span,
            "p50": percentile(poller.latencies, 0.5) * 1000,
            "p99": percentile(poller.latencies, 0.99) * 1000,
            "windows": windows(poller, start_at, args.window),
            "service_cpu": cpu_used / max(published_s, 1e-9),
            "checkpoints": forced,
            "refused": refused,
            "gaps": gaps,
        }
    finally:
        stop.set()
        service.join(60)
        if service.is_alive():
            service.terminate()
        try:
            from sqlalchemy import text

            services.delete_source(store, source_id)
            with store.begin() as conn:
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        finally:
            store.dispose()
            shutil.rmtree(workdir, ignore_errors=True)


def windows(poller: Poller, start_at: float, width: float) -> list[tuple[float, int, float]]:
    """(start s, samples, p99 ms) per ``width`` seconds of publishing: whether the
    latency held all along, or one stretch made the p99."""
    found: dict[int, list[float]] = {}
    for sent, latency in zip(poller.sent, poller.latencies, strict=True):
        found.setdefault(max(0, int((sent - start_at) // width)), []).append(latency)
    return [(i * width, len(found[i]), percentile(found[i], 0.99) * 1000) for i in sorted(found)]


def checkpoints(store: Any) -> float:
    """Checkpoints the PostgreSQL server was asked for so far (NaN on SQLite): a CREATE or
    DROP DATABASE of another client forces one, which stalls every writer a moment."""
    from sqlalchemy import text

    if store.dialect != "postgresql":
        return float("nan")
    for query in (
        "SELECT checkpoints_req FROM pg_stat_bgwriter",
        "SELECT num_requested FROM pg_stat_checkpointer",  # PostgreSQL 17 and later
    ):
        try:
            with store.connect() as conn:
                return float(conn.execute(text(query)).scalar_one())
        except Exception:
            continue
    return float("nan")


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process used so far (Linux), NaN where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def profile(args: argparse.Namespace, pid: int | None) -> subprocess.Popen[bytes]:
    """py-spy recording the service process for the DDATA phase."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    argv = [exe, "record", "--pid", str(pid), "--duration", str(int(args.duration))]
    argv += ["--threads", "--idle", "--nonblocking", "--format", args.profile_format]
    return subprocess.Popen([*argv, "--output", args.profile], stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000, help="metrics per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of DDATA")
    parser.add_argument("--nodes", type=int, default=4, help="edge nodes")
    parser.add_argument("--devices", type=int, default=10, help="devices per edge node")
    parser.add_argument("--metrics", type=int, default=25, help="metrics per DDATA")
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg-url", default=PG_URL, help="the PostgreSQL store's URL")
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument("--batch-rows", type=int, default=2000, help="connection batch_rows")
    parser.add_argument("--batch-ms", type=int, default=100, help="connection batch_ms")
    parser.add_argument("--mapping", choices=("full", "lean"), default="full")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per p99 window")
    parser.add_argument("--profile", help="record the service with py-spy into this file")
    parser.add_argument("--profile-format", default="flamegraph", help="py-spy's --format")
    args = parser.parse_args()
    host, _, port = args.broker.partition(":")
    r = run(args, host, int(port or 1883))
    per_message = f"{args.metrics} metrics per DDATA"
    print(
        f"\nSparkplug B ingest: {args.rate} metrics/s offered for {args.duration:g} s, "
        f"{args.nodes} edge nodes × {args.devices} devices, {per_message}, aliases only, "
        f"QoS 1, time series upsert by (edge node, device, metric, ts), "
        f"{args.mapping} mapping ({'5' if args.mapping == 'lean' else '9'} columns)\n"
    )
    header = (
        f"{'store':<12} {'metrics':>9} {'metrics/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'lost':>6} {'quarantined':>12} {'seq gaps':>9} {'service CPU':>12}"
    )
    print(header)
    print("-" * len(header))
    print(
        f"{r['store']:<12} {r['written']:>9} {r['rate']:>10.0f} {r['p50']:>8.1f} "
        f"{r['p99']:>8.1f} {r['published'] - r['written']:>6} {r['refused']:>12} {r['gaps']:>9} "
        f"{r['service_cpu']:>12.0%}"
    )
    print(f"{'  offered':<12} {r['published']:>9} {r['publish_rate']:>10.0f}")
    print(f"\ncheckpoints forced on the server meanwhile: {r['checkpoints']:g}")
    print(
        f"p99 by {args.window:g} s of publishing: "
        + ", ".join(f"{start:g}s {p99:.0f} ms" for start, _, p99 in r["windows"])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
