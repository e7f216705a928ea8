"""MQTT realtime benchmark: machine messages through Mosquitto into SQLite and PostgreSQL.

A publisher process sends ``--rate`` messages/s (QoS 1, ``--machines`` machines, topic
``bench/<run>/<machine>/status``) for ``--duration`` seconds. factorysync's realtime
service (in a process of its own) writes them as a time series (key: machine, sequence)
through the micro-batch writer. Measured in the same run:

* factorysync: sustained messages/s (rows visible / time from first publish to last row
  visible) and publish → row-visible latency (p50/p99), by polling the target table;
* the broker alone: ``mosquitto_sub`` subscribed to the same stream (messages/s and
  publish → received latency), when ``mosquitto_sub`` is installed.

    python bench/mqtt_realtime.py [--rate 5000] [--duration 20] [--stores sqlite,postgresql]
                                  [--broker 127.0.0.1:1883] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

PG_ADMIN_URL = os.environ.get(
    "FACTORYSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TABLE = "machine_events"
SOURCE = "bench-mqtt"
# The publisher's messages as rows: a time series keyed by machine and sequence.
MESSAGE_MAPPING = {
    "primary_key": ["machine_id", "seq"],
    "fields": {
        "machine_id": "machine_id",
        "seq": {"from": "seq", "type": "integer"},
        "sent": {"from": "sent", "type": "float"},
        "speed": {"from": "speed", "type": "integer"},
        "ok": {"from": "ok", "type": "boolean"},
    },
}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- processes ----------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def publish(host: str, port: int, root: str, rate: int, duration: float, machines: int) -> None:
    """Publisher process: ``rate`` messages/s at QoS 1 in 10 ms ticks.

    It speaks MQTT 3.1.1 over a plain socket (CONNECT, then PUBLISH packets written in
    bulk, PUBACKs counted by a reader thread): a client library's per-message bookkeeping
    would take the CPU this 2-core machine needs for the broker and the service. Every
    message is acknowledged by the broker before the process ends.
    """
    import socket

    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = _utf8("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big")
    body += _utf8(f"bench-pub-{uuid.uuid4().hex[:12]}")
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

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    topics = [_utf8(f"{root}/M-{m:04d}/status") for m in range(machines)]
    tick = 0.01
    total = int(rate * duration)
    start = time.perf_counter()
    n = 0
    while n < total:
        due = min(int((time.perf_counter() - start + tick) * rate), total)
        packets = []
        while n < due:
            payload = orjson.dumps({"seq": n, "sent": time.time(), "speed": n % 97, "ok": True})
            variable = topics[n % machines] + (n % 65535 + 1).to_bytes(2, "big")
            packets.append(b"\x32" + _varint(len(variable) + len(payload)) + variable + payload)
            n += 1
        sock.sendall(b"".join(packets))
        time.sleep(max(0.0, start + (n / rate) - time.perf_counter()))
    deadline = time.monotonic() + 60
    while acked[0] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    if acked[0] < n:
        print(
            f"publisher: {n - acked[0]} message(s) not acknowledged by the broker", file=sys.stderr
        )
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()


def serve(env: dict[str, str], ready: Any, stop: Any) -> None:
    """The realtime service process, as ``factorysync run`` would run it."""
    os.environ.update(env)
    from factorysync.realtime.service import RealtimeService
    from factorysync.settings import reset_settings
    from factorysync.store.store import Store

    reset_settings()
    store = Store()
    service = RealtimeService(store, file_watch=False)
    service.reconcile()
    if SOURCE not in service.workers:
        raise SystemExit(f"realtime source did not start: {service.failed}")
    service.workers[SOURCE][1].subscriber.connected.wait(10)  # type: ignore[attr-defined]
    ready.set()
    stop.wait()
    service.stop()
    store.dispose()


# -- set-up -------------------------------------------------------------------------------
def prepare_store(kind: str, workdir: Path, pg_url: str) -> tuple[dict[str, str], Any]:
    """Environment for a fresh store, and a clean-up callable."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        cleanup: Any = lambda: None  # noqa: E731
    else:
        import psycopg

        admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
        name = f"fs_bench_mqtt_{os.getpid()}"
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = pg_url.rsplit("/", 1)[0] + "/" + name

        def cleanup() -> None:
            with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    data = workdir / "data"  # a data root of its own, without the store or the key
    data.mkdir(exist_ok=True)
    env = {
        "FACTORYSYNC_DATABASE_URL": url,
        "FACTORYSYNC_DATA_ROOTS": str(data),
        "FACTORYSYNC_SECRET_KEY_FILE": str(workdir / "bench.key"),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    return env, cleanup


def register(host: str, port: int, root: str) -> Any:
    from factorysync import services
    from factorysync.intake import parse_sources
    from factorysync.settings import reset_settings
    from factorysync.store.registry_save import apply_declarations
    from factorysync.store.store import Store

    reset_settings()
    store = Store()
    services.init_store(store)
    source = {
        "source_id": SOURCE,
        "name": "Machine events (benchmark)",
        "source_type": "mqtt",
        "connections": [
            {
                "connection_config": {
                    "host": host,
                    "port": port,
                    "topics": [f"{root}/+/status"],
                    "qos": 1,
                    "topic_template": f"{root}/{{machine_id}}/status",
                    "client_id": f"bench-{root.rsplit('/', 1)[1]}",
                    "session_expiry_s": 60,
                    "batch_rows": 1000,
                    "batch_ms": 100,
                }
            }
        ],
        "mappings": [
            {
                "target_table": TABLE,
                "sync_strategy": "realtime",
                "sync_frequency": "realtime",
                "mapping_config": MESSAGE_MAPPING,
            }
        ],
    }
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": [source]}), store.box)
    return store


class Poller(threading.Thread):
    """Polls the target table; records when each message became visible."""

    def __init__(self, store: Any) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.latencies: list[float] = []
        self.seen: set[int] = set()
        self.last_visible = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        from sqlalchemy import text

        # Rows of one flush share _synced_at, which is indexed: each poll reads only
        # the newest flushes, however large the table has grown.
        query = text(f"SELECT seq, sent, _synced_at FROM {TABLE} WHERE _synced_at >= :since")
        since: Any = None
        while not self.stop.is_set():
            try:
                with self.store.connect() as conn:
                    if since is None:
                        rows = conn.execute(text(f"SELECT seq, sent, _synced_at FROM {TABLE}"))
                    else:
                        rows = conn.execute(query, {"since": since})
                    rows = rows.all()
            except Exception:  # the table does not exist before the first flush
                rows = []
            now = time.time()
            for seq, sent, synced in rows:
                if since is None or synced > since:
                    since = synced
                if seq not in self.seen:
                    self.seen.add(seq)
                    self.latencies.append(now - sent)
                    self.last_visible = now
            self.stop.wait(0.02)


def broker_reader(host: str, port: int, root: str) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("mosquitto_sub")
    if exe is None:
        return None
    return subprocess.Popen(
        [exe, "-h", host, "-p", str(port), "-q", "1", "-t", f"{root}/+/status", "-F", "%U %p"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def broker_numbers(lines: list[bytes], first_publish: float) -> dict[str, float]:
    latencies, last = [], first_publish
    for line in lines:
        stamp, _, payload = line.partition(b" ")
        try:
            received = float(stamp)
            latencies.append(received - orjson.loads(payload)["sent"])
        except (ValueError, KeyError, orjson.JSONDecodeError):
            continue
        last = max(last, received)
    span = max(last - first_publish, 1e-9)
    return {
        "count": len(latencies),
        "rate": len(latencies) / span,
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
    }


# -- one run ------------------------------------------------------------------------------
def run_once(kind: str, args: argparse.Namespace, host: str, port: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="fs-bench-mqtt-"))
    env, cleanup = prepare_store(kind, workdir, args.pg_url)
    root = f"bench/{uuid.uuid4().hex[:10]}"
    store = register(host, port, root)
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    service = ctx.Process(target=serve, args=(env, ready, stop))
    service.start()
    try:
        if not ready.wait(60):
            raise SystemExit("the realtime service did not get ready within 60 s")
        sub = broker_reader(host, port, root)
        sub_lines: list[bytes] = []
        sub_thread = None
        if sub is not None:
            assert sub.stdout is not None
            out = sub.stdout
            sub_thread = threading.Thread(
                target=lambda: sub_lines.extend(iter(out.readline, b"")), daemon=True
            )
            sub_thread.start()
            time.sleep(0.3)
        poller = Poller(store)
        poller.start()
        total = int(args.rate * args.duration)
        first_publish = time.time()
        publisher = ctx.Process(
            target=publish, args=(host, port, root, args.rate, args.duration, args.machines)
        )
        publisher.start()
        publisher.join(args.duration + 120)
        published_s = time.time() - first_publish
        deadline = time.time() + max(30.0, args.duration)
        while len(poller.seen) < total and time.time() < deadline:
            time.sleep(0.05)
        poller.stop.set()
        poller.join(5)
        if sub is not None:
            time.sleep(0.2)
            sub.send_signal(signal.SIGTERM)
            sub.wait(5)
            if sub_thread is not None:
                sub_thread.join(5)
        span = max(poller.last_visible - first_publish, 1e-9)
        result = {
            "store": kind,
            "published": total,
            "publish_rate": total / max(published_s, 1e-9),
            "written": len(poller.seen),
            "rate": len(poller.seen) / span,
            "p50": percentile(poller.latencies, 0.5) * 1000,
            "p99": percentile(poller.latencies, 0.99) * 1000,
            "broker": broker_numbers(sub_lines, first_publish) if sub is not None else None,
        }
    finally:
        stop.set()
        service.join(30)
        if service.is_alive():
            service.terminate()
        store.dispose()
        cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=5000, help="messages per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    parser.add_argument("--machines", type=int, default=200)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help="admin URL of a PostgreSQL server")
    args = parser.parse_args()
    host, _, port = args.broker.partition(":")
    results = []
    for kind in [s.strip() for s in args.stores.split(",") if s.strip()]:
        try:
            results.append(run_once(kind, args, host, int(port or 1883)))
        except Exception as exc:
            print(f"{kind}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    print(
        f"\nMQTT realtime: {args.rate} msg/s offered for {args.duration:g} s, "
        f"{args.machines} machines, QoS 1, time series upsert by (machine_id, seq)\n"
    )
    header = f"{'path':<28} {'messages':>9} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8}  {'lost':>5}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{'factorysync → ' + r['store']:<28} {r['written']:>9} {r['rate']:>9.0f} "
            f"{r['p50']:>8.1f} {r['p99']:>8.1f}  {r['published'] - r['written']:>5}"
        )
        b = r["broker"]
        if b is None:
            print(f"{'mosquitto_sub (broker only)':<28} {'n/a: mosquitto_sub not installed':>40}")
        else:
            print(
                f"{'mosquitto_sub (broker only)':<28} {b['count']:>9} {b['rate']:>9.0f} "
                f"{b['p50']:>8.1f} {b['p99']:>8.1f}  {r['published'] - b['count']:>5}"
            )
        print(f"{'  publisher offered':<28} {r['published']:>9} {r['publish_rate']:>9.0f}")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
