"""CSV load benchmark: a production-data CSV into a fresh store, beside the native loaders.

Contenders, run alternately (--runs times each), each timed as a whole process (start-up
and imports included) with its peak resident memory:

    sqlite3 .import          the CSV into a pre-created, typed SQLite table
    factorysync → SQLite     `factorysync source sync` of a CSV source into a SQLite store
    psql \\copy               the CSV into a pre-created, typed PostgreSQL table
    factorysync → PostgreSQL the same sync into a PostgreSQL store

Every run starts from an empty target (store set-up is not timed). The PostgreSQL server's
own CPU and memory are not in a client process's figures.

    python bench/load_csv.py [--rows 1000000] [--runs 3] [--pg-url URL] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

COLUMNS = [
    "id", "machine_id", "line", "ts", "shift", "product_code", "qty_good", "qty_reject",
    "cycle_time_s", "temperature_c", "vibration_mm_s", "status",
]  # fmt: skip
SQLITE_TABLE = (
    "CREATE TABLE production (id INTEGER PRIMARY KEY, machine_id TEXT, line TEXT, ts TEXT, "
    "shift TEXT, product_code TEXT, qty_good INTEGER, qty_reject INTEGER, cycle_time_s REAL, "
    "temperature_c REAL, vibration_mm_s REAL, status TEXT)"
)
PG_TABLE = (
    "CREATE TABLE production (id BIGINT PRIMARY KEY, machine_id TEXT, line TEXT, "
    "ts TIMESTAMPTZ, shift TEXT, product_code TEXT, qty_good INTEGER, qty_reject INTEGER, "
    "cycle_time_s DOUBLE PRECISION, temperature_c DOUBLE PRECISION, "
    "vibration_mm_s DOUBLE PRECISION, status TEXT)"
)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


# -- data ---------------------------------------------------------------------------------
def write_production_csv(path: Path, rows: int, seed: int = 20261126) -> int:
    """``rows`` deterministic production records (one every 3 s per plant); returns bytes."""
    rng = random.Random(seed)
    plant = timezone(timedelta(hours=7))
    start = datetime(2026, 1, 1, tzinfo=plant)
    machines = [f"M-{i:03d}" for i in range(1, 41)]
    lines = ["LINE-A", "LINE-B", "LINE-C", "LINE-D"]
    products = [f"P-{i:04d}" for i in range(1, 121)]
    statuses = ["RUN"] * 8 + ["IDLE", "DOWN"]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(COLUMNS) + "\n")
        for i in range(1, rows + 1):
            ts = start + timedelta(seconds=3 * i)
            m = i % 40
            status = statuses[rng.randrange(10)]
            good = 0 if status == "DOWN" else rng.randint(5, 60)
            out.write(
                f"{i},{machines[m]},{lines[m // 10]},{ts.isoformat()},{'ABC'[ts.hour // 8]},"
                f"{products[rng.randrange(120)]},{good},{rng.randint(0, 3)},"
                f"{rng.uniform(20, 90):.3f},{rng.gauss(65, 6):.2f},{rng.uniform(0.5, 9):.3f},"
                f"{status}\n"
            )
    return path.stat().st_size


# -- measuring ----------------------------------------------------------------------------
@dataclass
class Measurement:
    wall_s: float
    peak_rss_mb: float


@dataclass
class Contender:
    name: str
    target: str
    native: bool
    prepare: Callable[[int], None]  # run number -> empty target (not timed)
    command: Callable[[int], list[list[str]]]  # one argv, or a pipeline of several
    verify: Callable[[int], int]  # rows in the target afterwards
    env: dict[str, str] = field(default_factory=dict)
    results: list[Measurement] = field(default_factory=list)
    failure: str | None = None


GNU_TIME = "/usr/bin/time"


def measure(pipeline: Sequence[Sequence[str]], env: dict[str, str], timeout: float) -> Measurement:
    """Run argv (or a pipeline, stdout to the next stdin) and wait for all of it.

    Peak memory is each process's own maximum resident set (GNU time's %M, measured in a
    process forked from time itself: a child forked from this Python process would report
    this process's size as its own peak); the pipeline's figure is the largest of them.
    """
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        procs: list[subprocess.Popen[bytes]] = []
        previous = None
        for index, argv in enumerate(pipeline):
            last = index == len(pipeline) - 1
            wrapped = list(argv)
            if os.path.exists(GNU_TIME):
                wrapped = [GNU_TIME, "-f", "%M", "-o", f"{tmp}/rss{index}", *wrapped]
            with open(f"{tmp}/err{index}", "wb") as errors:
                proc = subprocess.Popen(
                    wrapped,
                    stdin=previous if previous is not None else subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL if last else subprocess.PIPE,
                    stderr=errors,
                    env={**os.environ, **env},
                )
            if previous is not None:
                previous.close()
            previous = proc.stdout
            procs.append(proc)
        try:
            for proc in procs:
                proc.wait(timeout=max(started + timeout - time.perf_counter(), 0.001))
        except subprocess.TimeoutExpired:
            for proc in procs:
                proc.kill()
                proc.wait()
            raise TimeoutError(f"did not finish within {timeout:g} s") from None
        wall = time.perf_counter() - started
        peak_kb = 0
        for index, proc in enumerate(procs):
            if proc.returncode != 0:
                text = Path(f"{tmp}/err{index}").read_text(errors="replace")
                raise RuntimeError(
                    f"{argv_text(pipeline[index])} exited {proc.returncode}: {text[-800:]}"
                )
            rss = Path(f"{tmp}/rss{index}")
            if rss.exists():
                peak_kb = max(peak_kb, int(rss.read_text().split()[-1]))
    return Measurement(wall, peak_kb / 1024)


def argv_text(args: Any) -> str:
    return " ".join(str(a) for a in args) if isinstance(args, list | tuple) else str(args)


def run_all(contenders: list[Contender], runs: int, timeout: float) -> None:
    for run in range(runs):
        for c in contenders:
            if c.failure:
                continue
            c.prepare(run)
            try:
                result = measure(c.command(run), c.env, timeout)
            except (TimeoutError, RuntimeError) as exc:
                c.failure = str(exc)
                print(f"  {c.name} → {c.target}: {exc}", file=sys.stderr)
                continue
            c.results.append(result)
            rows = c.verify(run)
            print(
                f"  run {run + 1}: {c.name} → {c.target}: {result.wall_s:.2f} s, "
                f"{result.peak_rss_mb:.0f} MB, {rows:,} rows",
                file=sys.stderr,
            )


def print_table(title: str, contenders: list[Contender], rows: int) -> None:
    native = {c.target: c for c in contenders if c.native and c.results}
    print(title)
    header = (
        f"{'contender':<31} {'target':<11} {'wall s median (min–max)':>24} {'rows/s':>11} "
        f"{'peak RSS MB':>12} {'× native':>9}"
    )
    print(header)
    print("-" * len(header))
    for c in contenders:
        if not c.results:
            print(f"{c.name:<31} {c.target:<11} {'failed: ' + (c.failure or 'no run'):>24}")
            continue
        walls = [m.wall_s for m in c.results]
        median = statistics.median(walls)
        spread = f"{median:.2f} ({min(walls):.2f}–{max(walls):.2f})"
        peak = max(m.peak_rss_mb for m in c.results)
        base = native.get(c.target)
        ratio = median / statistics.median(m.wall_s for m in base.results) if base else None
        print(
            f"{c.name:<31} {c.target:<11} {spread:>24} {rows / median:>11,.0f} {peak:>12.0f} "
            f"{'' if ratio is None else f'{ratio:.2f}':>9}"
        )
    if any(c.failure for c in contenders):
        print(
            "failures: "
            + "; ".join(f"{c.name} → {c.target}: {c.failure}" for c in contenders if c.failure)
        )


# -- targets ------------------------------------------------------------------------------
def pg_admin(url: str, *statements: str, database: str | None = None) -> Any:
    import psycopg

    conninfo = url if database is None else url.rsplit("/", 1)[0] + "/" + database
    with psycopg.connect(conninfo, autocommit=True) as conn:
        result = None
        for sql in statements:
            result = conn.execute(sql)
        return result.fetchone() if result is not None and result.description else None


def sqlite_count(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM production").fetchone()[0])
    finally:
        conn.close()


class FactorysyncStore:
    """A fresh factorysync store per run, with one source declared by ``declare(run)``."""

    def __init__(self, workdir: Path, target: str, pg_url: str, source_yaml: str) -> None:
        self.workdir, self.target, self.pg_url = workdir, target, pg_url
        self.source_yaml = source_yaml
        self.env: dict[str, str] = {}

    def database(self, run: int) -> str:
        return f"fs_bench_store_{os.getpid()}_{run}"

    def url(self, run: int) -> str:
        if self.target == "SQLite":
            return f"sqlite:///{self.workdir / f'store_{run}.db'}"
        return self.pg_url.rsplit("/", 1)[0] + "/" + self.database(run)

    def prepare(self, run: int) -> None:
        if self.target == "SQLite":
            for suffix in ("", "-wal", "-shm"):
                (self.workdir / f"store_{run}.db{suffix}").unlink(missing_ok=True)
        else:
            pg_admin(
                self.pg_url,
                f'DROP DATABASE IF EXISTS "{self.database(run)}" WITH (FORCE)',
                f'CREATE DATABASE "{self.database(run)}"',
            )
        self.env.clear()
        self.env.update(
            {
                "FACTORYSYNC_DATABASE_URL": self.url(run),
                "FACTORYSYNC_DATA_ROOTS": str(self.workdir),
                "FACTORYSYNC_SECRET_KEY": "",
                "FACTORYSYNC_SECRET_KEY_FILE": str(self.workdir / "bench.key"),
            }
        )
        sources = self.workdir / "sources.yaml"
        sources.write_text(self.source_yaml)
        env = {**os.environ, **self.env}
        for args in (["init"], ["apply", str(sources)]):
            subprocess.run(
                [sys.executable, "-m", "factorysync.cli", *args],
                env=env,
                check=True,
                capture_output=True,
            )

    def command(self, run: int) -> list[list[str]]:
        return [[sys.executable, "-m", "factorysync.cli", "source", "sync", "production"]]

    def verify(self, run: int) -> int:
        from sqlalchemy import create_engine, text

        url = self.url(run)
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = int(conn.execute(text("SELECT count(*) FROM production")).scalar_one())
        finally:
            engine.dispose()
        if self.target != "SQLite":
            pg_admin(self.pg_url, f'DROP DATABASE IF EXISTS "{self.database(run)}" WITH (FORCE)')
        return rows

    def contender(self) -> Contender:
        return Contender(
            "factorysync source sync",
            self.target,
            False,
            self.prepare,
            self.command,
            self.verify,
            self.env,
        )


CSV_SOURCE = """
sources:
  - source_id: production
    name: Production
    source_type: csv
    connections:
      - connection_config: {{file_path: {path}, file_type: csv}}
    mappings:
      - target_table: production
        mapping_config: {{primary_key: id}}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("FACTORYSYNC_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fs-bench-csv-"))
    workdir.mkdir(parents=True, exist_ok=True)
    csv_path = workdir / "production.csv"
    size = write_production_csv(csv_path, args.rows)
    bench_db = f"fs_bench_native_{os.getpid()}"
    pg_admin(
        args.pg_url,
        f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)',
        f'CREATE DATABASE "{bench_db}"',
    )
    native_pg = args.pg_url.rsplit("/", 1)[0] + "/" + bench_db
    try:
        contenders = csv_contenders(workdir, csv_path, args.pg_url, native_pg)
        run_all(contenders, args.runs, args.timeout)
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        print_table(
            f"load_csv: {args.rows:,} rows ({size / 1e6:.1f} MB CSV) into an empty target; "
            f"{args.runs} alternating run(s) each; {os.cpu_count()} CPUs; {when}\n"
            "wall = whole process (start-up included); PostgreSQL server CPU/memory not "
            "included",
            contenders,
            args.rows,
        )
    finally:
        pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(c.results for c in contenders) else 1


def csv_contenders(workdir: Path, csv_path: Path, pg_url: str, native_pg: str) -> list[Contender]:
    sqlite_db = workdir / "native.db"
    sqlite3 = shutil.which("sqlite3")
    psql = shutil.which("psql")

    def sqlite_prepare(run: int) -> None:
        sqlite_db.unlink(missing_ok=True)
        subprocess.run([sqlite3 or "sqlite3", str(sqlite_db), SQLITE_TABLE], check=True)

    def pg_prepare(run: int) -> None:
        pg_admin(native_pg, "DROP TABLE IF EXISTS production", PG_TABLE)

    def pg_count(run: int) -> int:
        row = pg_admin(native_pg, "SELECT count(*) FROM production")
        return int(row[0]) if row else 0

    contenders = [
        Contender(
            "sqlite3 .import (native)",
            "SQLite",
            True,
            sqlite_prepare,
            lambda run: [
                [
                    sqlite3 or "sqlite3",
                    str(sqlite_db),
                    f".import --csv --skip 1 {csv_path} production",
                ]
            ],
            lambda run: sqlite_count(sqlite_db),
        ),
        FactorysyncStore(workdir, "SQLite", pg_url, CSV_SOURCE.format(path=csv_path)).contender(),
        Contender(
            "psql \\copy (native)",
            "PostgreSQL",
            True,
            pg_prepare,
            lambda run: [
                [
                    psql or "psql",
                    native_pg,
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    f"\\copy production FROM '{csv_path}' WITH (FORMAT csv, HEADER true)",
                ]
            ],
            pg_count,
        ),
        FactorysyncStore(
            workdir, "PostgreSQL", pg_url, CSV_SOURCE.format(path=csv_path)
        ).contender(),
    ]
    for c, tool in ((contenders[0], sqlite3), (contenders[2], psql)):
        if tool is None:
            c.failure = "not installed"
    return contenders


if __name__ == "__main__":
    sys.exit(main())
