"""Shared pieces of the load benchmarks: data, whole-process measurement, alternating runs.

- deterministic production data (CSV, NDJSON, JSON array) of any number of rows;
- ``measure``: one argv or a pipeline, timed as whole processes with each one's peak RSS;
- ``Contender`` and ``run_alternately``: every contender once per round, with its target
  emptied (or pre-loaded) before each timed run and its row count checked after it;
- throwaway PostgreSQL databases and SQLite files for targets.

Reports (tables, JSON, Markdown, charts) live in ``report.py``; contenders built on the
peer tools in ``peers.py``.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

COLUMNS = [
    "id",
    "machine_id",
    "line",
    "ts",
    "shift",
    "product_code",
    "qty_good",
    "qty_reject",
    "cycle_time_s",
    "temperature_c",
    "vibration_mm_s",
    "status",
]
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
SEED = 20261126
GNU_TIME = "/usr/bin/time"


# -- data ---------------------------------------------------------------------------------
def production_fields(rows: int, seed: int = SEED, first_id: int = 1) -> Iterator[list[str]]:
    """``rows`` deterministic production records as text fields (one every 3 s per plant)."""
    rng = random.Random(seed)
    plant = timezone(timedelta(hours=7))
    start = datetime(2026, 1, 1, tzinfo=plant)
    machines = [f"M-{i:03d}" for i in range(1, 41)]
    lines = ["LINE-A", "LINE-B", "LINE-C", "LINE-D"]
    products = [f"P-{i:04d}" for i in range(1, 121)]
    statuses = ["RUN"] * 8 + ["IDLE", "DOWN"]
    for i in range(first_id, first_id + rows):
        ts = start + timedelta(seconds=3 * i)
        m = i % 40
        status = statuses[rng.randrange(10)]
        good = 0 if status == "DOWN" else rng.randint(5, 60)
        yield [
            str(i),
            machines[m],
            lines[m // 10],
            ts.isoformat(),
            "ABC"[ts.hour // 8],
            products[rng.randrange(120)],
            str(good),
            str(rng.randint(0, 3)),
            f"{rng.uniform(20, 90):.3f}",
            f"{rng.gauss(65, 6):.2f}",
            f"{rng.uniform(0.5, 9):.3f}",
            status,
        ]


def _json_object(f: list[str]) -> str:
    # every text field is plain ASCII without quotes or backslashes: no escaping needed
    return (
        f'{{"id":{f[0]},"machine_id":"{f[1]}","line":"{f[2]}","ts":"{f[3]}","shift":"{f[4]}",'
        f'"product_code":"{f[5]}","qty_good":{f[6]},"qty_reject":{f[7]},"cycle_time_s":{f[8]},'
        f'"temperature_c":{f[9]},"vibration_mm_s":{f[10]},"status":"{f[11]}"}}'
    )


def write_production(
    path: Path,
    rows: int,
    fmt: str = "csv",
    *,
    seed: int = SEED,
    first_id: int = 1,
    header: bool = True,
) -> int:
    """Write ``rows`` records as ``csv``, ``ndjson`` or ``json`` (one array); returns bytes."""
    records = production_fields(rows, seed, first_id)
    with path.open("w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            if header:
                out.write(",".join(COLUMNS) + "\n")
            out.writelines(",".join(f) + "\n" for f in records)
        elif fmt == "ndjson":
            out.writelines(_json_object(f) + "\n" for f in records)
        elif fmt == "json":
            out.write("[\n")
            for index, f in enumerate(records):
                out.write(("" if index == 0 else ",\n") + _json_object(f))
            out.write("\n]\n")
        else:
            raise ValueError(f"unknown format {fmt!r}: csv, ndjson or json")
    return path.stat().st_size


def write_production_csv(path: Path, rows: int, seed: int = SEED) -> int:
    """``rows`` deterministic production records as CSV with a header; returns bytes."""
    return write_production(path, rows, "csv", seed=seed)


def rows_for_size(target_bytes: int, fmt: str) -> int:
    """Rows that make a file of about ``target_bytes`` (measured on a 20,000-row sample)."""
    with tempfile.TemporaryDirectory() as tmp:
        sample = write_production(Path(tmp) / f"sample.{fmt}", 20_000, fmt)
    return max(1, round(target_bytes / (sample / 20_000)))


# -- measuring ----------------------------------------------------------------------------
@dataclass
class Measurement:
    wall_s: float
    peak_rss_mb: float
    stdout: str = ""


def argv_text(args: Any) -> str:
    return " ".join(str(a) for a in args) if isinstance(args, list | tuple) else str(args)


def measure(pipeline: Sequence[Sequence[str]], env: dict[str, str], timeout: float) -> Measurement:
    """Run argv (or a pipeline, stdout to the next stdin) and wait for all of it.

    Peak memory is each process's own maximum resident set (GNU time's %M, measured in a
    process forked from time itself: a child forked from this Python process would report
    this process's size as its own peak). It covers the children a process waited for
    (sling's sqlite3, for one) as the largest of them, not their sum; the pipeline's figure
    is the largest of its processes. The last process's standard output is kept (its end).
    """
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        procs: list[subprocess.Popen[bytes]] = []
        previous = None
        out_path = Path(tmp) / "stdout"
        with out_path.open("wb") as final_out:
            for index, argv in enumerate(pipeline):
                last = index == len(pipeline) - 1
                wrapped = list(argv)
                if os.path.exists(GNU_TIME):
                    wrapped = [GNU_TIME, "-f", "%M", "-o", f"{tmp}/rss{index}", *wrapped]
                with open(f"{tmp}/err{index}", "wb") as errors:
                    proc = subprocess.Popen(
                        wrapped,
                        stdin=previous if previous is not None else subprocess.DEVNULL,
                        stdout=final_out if last else subprocess.PIPE,
                        stderr=errors,
                        env={**os.environ, **env},
                        start_new_session=True,  # a timeout ends the tool under time too
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
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
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
        with out_path.open("rb") as f:
            f.seek(max(out_path.stat().st_size - 65536, 0))
            stdout = f.read().decode(errors="replace")
    return Measurement(wall, peak_kb / 1024, stdout)


@dataclass
class Contender:
    """One way of doing a case's load, with how to set up, run and check each run.

    ``prepare(run)`` gives the run its starting point (an empty target, or one already
    loaded for a re-sync) and is not timed; ``command(run)`` is what is timed;
    ``verify(run)`` counts the target's rows. ``check(run, stdout)`` may name a problem
    with a run that completed (a re-sync that changed rows, say).
    """

    name: str
    target: str
    native: bool
    prepare: Callable[[int], None]
    command: Callable[[int], list[list[str]]]
    verify: Callable[[int], int]
    env: dict[str, str] = field(default_factory=dict)
    results: list[Measurement] = field(default_factory=list)
    failure: str | None = None
    factorysync: bool = False
    group: str = ""  # contenders compared with each other; the target when empty
    expected_rows: int | None = None
    rows_processed: int | None = None  # for rows/s when it differs from the rows loaded
    check: Callable[[int, str], str | None] | None = None
    cleanup: Callable[[int], None] | None = None
    skipped: str | None = None  # a peer tool that is not installed: not a failure
    problems: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    note: str = ""
    tree: str = ""  # the label of the other source tree it runs (--compare-with); "" for this one
    floor: bool = False  # a lower bound for a Python process, not a tool (peer_incremental.py)

    @property
    def key(self) -> str:
        return self.group or self.target

    @property
    def role(self) -> str:
        if self.floor:
            return "floor"
        return "native" if self.native else "factorysync" if self.factorysync else "peer"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_alternately(
    contenders: list[Contender],
    runs: int,
    timeout: float,
    *,
    max_slow_runs: int = 1,
    slow_seconds: float = 60.0,
    settle: Callable[[], None] | None = None,
) -> None:
    """Round after round, each contender once; a slow one (first run over ``slow_seconds``)
    stops after ``max_slow_runs`` runs. A failed run ends that contender's runs.
    ``settle`` runs after each contender's set-up, just before its timed run."""
    for run in range(runs):
        for c in contenders:
            if c.failure or c.skipped:
                continue
            if (
                c.results
                and c.results[0].wall_s > slow_seconds
                and len(c.results) >= max(max_slow_runs, 1)
            ):
                continue
            try:
                c.prepare(run)
                if settle is not None:
                    settle()
                result = measure(c.command(run), c.env, timeout)
            except Exception as exc:
                c.failure = _last_line(exc)
                _log(f"  run {run + 1}: {c.name} → {c.target}: FAILED {exc}")
                _cleanup(c, run)
                continue
            c.results.append(result)
            try:
                rows = c.verify(run)
            except Exception as exc:
                rows = -1
                c.problems.append(f"run {run + 1}: count failed: {exc}")
            c.counts.append(rows)
            if c.expected_rows is not None and rows != c.expected_rows:
                c.problems.append(f"run {run + 1}: {rows:,} rows, expected {c.expected_rows:,}")
            if c.check is not None:
                problem = c.check(run, result.stdout)
                if problem:
                    c.problems.append(f"run {run + 1}: {problem}")
            _cleanup(c, run)
            _log(
                f"  run {run + 1}: {c.name} → {c.key}: {result.wall_s:.2f} s, "
                f"{result.peak_rss_mb:.0f} MB, {rows:,} rows"
            )


def _last_line(exc: BaseException) -> str:
    """The most telling line of a failure: usually the last one of the tool's stderr."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else repr(exc))[:300]


def _cleanup(c: Contender, run: int) -> None:
    if c.cleanup is not None:
        try:
            c.cleanup(run)
        except Exception as exc:
            _log(f"  cleanup of {c.name}: {exc}")


# -- targets ------------------------------------------------------------------------------
def settle_server(admin_url: str | None, limit_s: float = 60.0) -> None:
    """Let the work of earlier runs finish before a timed run, so no contender pays for
    another's: dirty files written back (``sync``), and on PostgreSQL a checkpoint (the
    earlier loads' dirty pages written) and no autovacuum worker busy with their tables."""
    import time

    os.sync()
    if not admin_url:
        return
    try:
        pg_admin(admin_url, "CHECKPOINT")
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            busy = pg_admin(
                admin_url,
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'",
            )
            if not busy or not busy[0]:
                break
            time.sleep(0.2)
    except Exception as exc:  # a server that is down fails the run itself, more clearly
        _log(f"  (could not settle the PostgreSQL server: {exc})")


def pg_url_for(url: str, database: str) -> str:
    base, _, rest = url.rpartition("/")
    query = rest.partition("?")[2]
    return f"{base}/{database}" + (f"?{query}" if query else "")


def pg_admin(url: str, *statements: str, database: str | None = None) -> Any:
    import psycopg

    conninfo = url if database is None else pg_url_for(url, database)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        result = None
        for sql in statements:
            result = conn.execute(sql)
        return result.fetchone() if result is not None and result.description else None


class PgDatabase:
    """A throwaway database on the benchmark's PostgreSQL server."""

    def __init__(self, admin_url: str, name: str) -> None:
        self.admin_url, self.name = admin_url, name
        self.url = pg_url_for(admin_url, name)

    def create(self) -> None:
        pg_admin(
            self.admin_url,
            f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)',
            f'CREATE DATABASE "{self.name}"',
        )

    def drop(self) -> None:
        pg_admin(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def execute(self, *statements: str) -> Any:
        return pg_admin(self.url, *statements)

    def count(self, table: str = "production") -> int:
        row = self.execute(f"SELECT count(*) FROM {table}")
        return int(row[0]) if row else 0


def sqlite_count(path: Path, table: str = "production") -> int:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def remove_sqlite(path: Path) -> None:
    """The database file, its journals and any databases attached beside it (name__x.db)."""
    for candidate in [path, *path.parent.glob(path.stem + "__*")]:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(candidate) + suffix).unlink(missing_ok=True)


def load_pg_from_csv(db: PgDatabase, csv_path: Path, *, create: bool = True) -> None:
    """Fill ``production`` on ``db`` from a CSV file with a header (not timed)."""
    import psycopg

    with psycopg.connect(db.url, autocommit=True) as conn:
        if create:
            conn.execute("DROP TABLE IF EXISTS production")
            conn.execute(PG_TABLE)
        with (
            conn.cursor() as cur,
            cur.copy("COPY production FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            csv_path.open("rb") as data,
        ):
            while chunk := data.read(1 << 20):
                copy.write(chunk)
        conn.execute("VACUUM ANALYZE production")
