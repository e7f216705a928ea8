"""Contenders built on the peer tools installed in the benchmark environment (.bench-venv).

- dlt: ``bench/peer_dlt.py`` run by the environment's Python, on dlt's default row path
  or on its fastest path (Arrow batches with the parquet loader, ADBC into PostgreSQL;
  connectorx for database sources);
- sling: the Go binary shipped in the ``sling-linux-amd64`` wheel (``SQLITE_PATH`` set to
  the system sqlite3, so SQLite targets are bulk-loaded);
- ingestr: the Go binary shipped in the ``ingestr`` 0.15.x wheel, with typed ``--columns``.

None of them is a dependency of factorysync; ``make bench-venv`` installs them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import Contender, PgDatabase, remove_sqlite, sqlite_count

BENCH = Path(__file__).resolve().parent
DEFAULT_VENV = BENCH.parent / ".bench-venv"
INGESTR_COLUMNS = (
    "id:bigint,machine_id:string,line:string,ts:timestamp,shift:string,product_code:string,"
    "qty_good:bigint,qty_reject:bigint,cycle_time_s:double,temperature_c:double,"
    "vibration_mm_s:double,status:string"
)
QUIET = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "SLING_DISABLE_TELEMETRY": "true",
    "INGESTR_DISABLE_TELEMETRY": "true",
}
Hook = Callable[[int], None] | None


@dataclass
class Target:
    """Where a peer writes: a SQLite file or a PostgreSQL database (table ``production``)."""

    sqlite: Path | None = None
    pg: PgDatabase | None = None

    @property
    def kind(self) -> str:
        return "SQLite" if self.sqlite is not None else "PostgreSQL"

    def reset(self) -> None:
        if self.sqlite is not None:
            remove_sqlite(self.sqlite)
        elif self.pg is not None:
            self.pg.create()

    def drop(self) -> None:
        if self.sqlite is not None:
            remove_sqlite(self.sqlite)
        elif self.pg is not None:
            self.pg.drop()

    def count(self, schema: str) -> int:
        """Rows in ``schema.production``; dlt keeps a SQLite dataset in ``name__schema.db``."""
        if self.sqlite is not None:
            path = self.sqlite
            if schema != "main":
                path = self.sqlite.with_name(f"{self.sqlite.stem}__{schema}.db")
            return sqlite_count(path)
        assert self.pg is not None
        return self.pg.count(f"{schema}.production")


class PeerTools:
    """The peer tools of one benchmark environment, and what is missing from it."""

    def __init__(self, venv: Path | None, mode: str = "auto") -> None:
        self.mode = mode  # auto: use what is there; none: run no peer; require
        self.venv = venv or DEFAULT_VENV
        self.python = self.venv / "bin" / "python"
        self.ingestr = self.venv / "bin" / "ingestr"
        found = sorted(self.venv.glob("lib/python3*/site-packages/sling_linux_amd64/bin/sling*"))
        self.sling = found[0] if found else self.venv / "bin" / "sling-linux-amd64"
        self._dlt: bool | None = None

    def has_dlt(self) -> bool:
        if self._dlt is None:
            self._dlt = self.python.exists() and (
                subprocess.run(
                    [str(self.python), "-c", "import dlt, pyarrow, adbc_driver_postgresql"],
                    capture_output=True,
                ).returncode
                == 0
            )
        return self._dlt

    def missing(self, tool: str) -> str | None:
        """Why ``tool`` cannot run (None when it can)."""
        if self.mode == "none":
            return "peers not run (--peers none)"
        present = {
            "dlt": self.has_dlt,
            "sling": self.sling.exists,
            "ingestr": self.ingestr.exists,
        }[tool]()
        if present:
            return None
        return f"{tool} not installed in {self.venv} (make bench-venv)"

    def require_all(self) -> list[str]:
        return [m for t in ("dlt", "sling", "ingestr") if (m := self.missing(t))]

    def versions(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.mode == "none":
            return found
        if self.has_dlt():
            code = (
                "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p "
                "in ['dlt', 'pyarrow', 'adbc-driver-postgresql', 'connectorx', 'SQLAlchemy', "
                "'psycopg2-binary', 'sling-linux-amd64', 'ingestr'] if _ok(p)}))"
            )
            prelude = (
                "import importlib.metadata as m\n"
                "def _ok(p):\n"
                "    try: m.version(p); return True\n"
                "    except m.PackageNotFoundError: return False\n"
            )
            out = subprocess.run(
                [str(self.python), "-c", prelude + code], capture_output=True, text=True
            )
            if out.returncode == 0:
                found.update(json.loads(out.stdout))
        for tool, path in (("sling", self.sling), ("ingestr", self.ingestr)):
            if path.exists():
                out = subprocess.run([str(path), "--version"], capture_output=True, text=True)
                text = (out.stdout or out.stderr).strip().splitlines()
                found[f"{tool} binary"] = text[-1].split()[-1] if text else "?"
        return found


def _peer(
    name: str,
    target: Target,
    argv: Callable[[int], list[str]],
    verify: Callable[[int], int],
    *,
    env: dict[str, str],
    missing: str | None,
    warm: int,
    before_warm: Hook,
    before_timed: Hook,
    reset: Hook = None,
    **extra: Any,
) -> Contender:
    """A peer run: target reset, ``warm`` untimed loads, then the timed load."""

    def prepare(run: int) -> None:
        target.reset()
        if reset is not None:
            reset(run)
        if before_warm is not None:
            before_warm(run)
        for _ in range(warm):
            done = subprocess.run(argv(run), env=_env(env), capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"untimed first load failed: {done.stderr[-600:]}")
        if before_timed is not None:
            before_timed(run)

    c = Contender(
        name,
        target.kind,
        False,
        prepare,
        lambda run: [argv(run)],
        verify,
        {**QUIET, **env},
        cleanup=lambda run: target.drop(),
        **extra,
    )
    c.skipped = missing
    return c


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **QUIET, **extra}


def dlt_load(
    tools: PeerTools,
    name: str,
    target: Target,
    workdir: Path,
    *,
    source: list[str],
    path_kind: str = "default",
    disposition: str = "replace",
    incremental: bool = False,
    warm: int = 0,
    before_warm: Hook = None,
    before_timed: Hook = None,
    **extra: Any,
) -> Contender:
    """``source``: peer_dlt.py's source arguments (``--source csv --path FILE``, …)."""
    pipelines = workdir / f"dlt-{abs(hash((name, target.kind)))}"
    if target.sqlite is not None:
        dest = ["--dest", "sqlite", "--dest-url", f"sqlite:///{target.sqlite}"]
    else:
        assert target.pg is not None
        dest = ["--dest", "postgres", "--dest-url", target.pg.url]
    argv = [
        str(tools.python),
        str(BENCH / "peer_dlt.py"),
        *source,
        *dest,
        "--path-kind",
        path_kind,
        "--disposition",
        disposition,
        "--pipelines-dir",
        str(pipelines),
        *(["--incremental"] if incremental else []),
    ]
    return _peer(
        name,
        target,
        lambda run: argv,
        lambda run: target.count("bench"),
        env={},
        missing=tools.missing("dlt"),
        warm=warm,
        before_warm=before_warm,
        before_timed=before_timed,
        reset=lambda run: shutil.rmtree(pipelines, ignore_errors=True),
        **extra,
    )


def sling_load(
    tools: PeerTools,
    name: str,
    target: Target,
    workdir: Path,
    *,
    stream: str,
    source_url: str | None = None,
    mode: str = "full-refresh",
    primary_key: str | None = None,
    update_key: str | None = None,
    src_options: str | None = None,
    warm: int = 0,
    before_warm: Hook = None,
    before_timed: Hook = None,
    **extra: Any,
) -> Contender:
    """``stream``: ``file:///path`` or ``schema.table`` of ``source_url``."""
    env = {"SQLITE_PATH": shutil.which("sqlite3") or "sqlite3", "SLING_HOME_DIR": str(workdir)}
    if target.sqlite is not None:
        env["FS_BENCH_TGT"] = f"sqlite://{target.sqlite}"
        obj = "main.production"
    else:
        assert target.pg is not None
        env["FS_BENCH_TGT"] = _with_sslmode(target.pg.url)
        obj = "public.production"
    argv = [str(tools.sling), "run", "--src-stream", stream, "--tgt-conn", "FS_BENCH_TGT"]
    argv += ["--tgt-object", obj, "--mode", mode]
    if source_url is not None:
        env["FS_BENCH_SRC"] = _with_sslmode(source_url)
        argv += ["--src-conn", "FS_BENCH_SRC"]
    if primary_key:
        argv += ["--primary-key", primary_key]
    if update_key:
        argv += ["--update-key", update_key]
    if src_options:
        argv += ["--src-options", src_options]
    return _peer(
        name,
        target,
        lambda run: argv,
        lambda run: target.count("main" if target.sqlite is not None else "public"),
        env=env,
        missing=tools.missing("sling"),
        warm=warm,
        before_warm=before_warm,
        before_timed=before_timed,
        **extra,
    )


def ingestr_load(
    tools: PeerTools,
    name: str,
    target: Target,
    workdir: Path,
    *,
    source_uri: str,
    source_table: str,
    strategy: str = "replace",
    primary_key: str | None = None,
    warm: int = 0,
    before_warm: Hook = None,
    before_timed: Hook = None,
    **extra: Any,
) -> Contender:
    """ingestr into PostgreSQL (``source_uri``: ``csv:///path`` or ``postgresql://…``)."""
    assert target.pg is not None, "ingestr is run into PostgreSQL only"
    pipelines = workdir / f"ingestr-{abs(hash(name))}"
    argv = [
        str(tools.ingestr),
        "ingest",
        "--source-uri",
        _with_sslmode(source_uri) if source_uri.startswith("postgres") else source_uri,
        "--source-table",
        source_table,
        "--dest-uri",
        _with_sslmode(target.pg.url),
        "--dest-table",
        "public.production",
        "--columns",
        INGESTR_COLUMNS,
        "--incremental-strategy",
        strategy,
        "--pipelines-dir",
        str(pipelines),
        "--progress",
        "log",
        "--yes",
    ]
    if primary_key:
        argv += ["--primary-key", primary_key]
    return _peer(
        name,
        target,
        lambda run: argv,
        lambda run: target.count("public"),
        env={},
        missing=tools.missing("ingestr"),
        warm=warm,
        before_warm=before_warm,
        before_timed=before_timed,
        reset=lambda run: shutil.rmtree(pipelines, ignore_errors=True),
        **extra,
    )


def _with_sslmode(url: str) -> str:
    return url if "sslmode=" in url else url + ("&" if "?" in url else "?") + "sslmode=disable"
