"""Timestamps without a time zone, as a plant engineer meets them: a shift that starts at
02:00 in the source lands as 02:00 UTC unless the connection names its zone, and then
as that wall time in that zone (02:00 in Asia/Jakarta is 19:00 UTC the day before). The
plant zone (FACTORYSYNC_TIMEZONE, Asia/Jakarta by default) only changes what is shown.

Each source type is synced into the store (SQLite and PostgreSQL) and read back; the
database and file sources also through their fast paths (PostgreSQL COPY into Arrow,
CSV and JSON as Arrow batches) and, with a validation rule that needs whole rows, the
row path.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from factorysync.engine.discovery import discover_source
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from tests.conftest import write_json
from tests.connectors.conftest import SourceServer
from tests.engine.test_runner import register, table_rows

JAKARTA = "Asia/Jakarta"
AT_UTC = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 02:00 read as UTC
AT_JAKARTA = datetime(2026, 1, 4, 19, 0, tzinfo=UTC)  # 02:00 in Asia/Jakarta
ZONES = [pytest.param(None, AT_UTC, id="default-utc"), pytest.param(JAKARTA, AT_JAKARTA, id="wib")]
# A rule that needs whole rows keeps the mapping off the columnar path.
ROW_PATH = {"validate": [{"field": "id", "rule": "required"}]}
PATHS = [pytest.param({}, id="fast-path"), pytest.param(ROW_PATH, id="row-path")]


def source(
    source_id: str,
    source_type: str,
    connection: dict[str, Any],
    auth: dict[str, Any] | None = None,
    **mapping: Any,
) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": source_type,
        "connections": [
            {"connection_config": connection, "authentication_config": auth or {}},
        ],
        "mappings": [
            {"target_table": source_id, "mapping_config": {"primary_key": "id", **mapping}}
        ],
    }


def synced(store: Store, decl: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    """Register and sync ``decl``; its target rows by id."""
    register(store, decl)
    result = Runner(store).sync(decl["source_id"])
    assert result.sync_status == "success", result.error_message
    return {row["id"]: row for row in table_rows(store, decl["source_id"])}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def server(request: pytest.FixtureRequest) -> SourceServer:
    """The source database server named by the test's ``dialect`` parameter."""
    if request.node.callspec.params["dialect"] == "postgresql":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("pg_source")  # type: ignore[no-any-return]
    request.applymarker(pytest.mark.mariadb)
    return request.getfixturevalue("maria_source")  # type: ignore[no-any-return]


def shift_table(server: SourceServer) -> str:
    """A source table of one shift starting 02:00, a timestamp without a time zone
    (MariaDB DATETIME, PostgreSQL timestamp), next to one with a zone for comparison."""
    table = unique("shift")
    if server.dialect == "postgresql":
        server.execute(
            f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, started TIMESTAMP, logged TIMESTAMPTZ)",
            f"INSERT INTO {table} VALUES (1, '2026-01-05 02:00', '2026-01-05 02:00+00')",
        )
    else:
        server.execute(
            f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, started DATETIME, note TEXT)",
            f"INSERT INTO {table} VALUES (1, '2026-01-05 02:00:00', 'night shift')",
        )
    return table


@pytest.mark.parametrize("zone, expected", ZONES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dialect", ["mariadb", "postgresql"])
def test_database_timestamps_without_zone(
    store: Store,
    server: SourceServer,
    dialect: str,
    path: dict[str, Any],
    zone: str | None,
    expected: datetime,
) -> None:
    assert store.settings.timezone == JAKARTA  # the plant zone, which must not matter
    table = shift_table(server)
    connection = server.source(table=table, **({"timezone": zone} if zone else {}))
    rows = synced(store, source(table, "database", connection, server.auth, **path))
    assert rows[1]["started"] == expected
    if dialect == "postgresql":  # a timestamp with a zone is what it says, whatever zone
        assert rows[1]["logged"] == AT_UTC


@pytest.mark.parametrize("zone, expected", ZONES)
@pytest.mark.parametrize("path", PATHS)
def test_csv_timestamps_without_zone(
    store: Store,
    data_dir: Path,
    path: dict[str, Any],
    zone: str | None,
    expected: datetime,
) -> None:
    """The CSV reader types ``started`` (``date_formats``); the mapping types ``ended``
    (ISO text without an offset) and ``handover`` with its own zone, which wins."""
    (data_dir / "shifts.csv").write_text(
        "id,started,ended,handover\n1,05.01.2026 02:00,2026-01-05 02:00:00,2026-01-05 02:00\n"
    )
    connection = {"file_path": "shifts.csv", "date_formats": ["%d.%m.%Y %H:%M"]}
    if zone:
        connection["timezone"] = zone
    fields = {
        "id": "id",
        "started": "started",
        "ended": {"from": "ended", "type": "datetime"},
        "handover": {"from": "handover", "type": "datetime", "timezone": "Asia/Tokyo"},
    }
    rows = synced(store, source("shifts", "csv", connection, fields=fields, **path))
    assert rows[1]["started"] == expected
    assert rows[1]["ended"] == expected
    assert rows[1]["handover"] == datetime(2026, 1, 4, 17, 0, tzinfo=UTC)  # 02:00 in Tokyo


@pytest.mark.parametrize("zone, expected", ZONES)
@pytest.mark.parametrize("path", PATHS)
def test_json_text_typed_by_the_mapping(
    store: Store,
    data_dir: Path,
    path: dict[str, Any],
    zone: str | None,
    expected: datetime,
) -> None:
    write_json(
        data_dir / "shifts.json",
        [{"id": 1, "started": "2026-01-05T02:00:00", "logged": "2026-01-05T02:00:00+00:00"}],
    )
    connection = {"file_path": "shifts.json", **({"timezone": zone} if zone else {})}
    fields = {
        "id": "id",
        "started": {"from": "started", "type": "datetime"},
        "logged": {"from": "logged", "type": "datetime"},
    }
    rows = synced(store, source("shifts_json", "json", connection, fields=fields, **path))
    assert rows[1]["started"] == expected
    assert rows[1]["logged"] == AT_UTC


@pytest.fixture
def allow_python(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORYSYNC_COMMAND_ALLOWLIST", sys.executable)


@pytest.mark.parametrize("zone, expected", ZONES)
def test_command_output_and_its_local_time(
    allow_python: None, store: Store, data_dir: Path, zone: str | None, expected: datetime
) -> None:
    """A command prints a naive timestamp; its TZ is the zone that timestamp is read in."""
    tool = data_dir / "shift_tool.py"
    tool.write_text(
        "import json, os\n"
        'print(json.dumps([{"id": 1, "started": "2026-01-05 02:00:00", "tz": os.environ["TZ"]}]))\n'
    )
    connection = {"command": sys.executable, "parameters": [str(tool)]}
    if zone:
        connection["timezone"] = zone
    fields = {"id": "id", "tz": "tz", "started": {"from": "started", "type": "datetime"}}
    rows = synced(store, source("shift_tool", "command", connection, fields=fields))
    assert rows[1]["started"] == expected
    assert rows[1]["tz"] == (zone or "UTC")


@pytest.mark.parametrize("dialect", ["mariadb", "postgresql"])
def test_discover_names_the_naive_columns(store: Store, server: SourceServer, dialect: str) -> None:
    table = shift_table(server)
    register(store, source(table, "database", server.source(table=table), server.auth))
    found = discover_source(store, table)
    fields = {f["name"]: f for f in found["fields"]}
    assert found["timezone"] == "UTC"
    assert fields["started"]["naive"] is True
    assert fields["started"]["note"] == (
        "naive timestamps, read as UTC (set connection_config.timezone)"
    )
    assert "naive" not in fields["id"]
    if dialect == "postgresql":
        assert "naive" not in fields["logged"]  # timestamptz: the zone is in the value

    wib = unique("shift_wib")
    connection = server.source(table=table, timezone=JAKARTA)
    register(store, source(wib, "database", connection, server.auth))
    started = {f["name"]: f for f in discover_source(store, wib)["fields"]}["started"]
    assert started["note"] == "naive timestamps, read as Asia/Jakarta (connection_config.timezone)"


def test_discover_names_naive_file_columns(store: Store, data_dir: Path) -> None:
    (data_dir / "shifts.csv").write_text(
        "id,started,logged\n1,05.01.2026 02:00,05.01.2026 02:00 +0000\n"
    )
    formats = ["%d.%m.%Y %H:%M %z", "%d.%m.%Y %H:%M"]
    connection = {"file_path": "shifts.csv", "date_formats": formats, "timezone": JAKARTA}
    register(store, source("csv_shifts", "csv", connection))
    fields = {f["name"]: f for f in discover_source(store, "csv_shifts")["fields"]}
    assert fields["started"]["kind"] == "datetime" and fields["started"]["naive"] is True
    assert "Asia/Jakarta" in fields["started"]["note"]
    assert fields["logged"]["kind"] == "datetime" and "naive" not in fields["logged"]

    write_json(data_dir / "shifts.json", [{"id": 1, "started": "2026-01-05T02:00:00"}])
    register(store, source("json_shifts", "json", {"file_path": "shifts.json"}))
    started = {f["name"]: f for f in discover_source(store, "json_shifts")["fields"]}["started"]
    assert started["kind"] == "string" and started["naive"] is True
    assert started["note"] == (
        "naive timestamps in text, kept as text: a mapping field {type: datetime} reads "
        "them as UTC (set connection_config.timezone)"
    )
