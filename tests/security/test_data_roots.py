"""Data roots never expose factorysync's own files: the store (with its side files) and
the key file.

A data root that holds either is refused before any source is read; a path, a glob, a
symbolic or hard link, or an SQLite database source that leads to either is refused
however it is spelt; the SQLite store and its side files are readable by their owner
only.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from factorysync import services
from factorysync.api import create_app
from factorysync.connectors.base import ConnectorContext
from factorysync.connectors.database import DatabaseConfig, engine_for
from factorysync.engine.runner import Runner
from factorysync.errors import ConfigError, ConnectorFatal
from factorysync.intake import parse_sources
from factorysync.realtime.filewatch import FileWatcher
from factorysync.settings import Settings
from factorysync.store import accounts as auth
from factorysync.store.registry_save import apply_declarations
from factorysync.store.store import Store
from factorysync.store.targets import read_rows

OWN_FILES = "sources may not read factorysync's own files"


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The real ``factorysync`` command, with only the FACTORYSYNC_* variables given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FACTORYSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "factorysync.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, "COLUMNS": "200", **env},
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the layout ---------------------------------------------------------------------------
def test_a_data_root_holding_the_store_and_key_refuses_to_start(tmp_path: Path) -> None:
    """The layout before ./data: store, key and sources all in the working folder."""
    old_default = {
        "FACTORYSYNC_DATABASE_URL": "sqlite:///./factorysync.db",
        "FACTORYSYNC_SECRET_KEY_FILE": "./factorysync.key",
        "FACTORYSYNC_DATA_ROOTS": ".",
    }
    init = cli("init", cwd=tmp_path, **old_default)
    assert init.returncode == 0, init.stderr
    assert f"warning: data root {tmp_path} contains the store's database file" in init.stderr

    for args in (
        ("run", "--port", "0"),
        ("serve", "--port", "0"),
        ("source", "sync", "anything"),
        ("demo", "--no-serve", "--size-mb", "0.1"),
    ):
        proc = cli(*args, cwd=tmp_path, **old_default)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)  # a config error
        assert "FACTORYSYNC_DATA_ROOTS would let sources read factorysync's own files" in (
            proc.stderr
        )
        assert "set it to a folder of its own" in proc.stderr
        assert f"data root {tmp_path} contains the store's database file" in proc.stderr
        assert f"{tmp_path / 'factorysync.db'}" in proc.stderr
        assert f"data root {tmp_path} contains the secret key file" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "factorysync-demo").exists()  # refused before generating

    # A root above the key's folder is as bad as the folder itself.
    keys = tmp_path / "keys"
    keys.mkdir()
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1/none",
        secret_key_file=keys / "fs.key",
        data_roots=os.pathsep.join([str(tmp_path / "data"), str(tmp_path)]),
    )
    with pytest.raises(ConfigError) as refused:
        Store(settings).ensure_ready()
    assert refused.value.problems == [
        f"data root {tmp_path} contains the secret key file {keys / 'fs.key'}"
    ]
    # The key in the environment and no key file: nothing of ours under the root.
    settings.model_copy(update={"secret_key": "k"}).check_data_roots()


def test_init_makes_the_default_data_root_and_the_demo_runs_in_it(tmp_path: Path) -> None:
    """`make demo` in a fresh clone: no FACTORYSYNC_* variables at all."""
    init = cli("init", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "data").is_dir()
    assert f"data      root {tmp_path / 'data'} created" in init.stdout
    assert "warning" not in init.stderr
    assert mode(tmp_path / "factorysync.db") == 0o600
    assert mode(tmp_path / "factorysync.key") == 0o600

    demo = cli("demo", "--no-serve", "--size-mb", "0.2", "--json", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    results = orjson.loads(demo.stdout)
    assert len(results) >= 40 and all(r["sync_status"] == "success" for r in results)
    assert (tmp_path / "data" / "factorysync-demo" / "constant.js").is_file()
    assert not (tmp_path / "factorysync-demo").exists()
    assert mode(tmp_path / "factorysync.db") == 0o600


def test_init_tightens_an_existing_store(tmp_path: Path) -> None:
    env = {"FACTORYSYNC_DATA_ROOTS": str(tmp_path / "data")}
    assert cli("init", cwd=tmp_path, **env).returncode == 0
    store_file = tmp_path / "factorysync.db"
    store_file.chmod(0o644)  # as `init` made it before

    again = cli("init", cwd=tmp_path, **env)
    assert again.returncode == 0, again.stderr
    assert f"store     {store_file} was readable by others: now mode 0600" in again.stdout
    assert mode(store_file) == 0o600
    assert "readable by others" not in cli("init", cwd=tmp_path, **env).stdout

    # Side files left by a process that ran on the loose store are tightened with it.
    store_file.chmod(0o644)
    side = [tmp_path / f"factorysync.db{s}" for s in ("-wal", "-shm", "-journal")]
    for path in side:
        path.write_bytes(b"")
        path.chmod(0o640)
    store = Store(
        Settings(database_url=f"sqlite:///{store_file}", data_roots=env["FACTORYSYNC_DATA_ROOTS"])
    )
    assert store.tighten_files() == [store_file, *side]
    assert {p.name: mode(p) for p in [store_file, *side]} == dict.fromkeys(
        [p.name for p in [store_file, *side]], 0o600
    )


def test_store_and_its_wal_files_are_private_after_init_and_a_sync(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "readings.csv").write_text("id,value\n1,10\n2,20\n")
    store = Store(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'fs.db'}",
            data_roots=str(data),
            secret_key_file=tmp_path / "fs.key",
        )
    )
    try:
        services.init_store(store)
        files = [tmp_path / name for name in ("fs.db", "fs.db-wal", "fs.db-shm")]
        with store.connect() as conn:  # an open connection keeps the WAL and shared memory
            conn.exec_driver_sql("SELECT count(*) FROM data_source_registry")
            assert {f.name: mode(f) for f in files} == dict.fromkeys(
                ("fs.db", "fs.db-wal", "fs.db-shm"), 0o600
            )
        register(store, csv_source("readings.csv"))
        assert Runner(store).sync("readings").sync_status == "success"
        with store.connect() as conn:
            assert len(read_rows(conn, "readings")) == 2
            assert {f.name: mode(f) for f in files} == dict.fromkeys(
                ("fs.db", "fs.db-wal", "fs.db-shm"), 0o600
            )
    finally:
        store.dispose()


# -- reads that lead to our files ---------------------------------------------------------
def csv_source(file_path: str) -> dict[str, Any]:
    return {
        "source_id": "readings",
        "name": "Readings",
        "source_type": "csv",
        "connections": [{"connection_config": {"file_path": file_path, "file_type": "csv"}}],
        "mappings": [{"target_table": "readings", "mapping_config": {"primary_key": ["id"]}}],
    }


def register(store: Store, *sources: dict[str, Any]) -> None:
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": list(sources)}), store.box)


def rows(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return sorted(read_rows(conn, "readings"), key=lambda r: r["id"])


def everything_stored(store: Store) -> str:
    """Every value of every table of the store, as text."""
    meta = MetaData()
    meta.reflect(store.engine)
    with store.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for table in meta.sorted_tables for row in conn.execute(select(table))
        )


@pytest.fixture
def client(store: Store) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store.settings = store.settings.model_copy(update={"api_cache_s": 0.0})
    with store.begin() as conn:
        auth.create_user(conn, "ops", "operator")
        token, _ = auth.create_token(conn, "ops")
    with TestClient(create_app(store)) as c:
        yield c, {"Authorization": f"Bearer {token}"}


def test_no_spelling_of_a_path_reads_the_key_or_the_store(
    store: Store,
    env: dict[str, str],
    data_dir: Path,
    tmp_path: Path,
    client: tuple[TestClient, dict[str, str]],
) -> None:
    http, headers = client
    key_file = Path(env["FACTORYSYNC_SECRET_KEY_FILE"])
    key = key_file.read_text().strip()
    (data_dir / "readings.csv").write_text("id,value\n1,10\n2,20\n")
    register(store, csv_source("readings.csv"))
    assert Runner(store).sync("readings").sync_status == "success"
    before = rows(store)
    assert [r["value"] for r in before] == [10, 20]

    (data_dir / "notes.csv").symlink_to(key_file)
    (data_dir / "plant").symlink_to(tmp_path, target_is_directory=True)
    (data_dir / "sub").mkdir()
    os.link(key_file, data_dir / "copy.csv")
    attempts = [
        "notes.csv",  # a link inside the root
        "plant/factorysync.key",  # through a linked folder
        "../factorysync.key",
        "sub/../../factorysync.key",
        f"{data_dir}//sub/..//..//factorysync.key",
        str(key_file),
        "copy.csv",  # a hard link: same file, other name
        "plant/*.key",
        "plant/factorysync.*",
        "../*.key",
    ]
    if store.dialect == "sqlite":
        (data_dir / "store.csv").symlink_to(tmp_path / "factorysync.db")
        attempts += [
            "store.csv",
            "plant/factorysync.db",
            "plant/factorysync.db-wal",
            "plant/factorysync.db-shm",
            "plant/factorysync.db-journal",
            "plant/factorysync.db*",
        ]
    for attempt in attempts:
        register(store, csv_source(attempt))
        result = Runner(store).sync("readings")
        assert result.sync_status == "failed", attempt
        assert OWN_FILES in (result.error_message or ""), (attempt, result.error_message)
        assert rows(store) == before, attempt

        checked = http.post("/api/sources/readings/test", headers=headers)
        assert checked.status_code == 200 and not checked.json()["ok"], attempt
        assert OWN_FILES in checked.text and key not in checked.text
        run = http.post("/api/sources/readings/sync?wait_s=30", headers=headers)
        assert run.status_code == 200 and run.json()["sync_status"] == "failed", run.text
        assert key not in run.text

    data = http.get("/api/data/readings", headers=headers)
    assert [r["value"] for r in data.json()["items"]] == [10, 20]
    for url in ("/api/data/readings", "/api/sources/readings/history?limit=100"):
        assert key not in http.get(url, headers=headers).text
    assert key not in everything_stored(store)


def test_an_sqlite_source_cannot_open_the_store_or_the_key(
    store: Store, env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    import sqlite3

    plant = data_dir / "plant.db"
    with sqlite3.connect(plant) as db:
        db.execute("CREATE TABLE production (id INTEGER PRIMARY KEY, qty INTEGER)")
        db.executemany("INSERT INTO production VALUES (?, ?)", [(1, 5), (2, 7)])
    db.close()

    def source(database: str) -> dict[str, Any]:
        return {
            "source_id": "production",
            "name": "Production",
            "source_type": "database",
            "connections": [
                {"connection_config": {"dialect": "sqlite", "database": database, "table": t}}
                for t in ("production",)
            ],
            "mappings": [{"target_table": "production", "mapping_config": {"primary_key": ["id"]}}],
        }

    register(store, source("plant.db"))
    assert Runner(store).sync("production").sync_status == "success"
    with store.connect() as conn:
        before = read_rows(conn, "production")
    assert len(before) == 2

    key_file = Path(env["FACTORYSYNC_SECRET_KEY_FILE"])
    refused = [str(key_file), "../factorysync.key"]
    if store.dialect == "sqlite":
        refused += [str(tmp_path / "factorysync.db"), "../factorysync.db"]
    outside = tmp_path / "elsewhere.db"
    outside.write_bytes(plant.read_bytes())

    # Declared: refused by apply's validation, naming the field.
    for database in refused:
        with pytest.raises(ConfigError) as declared:
            register(store, source(database))
        assert "connection_config.database: path" in str(declared.value), database
        assert OWN_FILES in str(declared.value)
    with pytest.raises(ConfigError, match=r"database: file path .* is outside the data roots"):
        register(store, source(str(outside)))

    # At run time: the declared file is later swapped for a link to the store or key.
    store_or_key = tmp_path / "factorysync.db" if store.dialect == "sqlite" else key_file
    plant.unlink()
    plant.symlink_to(store_or_key)
    result = Runner(store).sync("production")
    assert result.sync_status == "failed"
    assert OWN_FILES in (result.error_message or ""), result.error_message
    with store.connect() as conn:
        assert read_rows(conn, "production") == before

    # The engine refuses too, even for a config that skipped validation.
    context = ConnectorContext("production", store.settings, 100)
    for database in [*refused, "plant.db"]:
        config = DatabaseConfig.model_construct(
            dialect="sqlite", driver="pysqlite", database=database, table="production"
        )
        with pytest.raises(ConnectorFatal, match=OWN_FILES):
            engine_for(config, {}, context)


def test_a_watch_cannot_cover_our_files(store: Store, data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "plant").symlink_to(tmp_path, target_is_directory=True)

    def watch(pattern: str) -> FileWatcher:
        decl = parse_sources(
            {
                "sources": [
                    {
                        **csv_source(pattern),
                        "connections": [
                            {"connection_config": {"file_path": pattern, "auto_reload": True}}
                        ],
                    }
                ]
            }
        )[0]
        return FileWatcher(store, decl)

    for pattern in ("plant/factorysync.key", "plant/*.key", "../*.key", f"{tmp_path}/*"):
        with pytest.raises(ConnectorFatal, match=OWN_FILES):
            watch(pattern)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ConnectorFatal, match="outside the data roots"):
        watch(f"{tmp_path}/elsewhere/*.csv")
    (data_dir / "in").mkdir()
    assert watch("in/*.csv").folders == [(data_dir / "in").resolve()]
