"""Contenders every load benchmark shares: factorysync itself and the native loaders.

factorysync runs as its CLI (`factorysync source sync --json`) in a fresh store per run —
this tree's, or with ``tree`` another source tree's (``compare.Tree``, --compare-with);
the native loaders are the database's own command-line tools into a pre-created, typed
table (`sqlite3 .import`, `psql \\copy`, and `psql \\copy … TO STDOUT` piped into another
`psql \\copy … FROM STDIN` for a table-to-table copy).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import (
    PG_TABLE,
    SQLITE_TABLE,
    Contender,
    PgDatabase,
    pg_admin,
    pg_url_for,
    remove_sqlite,
    sqlite_count,
)
from compare import Tree

FACTORYSYNC = [sys.executable, "-m", "factorysync.cli"]

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

FILE_SOURCE = """
sources:
  - source_id: production
    name: Production
    source_type: {source_type}
    connections:
      - connection_config: {{file_path: '{path}', file_type: {file_type}}}
    mappings:
      - target_table: production
        sync_strategy: {strategy}
        mapping_config: {{primary_key: id{cursor}}}
"""

DB_SOURCE = """
sources:
  - source_id: production
    name: Production
    source_type: database
    connections:
      - connection_config:
          dialect: postgresql
          host: {host}
          port: {port}
          database: {database}
          table: production
        authentication_config: {{username: {user}}}
    mappings:
      - target_table: production
        sync_strategy: {strategy}
        mapping_config: {{primary_key: id{cursor}}}
"""


def data_dir(workdir: Path) -> Path:
    """The folder under ``workdir`` that factorysync may read source files from (its
    FACTORYSYNC_DATA_ROOTS): files a file source reads go here. The stores and the key
    file stay in ``workdir`` itself, outside it, as factorysync requires."""
    path = workdir / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_source(path: Path, file_type: str, *, incremental: bool = False) -> str:
    """A file (or glob) source; incremental syncs read only new or changed files."""
    return FILE_SOURCE.format(
        path=path,
        source_type="csv" if file_type == "csv" else "json",
        file_type=file_type,
        strategy="incremental" if incremental else "full",
        cursor=", cursor_field: id" if incremental else "",
    )


def database_source(pg_url: str, database: str, *, incremental: bool = False) -> str:
    """The ``production`` table of ``database``; incremental syncs follow the id cursor."""
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    return DB_SOURCE.format(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        database=database,
        user=url.username or "postgres",
        strategy="incremental" if incremental else "full",
        cursor=", cursor_field: id" if incremental else "",
    )


def sync_counts(stdout: str) -> dict[str, Any]:
    """The run record printed by `factorysync source sync --json` (its first run), or the
    one the API answers with."""
    text = stdout.strip()
    if text.startswith("{"):
        record = json.loads(text)
        return record if isinstance(record, dict) else {}
    start = text.find("[")
    runs = json.loads(text[start:]) if start >= 0 else []
    return runs[0] if runs else {}


def expect_counts(**expected: int) -> Callable[[int, str], str | None]:
    """A check that the timed sync reported exactly these counts (inserted=0, …)."""

    def check(run: int, stdout: str) -> str | None:
        try:
            counts = sync_counts(stdout)
        except ValueError as exc:
            return f"no run record in the output: {exc}"
        wrong = {
            f"records_{k}": counts.get(f"records_{k}")
            for k, v in expected.items()
            if counts.get(f"records_{k}") != v
        }
        return f"reported {wrong}, expected {expected}" if wrong else None

    return check


class FactorysyncStore:
    """A fresh factorysync store per run, with one source declared by ``source_yaml``.

    The store (on SQLite) and the key file live in ``workdir``; the only data root is
    :func:`data_dir`, where the files a file source reads must be.

    ``warm_syncs`` untimed syncs run first (a re-sync times the second sync);
    ``before_warm`` and ``before_timed`` change the source around them (an incremental
    case adds rows between the first and the timed sync).

    With ``tree``, every factorysync process (the untimed ones too: the store is that
    tree's own schema) runs that source tree's factorysync; its stores, databases, files
    and key file carry the tree's tag, and its contenders' names the tree's label.
    """

    def __init__(
        self,
        workdir: Path,
        target: str,
        pg_url: str,
        source_yaml: str,
        *,
        tag: str = "",
        warm_syncs: int = 0,
        before_warm: Callable[[int], None] | None = None,
        before_timed: Callable[[int], None] | None = None,
        tree: Tree | None = None,
    ) -> None:
        self.workdir, self.target, self.pg_url = workdir, target, pg_url
        self.tree = tree
        self.tag = tag + (tree.tag if tree is not None else "")
        self.cli = tree.cli if tree is not None else FACTORYSYNC
        self.source_yaml, self.warm_syncs = source_yaml, warm_syncs
        self.before_warm, self.before_timed = before_warm, before_timed
        self.env: dict[str, str] = {}
        self.token = ""

    def database(self, run: int) -> str:
        return f"fs_bench_store{self.tag}_{os.getpid()}_{run}"

    def sqlite_path(self, run: int) -> Path:
        return self.workdir / f"store{self.tag}_{run}.db"

    def url(self, run: int) -> str:
        if self.target == "SQLite":
            return f"sqlite:///{self.sqlite_path(run)}"
        return pg_url_for(self.pg_url, self.database(run))

    def prepare(self, run: int) -> None:
        if self.target == "SQLite":
            remove_sqlite(self.sqlite_path(run))
        else:
            PgDatabase(self.pg_url, self.database(run)).create()
        self.env.clear()
        tree_tag = self.tree.tag if self.tree is not None else ""
        self.env.update(
            {
                "FACTORYSYNC_DATABASE_URL": self.url(run),
                "FACTORYSYNC_DATA_ROOTS": str(data_dir(self.workdir)),
                "FACTORYSYNC_SECRET_KEY": "",
                "FACTORYSYNC_SECRET_KEY_FILE": str(self.workdir / f"bench{tree_tag}.key"),
                **(self.tree.env() if self.tree is not None else {}),
            }
        )
        sources = self.workdir / f"sources{self.tag}.yaml"
        sources.write_text(self.source_yaml)
        env = {**os.environ, **self.env}
        if self.before_warm is not None:
            self.before_warm(run)
        steps = [["init"], ["apply", str(sources)]]
        steps += [["source", "sync", "production"]] * self.warm_syncs
        for args in steps:
            done = subprocess.run([*self.cli, *args], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(
                    f"untimed `factorysync {' '.join(args)}` exited {done.returncode}: "
                    f"{(done.stderr or done.stdout)[-600:]}"
                )
            if args == ["init"]:  # its last line is the first admin's API token
                self.token = done.stdout.strip().splitlines()[-1]
        self.after_warm(run)
        if self.before_timed is not None:
            self.before_timed(run)

    def after_warm(self, run: int) -> None:
        """Called after the untimed syncs, before ``before_timed``."""

    def command(self, run: int) -> list[list[str]]:
        return [[*self.cli, "source", "sync", "production", "--json"]]

    def verify(self, run: int) -> int:
        if self.target == "SQLite":
            return sqlite_count(self.sqlite_path(run))
        return PgDatabase(self.pg_url, self.database(run)).count()

    def cleanup(self, run: int) -> None:
        if self.target == "SQLite":
            remove_sqlite(self.sqlite_path(run))
        else:
            PgDatabase(self.pg_url, self.database(run)).drop()

    def contender(self, name: str = "factorysync source sync", **extra: Any) -> Contender:
        tree = self.tree.label if self.tree is not None else ""
        return Contender(
            f"{name} ({tree})" if tree else name,
            self.target,
            False,
            self.prepare,
            self.command,
            self.verify,
            self.env,
            factorysync=True,
            cleanup=self.cleanup,
            tree=tree,
            **extra,
        )


class FactorysyncService(FactorysyncStore):
    """The timed sync runs inside a running service (`factorysync run`), where scheduled
    syncs run in production. The service is started on the fresh store and makes the
    untimed first load itself, so it is warm as a service that has been up a while is;
    the timed command asks it for a sync over the API and waits for the run to end
    (``curl``, or ``bench/trigger_sync.py`` where there is no curl: the client's own
    start-up is in the time). Peak RSS is then the client's: the service's memory is not
    measured.

    With ``first_load=True`` the timed sync is the first load itself: the source is
    declared inactive, so the scheduler leaves it alone, and the service makes no
    untimed sync.
    """

    def __init__(self, *args: Any, first_load: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server: subprocess.Popen[bytes] | None = None
        self.first_load = first_load
        if first_load:
            self.source_yaml = self.source_yaml.replace(
                "    name: Production\n", "    name: Production\n    status: inactive\n", 1
            )
            assert "status: inactive" in self.source_yaml

    def after_warm(self, run: int) -> None:
        import socket
        import time
        import urllib.request

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        self.server = subprocess.Popen(
            [*self.cli, "run", "--port", str(port)],
            env={**os.environ, **self.env, "FACTORYSYNC_LOG_LEVEL": "WARNING"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise RuntimeError("the factorysync service did not start") from None
                time.sleep(0.1)
        self.env.update(FACTORYSYNC_BENCH_URL=url, FACTORYSYNC_BENCH_TOKEN=self.token)
        if self.first_load:
            return
        # The first load, by the service (untimed). Its scheduler may have started it
        # already (a new source is due at once): then wait for that run and sync again.
        import urllib.error

        request = urllib.request.Request(
            f"{url}/api/sources/production/sync?wait_s=600",
            method="POST",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        while True:
            try:
                with urllib.request.urlopen(request, timeout=660) as answer:
                    status = json.loads(answer.read()).get("sync_status")
                break
            except urllib.error.HTTPError as exc:
                if exc.code != 409 or time.monotonic() > deadline + 600:
                    raise RuntimeError(f"the service's untimed sync failed: {exc}") from None
                time.sleep(0.2)
        if status != "success":
            raise RuntimeError(f"the service's untimed sync ended {status!r}")

    def command(self, run: int) -> list[list[str]]:
        # curl, as a plant's cron job would call it, when there is one: a client whose own
        # start-up (a few ms) hardly counts; else the standard-library Python client.
        curl = shutil.which("curl")
        if curl is None:
            script = str(Path(__file__).with_name("trigger_sync.py"))
            return [[sys.executable, script, "production"]]
        headers = self.headers_file  # the token stays out of argv
        headers.touch(mode=0o600)
        headers.chmod(0o600)
        headers.write_text(f"Authorization: Bearer {self.token}\n")
        url = f"{self.env['FACTORYSYNC_BENCH_URL']}/api/sources/production/sync?wait_s=3600"
        options = ["--silent", "--show-error", "--fail-with-body", "--request", "POST"]
        return [[curl, *options, "--header", f"@{headers}", url]]

    @property
    def headers_file(self) -> Path:
        return self.workdir / f"headers{self.tag}"

    def contender(self, name: str = "factorysync source sync", **extra: Any) -> Contender:
        # curl ends 0 on any answer the service gives: a run that did not succeed is
        # caught here (as trigger_sync.py's exit status would).
        given = extra.pop("check", None)

        def check(run: int, stdout: str) -> str | None:
            try:
                status = sync_counts(stdout).get("sync_status")
            except ValueError as exc:
                return f"no run record in the output: {exc}"
            if status != "success":
                return f"the run ended {status!r}"
            return given(run, stdout) if given is not None else None

        return super().contender(name, check=check, **extra)

    def cleanup(self, run: int) -> None:
        self.headers_file.unlink(missing_ok=True)
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.server = None
        super().cleanup(run)


def side_by_side(
    make: Callable[[Tree | None], list[Contender]], trees: Sequence[Tree]
) -> list[Contender]:
    """``make``'s contenders for this tree and for each other one, each contender followed
    by its counterparts, so the table shows them together and the runs alternate them."""
    built = [make(None), *(make(tree) for tree in trees)]
    return [c for together in zip(*built, strict=True) for c in together]


# -- native loaders -----------------------------------------------------------------------
def _missing(*tools: str) -> str | None:
    absent = [t for t in tools if shutil.which(t) is None]
    return f"{', '.join(absent)} not installed" if absent else None


def sqlite_import(name: str, db: Path, source: Path | None, **extra: Any) -> Contender:
    """`sqlite3 .import` of a CSV file (with a header) into a typed table; ``source=None``
    reads headerless CSV from standard input (the end of a pipeline)."""
    sqlite3 = shutil.which("sqlite3") or "sqlite3"

    def prepare(run: int) -> None:
        remove_sqlite(db)
        subprocess.run([sqlite3, str(db), SQLITE_TABLE], check=True)

    what = f"--csv --skip 1 {source}" if source is not None else "--csv /dev/stdin"
    extra.setdefault("cleanup", lambda run: remove_sqlite(db))
    c = Contender(
        name,
        "SQLite",
        True,
        prepare,
        lambda run: [[sqlite3, str(db), f".import {what} production"]],
        lambda run: sqlite_count(db),
        **extra,
    )
    c.failure = _missing("sqlite3")
    return c


def psql_copy(
    name: str, db: PgDatabase, source: Path, table_sql: str = PG_TABLE, **extra: Any
) -> Contender:
    """`psql \\copy` of a CSV file (with a header) into a typed table (``table_sql``)."""
    psql = shutil.which("psql") or "psql"
    extra.setdefault("cleanup", lambda run: db.drop())

    def prepare(run: int) -> None:
        db.create()
        db.execute(table_sql)

    c = Contender(
        name,
        "PostgreSQL",
        True,
        prepare,
        lambda run: [
            [
                psql,
                db.url,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f"\\copy production FROM '{source}' WITH (FORMAT csv, HEADER true)",
            ]
        ],
        lambda run: db.count(),
        **extra,
    )
    c.failure = _missing("psql")
    return c


def copy_out(source: PgDatabase) -> list[str]:
    psql = shutil.which("psql") or "psql"
    return [
        psql,
        source.url,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "\\copy production TO STDOUT WITH (FORMAT csv)",
    ]


def pg_copy_pipe(name: str, source: PgDatabase, target: PgDatabase, **extra: Any) -> Contender:
    """`psql \\copy … TO STDOUT | psql \\copy … FROM STDIN` into a typed table."""
    psql = shutil.which("psql") or "psql"
    extra.setdefault("cleanup", lambda run: target.drop())

    def prepare(run: int) -> None:
        target.create()
        target.execute(PG_TABLE)

    c = Contender(
        name,
        "PostgreSQL",
        True,
        prepare,
        lambda run: [
            copy_out(source),
            [
                psql,
                target.url,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "\\copy production FROM STDIN WITH (FORMAT csv)",
            ],
        ],
        lambda run: target.count(),
        **extra,
    )
    c.failure = _missing("psql")
    return c


__all__ = [
    "CSV_SOURCE",
    "FactorysyncService",
    "FactorysyncStore",
    "copy_out",
    "data_dir",
    "database_source",
    "expect_counts",
    "file_source",
    "pg_admin",
    "pg_copy_pipe",
    "psql_copy",
    "side_by_side",
    "sqlite_import",
    "sync_counts",
]
