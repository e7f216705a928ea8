"""Data API load: many dashboard clients reading 100-row pages of a target table.

For each store (SQLite, PostgreSQL) this builds the demo plant data set with the real
commands (``init``, ``demo --no-serve``, ``user add``, ``token create``), serves it with
``factorysync serve`` on 127.0.0.1, and lets ``--clients`` concurrent clients, each on its
own keep-alive connection, request ``GET /api/data/{table}?limit=100&offset=…`` back to
back for ``--duration`` seconds (pages cycle through the first ``--pages`` pages). It
prints throughput and latency percentiles; the target is p99 <= 50 ms.

The server runs as configured by default, with ``api_cache_s`` = 1 s (repeated pages come
from memory, refreshed in the background); ``--cache-s 0`` measures every request
reaching the store.

The clients speak HTTP/1.1 over asyncio streams directly: a full HTTP client library
would take much of this 2-core machine's CPU away from the server it measures.

    python bench/api_load.py [--clients 100] [--duration 20] [--stores sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

PG_ADMIN_URL = os.environ.get(
    "FACTORYSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TARGET_P99_MS = 50.0


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "factorysync.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SystemExit(f"factorysync {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgDatabase:
    """A throw-away database on the local server."""

    def __init__(self) -> None:
        import psycopg

        self.psycopg = psycopg
        self.conninfo = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        self.name = f"fs_bench_{os.getpid()}"
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name

    def _admin(self, sql: str) -> None:
        with self.psycopg.connect(self.conninfo, autocommit=True, connect_timeout=3) as conn:
            conn.execute(sql)

    def __enter__(self) -> PgDatabase:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass
class Result:
    store: str
    table: str
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    return status, body


async def _client(
    port: int, paths: list[bytes], deadline: float, result: Result, offset: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(paths[i % len(paths)])
            i += 1
            status, _ = await _read_response(reader)
            elapsed = time.perf_counter() - started
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 200:
                result.latencies.append(elapsed)
            else:
                result.errors += 1
    finally:
        writer.close()


async def drive(port: int, token: str, table: str, args: argparse.Namespace, store: str) -> Result:
    requests = [
        (
            f"GET /api/data/{table}?limit={args.page_size}&offset={p * args.page_size} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            + ("Accept-Encoding: gzip\r\n" if args.gzip else "")
            + "\r\n"
        ).encode("ascii")
        for p in range(args.pages)
    ]
    warm = Result(store, table, args.clients, args.warmup)
    deadline = time.perf_counter() + args.warmup
    await asyncio.gather(*(_client(port, requests, deadline, warm, i) for i in range(args.clients)))
    result = Result(store, table, args.clients, args.duration)
    started = time.perf_counter()
    deadline = started + args.duration
    await asyncio.gather(
        *(_client(port, requests, deadline, result, i) for i in range(args.clients))
    )
    result.seconds = time.perf_counter() - started
    return result


def _wait_healthy(port: int, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not become healthy")


def biggest_table(env: dict[str, str], token: str, port: int) -> str:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/legacy/source_data",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        entries = orjson.loads(r.read())
    from sqlalchemy import create_engine, text

    engine = create_engine(env["FACTORYSYNC_DATABASE_URL"])
    sizes = {}
    with engine.connect() as conn:
        for entry in entries:
            table = entry["url"].rsplit("/", 2)[-2]
            sizes[table] = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
    engine.dispose()
    return max(sizes, key=lambda t: sizes[t])


def run_store(store: str, url: str, workdir: Path, args: argparse.Namespace) -> Result:
    # The demo files go in a data root of their own: the store and the key file stay
    # outside it (factorysync refuses a root that holds them).
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "FACTORYSYNC_DATABASE_URL": url,
        "FACTORYSYNC_DATA_ROOTS": str(data),
        "FACTORYSYNC_SECRET_KEY": "",
        "FACTORYSYNC_SECRET_KEY_FILE": str(workdir / "bench.key"),
        "FACTORYSYNC_LOG_LEVEL": "WARNING",
    }
    if args.cache_s is not None:
        env["FACTORYSYNC_API_CACHE_S"] = str(args.cache_s)
    cli(env, "init")
    cli(env, "demo", "--no-serve", "--size-mb", str(args.size_mb), "--dir", str(data / "demo"))
    cli(env, "user", "add", "dashboard", "--role", "viewer")
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
    try:
        _wait_healthy(port, server)
        table = args.table or biggest_table(env, token, port)
        return asyncio.run(drive(port, token, table, args, store))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds measured.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds before measuring.")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2, help="Server worker processes.")
    parser.add_argument("--size-mb", type=float, default=5.0, help="Demo data set size.")
    parser.add_argument("--table", help="Target table (default: the demo's largest).")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--pages", type=int, default=20, help="Distinct pages cycled through.")
    parser.add_argument("--gzip", action="store_true", help="Ask for gzip-compressed bodies.")
    parser.add_argument(
        "--cache-s", type=float, help="The server's api_cache_s (default: its setting)."
    )
    parser.add_argument("--json", action="store_true", help="Print the results as JSON too.")
    args = parser.parse_args(argv)

    results = []
    for store in [s.strip() for s in args.stores.split(",") if s.strip()]:
        with tempfile.TemporaryDirectory(prefix="fs-bench-") as tmp:
            workdir = Path(tmp)
            if store == "sqlite":
                results.append(run_store(store, f"sqlite:///{workdir / 'fs.db'}", workdir, args))
            elif store == "postgresql":
                with PgDatabase() as db:
                    results.append(run_store(store, db.url, workdir, args))
            else:
                parser.error(f"unknown store {store!r} (sqlite, postgresql)")

    header = (
        f"{'store':<11} {'table':<26} {'clients':>7} {'requests':>9} {'errors':>6} "
        f"{'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  p99 <= {TARGET_P99_MS:g} ms"
    )
    cache = "default" if args.cache_s is None else f"{args.cache_s:g} s"
    print(
        f"{args.clients} clients, {args.duration:g} s, {args.page_size}-row pages cycling over "
        f"{args.pages}, {args.workers} server worker(s), api_cache_s {cache}"
        + (", gzip" if args.gzip else "")
    )
    print(header)
    print("-" * len(header))
    for r in results:
        met = "yes" if r.percentile(0.99) <= TARGET_P99_MS else "no"
        print(
            f"{r.store:<11} {r.table:<26} {r.clients:>7} {len(r.latencies):>9} {r.errors:>6} "
            f"{r.throughput:>8.0f} {r.percentile(0.50):>7.1f} {r.percentile(0.99):>7.1f} "
            f"{r.percentile(1.0):>7.1f}  {met}"
        )
    if args.json:
        print(
            orjson.dumps(
                [
                    {
                        "store": r.store,
                        "table": r.table,
                        "clients": r.clients,
                        "requests": len(r.latencies),
                        "errors": r.errors,
                        "statuses": r.statuses,
                        "throughput": r.throughput,
                        "p50_ms": r.percentile(0.5),
                        "p99_ms": r.percentile(0.99),
                    }
                    for r in results
                ],
                option=orjson.OPT_NON_STR_KEYS,
            ).decode()
        )
    return 1 if any(r.errors or not r.latencies for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
