"""API under a dashboard's mixed read load: registry, status, history and data pages.

For each store (SQLite, PostgreSQL) this builds the demo plant data set with the real
commands (``init``, ``demo --no-serve``, ``user add``, ``token create``: the parts of
``api_load.py``), serves it with ``factorysync serve`` on 127.0.0.1, and lets
``--clients`` clients, each on its own keep-alive connection with an operator's token,
cycle over the read endpoints a plant dashboard polls::

    /api/sources                      the registry, every panel's source list
    /api/sources/{id}/history         a source's latest runs (a random source)
    /api/status                       the service's state
    /api/runs                         the latest runs of every source
    /api/data/{table}?…               pages of target tables: filters, sorts, offsets
                                      and page sizes drawn at random, so most pages
                                      are not in the server's answer cache

Half of each client's requests are data pages. Two modes are measured, one after the
other on the same server:

* ``paced``: each client waits ``--think-ms`` (default 250 ms, ±25 % so clients drift
  apart) between an answer and its next request, as a dashboard polling several panels
  does. The target applies here: p99 <= 100 ms, no errors.
* ``closed``: back to back (what the server can take; latency is then the queue).

It prints, per mode and endpoint, requests, errors, p50/p95/p99/max and req/s, and the
share of data requests that were cache misses: a data page counts as a miss when the same
path and query was not answered within ``api_cache_s`` before (to any client). Each server
worker process has its own cache, so real misses are at least that many. The machine's
load average is printed before and after each run.

``--profile DIR`` records the server processes with py-spy (``--py-spy PATH``) during
each measured run, as raw folded stacks (``DIR/STORE-MODE.txt``).

    python bench/api_mixed.py [--clients 50] [--duration 20] [--modes paced,closed]
                              [--stores sqlite,postgresql] [--think-ms 250]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from api_load import PgDatabase, _read_response, _wait_healthy, cli, free_port

TARGET_P99_MS = 100.0
ENDPOINTS = ("sources", "history", "status", "runs", "data")
# One client's cycle: half of its requests are data pages.
CYCLE = ("sources", "data", "history", "data", "status", "data", "runs", "data")
PAGE_SIZES = (20, 50, 100)


@dataclass
class Table:
    name: str
    rows: int
    columns: list[str]
    values: dict[str, list[Any]]  # column → values seen in its first rows (for filters)


@dataclass
class Plant:
    """What the requests are drawn from: the demo's sources and target tables."""

    sources: list[str]
    tables: list[Table]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {e: [] for e in ENDPOINTS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDPOINTS, 0))
    statuses: dict[int, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)  # the first few errors, for the report
    data_misses: int = 0
    data_requests: int = 0
    seconds: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def all_latencies(self) -> list[float]:
        return [x for e in ENDPOINTS for x in self.latencies[e]]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Requests:
    """Draws each client's next request; knows which data pages were answered lately."""

    def __init__(self, plant: Plant, port: int, token: str, cache_s: float, seed: int) -> None:
        self.plant = plant
        self.head = f" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
        self.cache_s = cache_s
        self.rng = random.Random(seed)
        self.answered: dict[str, float] = {}  # data path+query → when last answered

    def raw(self, target: str) -> bytes:
        return f"GET {target}{self.head}".encode("ascii")

    def draw(self, endpoint: str) -> str:
        rng = self.rng
        if endpoint == "sources":
            return "/api/sources"
        if endpoint == "status":
            return "/api/status"
        if endpoint == "runs":
            return f"/api/runs?limit={rng.choice((20, 50))}"
        if endpoint == "history":
            return f"/api/sources/{quote(rng.choice(self.plant.sources))}/history?limit=20"
        return self._page(rng.choice(self.plant.tables))

    def _page(self, table: Table) -> str:
        rng = self.rng
        limit = rng.choice(PAGE_SIZES)
        params: list[tuple[str, str]] = [("limit", str(limit))]
        if rng.random() < 0.7:
            column = rng.choice(table.columns)
            params.append(("order", ("-" if rng.random() < 0.5 else "") + column))
        filterable = [c for c in table.columns if table.values.get(c)]
        if filterable and rng.random() < 0.6:
            column = rng.choice(filterable)
            value = rng.choice(table.values[column])
            if isinstance(value, int | float) and not isinstance(value, bool):
                params.append((f"{column}__gte", str(value)))
            else:
                params.append((column, str(value)))
            offset_room = 200
        else:
            offset_room = max(table.rows - limit, 0)
        # Most dashboards read the first page; the others go anywhere in the table.
        if rng.random() < 0.6 and offset_room:
            params.append(("offset", str(rng.randrange(min(offset_room, 5000) + 1))))
        return f"/api/data/{table.name}?{urlencode(params)}"

    def note(self, target: str, stats: Stats) -> None:
        """Count a data page as a miss unless answered within ``cache_s`` before."""
        now = time.monotonic()
        last = self.answered.get(target)
        stats.data_requests += 1
        if last is None or now - last >= self.cache_s:
            stats.data_misses += 1
        self.answered[target] = now


async def client(
    port: int,
    requests: Requests,
    stats: Stats,
    deadline: float,
    think_s: float,
    start: int,
    rng: random.Random,
) -> None:
    if think_s:
        await asyncio.sleep(rng.uniform(0, think_s))  # clients start spread over one pause
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = start
    try:
        while time.perf_counter() < deadline:
            endpoint = CYCLE[i % len(CYCLE)]
            i += 1
            target = requests.draw(endpoint)
            started = time.perf_counter()
            try:
                writer.write(requests.raw(target))
                status, body = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError) as exc:
                stats.errors[endpoint] += 1
                if len(stats.samples) < 5:
                    stats.samples.append(f"{target}: {type(exc).__name__}")
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            elapsed = time.perf_counter() - started
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if status == 200:
                stats.latencies[endpoint].append(elapsed)
                if endpoint == "data":
                    requests.note(target, stats)
            else:
                stats.errors[endpoint] += 1
                if len(stats.samples) < 5:
                    stats.samples.append(
                        f"{target}: {status} {body[:300].decode(errors='replace')}"
                    )
            if think_s:
                await asyncio.sleep(think_s * rng.uniform(0.75, 1.25))
    finally:
        writer.close()


async def drive(
    port: int, token: str, plant: Plant, args: argparse.Namespace, think_s: float, seed: int
) -> Stats:
    requests = Requests(plant, port, token, args.cache_s_seen, seed)
    rngs = [random.Random(seed * 1000 + i) for i in range(args.clients)]
    warm = Stats()
    deadline = time.perf_counter() + args.warmup
    await asyncio.gather(
        *(client(port, requests, warm, deadline, think_s, i, rngs[i]) for i in range(args.clients))
    )
    stats = Stats(load_before=os.getloadavg())
    started = time.perf_counter()
    deadline = started + args.duration
    await asyncio.gather(
        *(client(port, requests, stats, deadline, think_s, i, rngs[i]) for i in range(args.clients))
    )
    stats.seconds = time.perf_counter() - started
    stats.load_after = os.getloadavg()
    return stats


def _get(port: int, token: str, target: str) -> Any:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{target}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return orjson.loads(answer.read())


def discover(port: int, token: str, url: str) -> Plant:
    """The demo's sources (from the API) and target tables with their sizes (from the
    store) and a few values per column (from the API's first page)."""
    from sqlalchemy import create_engine, text

    sources = [s["source_id"] for s in _get(port, token, "/api/sources")]
    engine = create_engine(url)
    with engine.connect() as conn:
        names = sorted(
            set(conn.execute(text("SELECT target_table FROM data_source_mappings")).scalars())
        )
        sizes = {n: conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in names}
    engine.dispose()
    tables = []
    for name in names:
        if not sizes[name]:
            continue
        page = _get(port, token, f"/api/data/{name}?limit=50")
        if not page["items"]:
            continue
        # JSON columns (objects and lists) can be neither sorted nor compared.
        columns = [
            c
            for c in page["items"][0]
            if c != "_synced_at" and not any(isinstance(r[c], dict | list) for r in page["items"])
        ]
        values: dict[str, list[Any]] = {}
        for column in columns:
            seen = [
                r[column] for r in page["items"] if isinstance(r.get(column), str | int | float)
            ]
            # Text from JSON columns or long free text makes poor filters.
            seen = [v for v in seen if not isinstance(v, str) or len(v) <= 40]
            if seen:
                values[column] = sorted(set(seen), key=str)[:20]
        tables.append(Table(name, int(sizes[name]), columns, values))
    return Plant(sources, tables)


def _profiler(args: argparse.Namespace, pid: int, label: str) -> subprocess.Popen[bytes] | None:
    if not args.profile:
        return None
    out = Path(args.profile) / f"{label}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            args.py_spy,
            "record",
            "-r",
            "200",
            "-f",
            "raw",
            "--subprocesses",
            "--pid",
            str(pid),
            "-d",
            str(int(args.duration)),
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_store(store: str, url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Stats]:
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "FACTORYSYNC_DATABASE_URL": url,
        "FACTORYSYNC_DATA_ROOTS": str(data),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_SECRET_KEY_FILE": str(workdir / "bench.key"),
        "FACTORYSYNC_LOG_LEVEL": "WARNING",
        "FACTORYSYNC_SPOOL_DIR": str(workdir / "spool"),
    }
    if args.cache_s is not None:
        env["FACTORYSYNC_API_CACHE_S"] = str(args.cache_s)
    cli(env, "init")
    cli(env, "demo", "--no-serve", "--size-mb", str(args.size_mb), "--dir", str(data / "demo"))
    cli(env, "user", "add", "dashboard", "--role", "operator")
    token = cli(env, "token", "create", "--user", "dashboard").strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "factorysync.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    results = {}
    try:
        _wait_healthy(port, server, timeout=300)  # a busy machine starts slowly
        plant = discover(port, token, url)
        for n, mode in enumerate(args.mode_list):
            think_s = args.think_ms / 1000 if mode == "paced" else 0.0
            profiler = _profiler(args, server.pid, f"{store}-{mode}")
            results[mode] = asyncio.run(drive(port, token, plant, args, think_s, seed=n + 1))
            if profiler is not None:
                profiler.wait(timeout=args.duration + 60)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return results


def report(results: dict[str, dict[str, Stats]], args: argparse.Namespace) -> list[str]:
    lines = []
    cache = "default (1 s)" if args.cache_s is None else f"{args.cache_s:g} s"
    lines.append(
        f"{args.clients} clients, {args.duration:g} s per mode, {args.workers} server "
        f"worker(s), api_cache_s {cache}, demo {args.size_mb:g} MB, {os.cpu_count()} CPUs"
    )
    header = (
        f"{'store':<10} {'mode':<7} {'endpoint':<8} {'requests':>8} {'errors':>6} "
        f"{'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    for store, modes in results.items():
        for mode, s in modes.items():
            what = f"think {args.think_ms:g} ms" if mode == "paced" else "back to back"
            lines.append("")
            lines.append(
                f"{store}, {mode} ({what}); load average {s.load_before[0]:.2f} before, "
                f"{s.load_after[0]:.2f} after; data cache misses "
                f"{s.data_misses}/{s.data_requests} "
                f"({100 * s.data_misses / max(s.data_requests, 1):.0f} %)"
            )
            lines.append(header)
            lines.append("-" * len(header))
            rows = [(e, s.latencies[e], s.errors[e]) for e in ENDPOINTS]
            rows.append(("all", s.all_latencies(), sum(s.errors.values())))
            for name, lat, errors in rows:
                lines.append(
                    f"{store:<10} {mode:<7} {name:<8} {len(lat):>8} {errors:>6} "
                    f"{len(lat) / s.seconds if s.seconds else 0:>7.0f} "
                    f"{percentile(lat, 0.5):>7.1f} {percentile(lat, 0.95):>7.1f} "
                    f"{percentile(lat, 0.99):>7.1f} {percentile(lat, 1.0):>7.1f}"
                )
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(s.statuses.items()))
            lines.append(f"answers by status: {statuses}")
            lines.extend(f"  error: {sample}" for sample in s.samples)
            if mode == "paced":
                p99 = percentile(s.all_latencies(), 0.99)
                errors = sum(s.errors.values())
                met = "met" if p99 <= TARGET_P99_MS and not errors else "NOT met"
                lines.append(
                    f"target (paced): p99 <= {TARGET_P99_MS:g} ms and 0 errors: {met} "
                    f"(p99 {p99:.1f} ms, {errors} errors)"
                )
    return lines


def as_json(results: dict[str, dict[str, Stats]]) -> list[dict[str, Any]]:
    out = []
    for store, modes in results.items():
        for mode, s in modes.items():
            for name in (*ENDPOINTS, "all"):
                lat = s.all_latencies() if name == "all" else s.latencies[name]
                errors = sum(s.errors.values()) if name == "all" else s.errors[name]
                out.append(
                    {
                        "store": store,
                        "mode": mode,
                        "endpoint": name,
                        "requests": len(lat),
                        "errors": errors,
                        "throughput": len(lat) / s.seconds if s.seconds else 0.0,
                        "p50_ms": percentile(lat, 0.5),
                        "p95_ms": percentile(lat, 0.95),
                        "p99_ms": percentile(lat, 0.99),
                        "max_ms": percentile(lat, 1.0),
                        "data_miss_share": s.data_misses / max(s.data_requests, 1),
                        "load_before": s.load_before[0],
                        "load_after": s.load_after[0],
                    }
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds measured per mode.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds before measuring.")
    parser.add_argument("--think-ms", type=float, default=250.0, help="Pause of paced clients.")
    parser.add_argument("--modes", default="paced,closed", help="paced, closed, or both.")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2, help="Server worker processes.")
    parser.add_argument("--size-mb", type=float, default=5.0, help="Demo data set size.")
    parser.add_argument(
        "--cache-s", type=float, help="The server's api_cache_s (default: its setting, 1 s)."
    )
    parser.add_argument("--profile", help="Record the server with py-spy into this folder.")
    parser.add_argument("--py-spy", default="py-spy", help="The py-spy program.")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON too.")
    args = parser.parse_args(argv)
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.mode_list or set(args.mode_list) - {"paced", "closed"}:
        parser.error("--modes: paced, closed or both")
    args.cache_s_seen = 1.0 if args.cache_s is None else args.cache_s

    results: dict[str, dict[str, Stats]] = {}
    for store in [s.strip() for s in args.stores.split(",") if s.strip()]:
        with tempfile.TemporaryDirectory(prefix="fs-bench-") as tmp:
            workdir = Path(tmp)
            if store == "sqlite":
                url = f"sqlite:///{workdir / 'fs.db'}"
                results[store] = run_store(store, url, workdir, args)
            elif store == "postgresql":
                with PgDatabase() as db:
                    results[store] = run_store(store, db.url, workdir, args)
            else:
                parser.error(f"unknown store {store!r} (sqlite, postgresql)")

    print("\n".join(report(results, args)))
    if args.json:
        print(orjson.dumps(as_json(results)).decode())
    failed = any(
        sum(s.errors.values()) or not s.all_latencies()
        for modes in results.values()
        for s in modes.values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
