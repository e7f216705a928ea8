"""Service memory: ``factorysync run`` holding many polled sources and live subscriptions.

A plant's service runs for months, so what it holds after ten minutes must be what it
holds after ten days. This starts the real service (``factorysync init``, ``apply``,
``run`` as processes of their own) with ``--sources`` CSV sources on mixed cadences (30,
60, 120 and 300 s; a changer rewrites a few of their files every few seconds, so runs
insert, update and delete) and ``--subscriptions`` MQTT sources, each fed ``--rate``
messages/s by a publisher process through the local Mosquitto broker, for
``--duration`` seconds. It samples the service process's resident memory every second
and prints:

* peak RSS (the kernel's high-water mark, VmHWM) against the target (300 MB);
* RSS after the first minute and at the end (split at the end into what the process
  allocated and its libraries' mapped code), and the growth over the second half of the
  run, in MB per 10 minutes (a leak shows as a steady climb; a working set does not);
* runs finished and failed, and realtime rows written against messages published.

    python bench/service_memory.py [--sources 500] [--subscriptions 10] [--rate 20]
                                   [--duration 600] [--store sqlite|postgresql]
                                   [--broker 127.0.0.1:1883] [--json PATH]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mqtt_realtime import MESSAGE_MAPPING, prepare_store, publish

TARGET_MB = 300.0
CADENCES = (30, 60, 120, 300)
ROWS_PER_FILE = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_file(path: Path, rng: random.Random, version: int) -> None:
    """One source's CSV: ``ROWS_PER_FILE`` machines' counters; a new version changes some
    values and drops and adds a few rows (the run then updates, deletes and inserts)."""
    start = version % 5
    lines = ["machine_id,line,good,scrap,oee,updated_at"]
    for i in range(start, start + ROWS_PER_FILE):
        lines.append(
            f"M-{i:04d},L{i % 7},{rng.randrange(10_000)},{rng.randrange(100)},"
            f"{rng.random():.4f},2026-12-01T{version % 24:02d}:{i % 60:02d}:00+00:00"
        )
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a file


def declarations(data: Path, n_sources: int, n_subs: int, host: str, port: int, root: str) -> str:
    sources: list[dict[str, Any]] = []
    for i in range(n_sources):
        sources.append(
            {
                "source_id": f"counts-{i:03d}",
                "name": f"Counters {i}",
                "source_type": "csv",
                "refresh_interval": CADENCES[i % len(CADENCES)],
                "connections": [{"connection_config": {"file_path": str(data / f"c{i:03d}.csv")}}],
                "mappings": [
                    {
                        "target_table": f"counts_{i % 20:02d}",
                        "sync_strategy": "full",
                        "mapping_config": {"primary_key": "machine_id"},
                    }
                ],
            }
        )
    for s in range(n_subs):
        topic_root = f"{root}/{s}"
        sources.append(
            {
                "source_id": f"feed-{s:02d}",
                "name": f"Machine feed {s}",
                "source_type": "mqtt",
                "connections": [
                    {
                        "connection_config": {
                            "host": host,
                            "port": port,
                            "topics": [f"{topic_root}/+/status"],
                            "qos": 1,
                            "topic_template": f"{topic_root}/{{machine_id}}/status",
                            "client_id": f"bench-mem-{uuid.uuid4().hex[:10]}",
                            "session_expiry_s": 60,
                        }
                    }
                ],
                "mappings": [
                    {
                        "target_table": f"feed_{s:02d}",
                        "sync_strategy": "realtime",
                        "sync_frequency": "realtime",
                        "mapping_config": MESSAGE_MAPPING,
                    }
                ],
            }
        )
    return orjson.dumps({"sources": sources}).decode()  # JSON is YAML


def rss_parts_kb(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) resident memory of a process, in kB: what it allocated,
    and the mapped code of its libraries (shared with other processes, but counted)."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Anonymous"):
            values[key] = int(rest.split()[0])
    return values.get("Anonymous", 0), values.get("Rss", 0) - values.get("Anonymous", 0)


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class Changer(threading.Thread):
    """Rewrites a few source files every ``every_s`` seconds."""

    def __init__(self, data: Path, n_sources: int, every_s: float = 2.0, per_tick: int = 5):
        super().__init__(daemon=True)
        self.data, self.n, self.every_s, self.per_tick = data, n_sources, every_s, per_tick
        self.stop = threading.Event()
        self.rng = random.Random(7)
        self.versions = [0] * n_sources
        self.changes = 0

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            for i in self.rng.sample(range(self.n), min(self.per_tick, self.n)):
                self.versions[i] += 1
                write_file(self.data / f"c{i:03d}.csv", self.rng, self.versions[i])
                self.changes += 1


def counts(env: dict[str, str], n_subs: int) -> dict[str, int]:
    """Runs finished and failed, and rows in the realtime tables, read from the store."""
    os.environ.update(env)
    from sqlalchemy import text

    from factorysync.settings import reset_settings
    from factorysync.store.store import Store

    reset_settings()
    store = Store()
    try:
        with store.connect() as conn:
            by_status = dict(
                conn.execute(
                    text(
                        "SELECT sync_status, count(*) FROM data_source_sync_history "
                        "WHERE sync_type <> 'realtime' GROUP BY sync_status"
                    )
                ).all()
            )
            rows = 0
            for s in range(n_subs):
                try:
                    rows += int(
                        conn.execute(
                            text(f"SELECT count(*) FROM feed_{s:02d} WHERE seq >= 0")
                        ).scalar()
                    )
                except Exception:  # a feed that never wrote has no table
                    conn.rollback()
    finally:
        store.dispose()
    return {
        "runs_success": int(by_status.get("success", 0)),
        "runs_failed": int(by_status.get("failed", 0)) + int(by_status.get("partial", 0)),
        "realtime_rows": rows,
    }


def wait_subscribed(
    env: dict[str, str], host: str, port: int, root: str, n_subs: int, deadline_s: float
) -> None:
    """Until every feed has written a probe (seq -1): the subscriptions are up, so what
    the publishers send from now on reaches the service (a broker drops messages for a
    subscription that does not exist yet)."""
    os.environ.update(env)
    from sqlalchemy import text

    from factorysync.settings import reset_settings
    from factorysync.store.store import Store

    reset_settings()
    store = Store()
    pending = set(range(n_subs))
    end = time.monotonic() + deadline_s
    try:
        while pending:
            if time.monotonic() > end:
                raise SystemExit(f"feeds {sorted(pending)} did not subscribe in {deadline_s:g} s")
            for s in sorted(pending):
                probe(host, port, f"{root}/{s}/M-0000/status")
            time.sleep(0.5)
            with store.connect() as conn:
                for s in sorted(pending):
                    try:
                        conn.execute(text(f"SELECT 1 FROM feed_{s:02d} WHERE seq = -1")).one()
                        pending.discard(s)
                    except Exception:  # no table or no probe row yet
                        conn.rollback()
    finally:
        store.dispose()


def probe(host: str, port: int, topic: str) -> None:
    """One QoS 0 message with seq -1, over a plain MQTT 3.1.1 connection."""
    from mqtt_realtime import _utf8, _varint

    payload = orjson.dumps({"seq": -1, "sent": time.time(), "speed": 0, "ok": True})
    with socket.create_connection((host, port), timeout=10) as sock:
        body = _utf8("MQTT") + bytes([4, 0x02]) + (30).to_bytes(2, "big")
        body += _utf8(f"bench-probe-{uuid.uuid4().hex[:10]}")
        sock.sendall(b"\x10" + _varint(len(body)) + body)
        sock.recv(4)
        variable = _utf8(topic)
        sock.sendall(b"\x30" + _varint(len(variable) + len(payload)) + variable + payload)
        sock.sendall(b"\xe0\x00")


def run_cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "factorysync.cli", *args],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=600,
    )


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env, cleanup = prepare_store(args.store, workdir, args.pg_url)
    host, _, port_text = args.broker.partition(":")
    port = int(port_text or 1883)
    data = Path(env["FACTORYSYNC_DATA_ROOTS"])
    rng = random.Random(1)
    for i in range(args.sources):
        write_file(data / f"c{i:03d}.csv", rng, 0)
    root = f"bench/mem-{uuid.uuid4().hex[:8]}"
    sources = workdir / "sources.yaml"
    sources.write_text(declarations(data, args.sources, args.subscriptions, host, port, root))
    api_port = free_port()
    env = {**env, "FACTORYSYNC_API_PORT": str(api_port), "FACTORYSYNC_API_HOST": "127.0.0.1"}
    try:
        run_cli(env, "init")
        run_cli(env, "apply", str(sources))
        service = subprocess.Popen(
            [sys.executable, "-m", "factorysync.cli", "run"],
            env={**os.environ, **env},
            cwd=workdir,  # its realtime spool folder is relative to it
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "service.log", "wb"),  # noqa: SIM115 - the child holds it
            start_new_session=True,
        )
        print(f"factorysync run: pid {service.pid}", file=sys.stderr, flush=True)
        wait_subscribed(env, host, port, root, args.subscriptions, 300.0)
        ctx = mp.get_context("spawn")
        publishers = [
            ctx.Process(
                target=publish,
                args=(host, port, f"{root}/{s}", args.rate, args.duration, 10),
                daemon=True,
            )
            for s in range(args.subscriptions)
        ]
        changer = Changer(data, args.sources)
        samples: list[tuple[float, float]] = []
        began = time.monotonic()
        for p in publishers:
            p.start()
        changer.start()
        peak_kb = 0
        parts_kb = (0, 0)
        try:
            while (elapsed := time.monotonic() - began) < args.duration:
                if service.poll() is not None:
                    raise SystemExit(
                        f"factorysync run ended with {service.returncode}; see "
                        f"{workdir / 'service.log'}"
                    )
                rss, hwm = rss_kb(service.pid)
                peak_kb = max(peak_kb, hwm)
                samples.append((elapsed, rss / 1024))
                time.sleep(args.sample_s)
        finally:
            changer.stop.set()
            for p in publishers:
                p.join(timeout=120)
            if service.poll() is None:
                _, hwm = rss_kb(service.pid)
                peak_kb = max(peak_kb, hwm)
                parts_kb = rss_parts_kb(service.pid)
                service.send_signal(signal.SIGTERM)
                try:
                    service.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    service.kill()
        published = args.subscriptions * int(args.rate * args.duration)
        found = counts(env, args.subscriptions)
    finally:
        cleanup()
    result = summarize(samples, peak_kb, published, changer.changes, found, args)
    result["rss_at_end_anonymous_mb"] = round(parts_kb[0] / 1024, 1)
    result["rss_at_end_file_mb"] = round(parts_kb[1] / 1024, 1)
    return result


def summarize(
    samples: list[tuple[float, float]],
    peak_kb: int,
    published: int,
    changes: int,
    found: dict[str, int],
    args: argparse.Namespace,
) -> dict[str, Any]:
    def rss_at(t: float) -> float:
        near = [mb for at, mb in samples if at >= t] or [samples[-1][1]]
        return near[0]

    half = [(t, mb) for t, mb in samples if t >= args.duration / 2]
    growth = float("nan")
    if len(half) >= 3:
        ts, mbs = [t for t, _ in half], [mb for _, mb in half]
        mean_t, mean_mb = statistics.fmean(ts), statistics.fmean(mbs)
        var = sum((t - mean_t) ** 2 for t in ts)
        slope = sum((t - mean_t) * (mb - mean_mb) for t, mb in half) / var if var else 0.0
        growth = slope * 600  # MB per 10 minutes
    return {
        "store": args.store,
        "sources": args.sources,
        "subscriptions": args.subscriptions,
        "duration_s": args.duration,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "rss_after_1_min_mb": round(rss_at(min(60.0, args.duration / 2)), 1),
        "rss_at_end_mb": round(samples[-1][1], 1) if samples else float("nan"),
        "growth_2nd_half_mb_per_10_min": round(growth, 1),
        "file_changes": changes,
        "messages_published": published,
        **found,
        "target_mb": TARGET_MB,
        "within_target": peak_kb / 1024 <= TARGET_MB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--rate", type=int, default=20, help="messages/s per subscription")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--sample-s", type=float, default=1.0)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "FACTORYSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fs-bench-mem-") as tmp:
        result = measure(args, Path(tmp))
    print(
        f"\nfactorysync run: {result['sources']} polled sources, {result['subscriptions']} "
        f"MQTT subscriptions at {args.rate} msg/s each, {args.duration:g} s, {args.store} store"
    )
    rows = [
        ("peak RSS (VmHWM)", f"{result['peak_rss_mb']} MB", f"target ≤ {TARGET_MB:.0f} MB"),
        ("RSS after the first minute", f"{result['rss_after_1_min_mb']} MB", ""),
        ("RSS at the end", f"{result['rss_at_end_mb']} MB", ""),
        (
            "  of it allocated / library code",
            f"{result['rss_at_end_anonymous_mb']} / {result['rss_at_end_file_mb']} MB",
            "",
        ),
        ("growth, second half", f"{result['growth_2nd_half_mb_per_10_min']} MB / 10 min", ""),
        (
            "runs finished / failed or partial",
            f"{result['runs_success']} / {result['runs_failed']}",
            "",
        ),
        ("source files changed", str(result["file_changes"]), ""),
        (
            "realtime rows / published",
            f"{result['realtime_rows']} / {result['messages_published']}",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>22}  {note}")
    print(f"  within target: {'yes' if result['within_target'] else 'NO'}")
    if args.json:
        args.json.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
