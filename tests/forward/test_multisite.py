"""Two plants forward into one central store, end to end, through real processes.

The topology of a group: a hub nats-server with JetStream beside the central store
(PostgreSQL, ``factorysync central``), and at the plant a nats-server that is a leaf node
of the hub (no JetStream of its own), with ``factorysync run`` on a SQLite store
forwarding to it. Plant ``plant-a`` syncs a 100,000-row CSV file in full, rewritten
between syncs (updates, hard deletes, new rows); meanwhile the hub is stopped for a
minute (FACTORYSYNC_TEST_HUB_DOWN_S) while the plant keeps syncing, the plant's service
and the central ingest are each killed once (SIGKILL) and started again. At the end the
central table holds exactly the plant's rows (count and a checksum over the key, the
values and ``_row_hash``; ``_site`` aside) with no key twice, and a second plant
(``plant-b``, the same source and keys) forwards into the same table without touching
the first one's rows.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import need_service, run_cli
from tests.forward.central_helpers import NatsServer, env_float, free_port, require_nats_client
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROWS = int(os.environ.get("FACTORYSYNC_TEST_FORWARD_ROWS", "100000"))
HUB_DOWN_S = env_float("FACTORYSYNC_TEST_HUB_DOWN_S", 60.0)
CONVERGE_S = 900.0  # generous: two suites may share the machine's two cores
COLUMNS = "_source_id, line, seq, qty, ts, note, _row_hash, _deleted_at"

SOURCES = """\
sources:
  - source_id: production
    name: Production counts
    source_type: csv
    refresh_interval: 86400
    connections:
      - connection_config: {file_path: production.csv}
    mappings:
      - target_table: production
        sync_strategy: full
        mapping_config: {primary_key: [line, seq]}
"""


def write_csv(path: Path, round_no: int, rows: int, *, qty_base: int = 0) -> int:
    """The export of ``round_no``: each round changes 5 % of the quantities, leaves out
    2 % of the rows (hard deletes; rows left out before come back) and adds 1,000."""
    lines = ["line,seq,qty,ts,note"]
    for seq in range(rows + 1000 * round_no):
        if round_no and seq % 50 == round_no:
            continue
        qty = qty_base + seq % 97 + (1000 * round_no if seq % 20 == round_no else 0)
        ts = datetime.fromtimestamp(1_796_544_000 + seq, UTC).isoformat()
        lines.append(f"L{seq % 4},{seq},{qty},{ts},r{round_no if seq % 20 == round_no else 0}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)  # the plant's exporter replaces the file whole
    return len(lines) - 1


def checksum(rows: list[tuple[Any, ...]]) -> tuple[int, str]:
    """(count, sha256) of rows made comparable across SQLite and PostgreSQL."""
    norm = sorted(
        (
            sid,
            line,
            int(seq),
            int(qty),
            _utc(ts),
            note,
            row_hash,
            _utc(deleted),
        )
        for sid, line, seq, qty, ts, note, row_hash, deleted in rows
    )
    return len(norm), hashlib.sha256(orjson.dumps(norm)).hexdigest()


def _utc(value: Any) -> str | None:
    if value is None:
        return None
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).isoformat()


@dataclass
class Plant:
    """A plant: its SQLite store and CSV export, and its `factorysync run` process."""

    site: str
    root: Path
    forward_url: str
    process: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)

    @property
    def env(self) -> dict[str, str]:
        return {
            "FACTORYSYNC_DATABASE_URL": f"sqlite:///{self.root / 'factorysync.db'}",
            "FACTORYSYNC_DATA_ROOTS": str(self.root / "data"),
            "FACTORYSYNC_SECRET_KEY": "",
            "FACTORYSYNC_SECRET_KEY_FILE": str(self.root / "factorysync.key"),
            "FACTORYSYNC_SITE": self.site,
            "FACTORYSYNC_FORWARD_URL": self.forward_url,
            "FACTORYSYNC_FORWARD_TABLES": "production",
            "FACTORYSYNC_LOG_LEVEL": "INFO",
        }

    @property
    def csv(self) -> Path:
        return self.root / "data" / "production.csv"

    def set_up(self) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        (self.root / "sources.yaml").write_text(SOURCES)
        run_cli("init", cwd=self.root, env=self.env, check=True)
        run_cli("apply", "sources.yaml", cwd=self.root, env=self.env, check=True)

    def sync(self) -> None:
        run_cli("source", "sync", "production", cwd=self.root, env=self.env, check=True)

    def start(self) -> None:
        self.process = _spawn(["run", "--port", str(self.port)], self.root, self.env, "run")

    def kill(self) -> None:
        _kill(self.process)

    def stop(self) -> int | None:
        return _terminate(self.process)

    def rows(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / "factorysync.db", timeout=60) as db:
            return db.execute(f"SELECT {COLUMNS} FROM production").fetchall()

    def outbox(self) -> int:
        with sqlite3.connect(self.root / "factorysync.db", timeout=60) as db:
            return int(db.execute("SELECT count(*) FROM forward_outbox").fetchone()[0])


def _spawn(args: list[str], cwd: Path, env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
    out = (cwd / f"{log}.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "factorysync.cli", *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    finally:
        out.close()


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    assert process is not None and process.poll() is None, "the process ended before its kill"
    process.send_signal(signal.SIGKILL)
    process.wait(30)


def _terminate(process: subprocess.Popen[bytes] | None) -> int | None:
    if process is None or process.poll() is not None:
        return None if process is None else process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        raise AssertionError("did not stop within 120 s of SIGTERM") from None


@dataclass
class Central:
    root: Path
    database_url: str
    central_url: str
    process: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)

    @property
    def env(self) -> dict[str, str]:
        return {
            "FACTORYSYNC_DATABASE_URL": self.database_url,
            "FACTORYSYNC_DATA_ROOTS": str(self.root / "data"),
            "FACTORYSYNC_SECRET_KEY": "",
            "FACTORYSYNC_SECRET_KEY_FILE": str(self.root / "factorysync.key"),
            "FACTORYSYNC_CENTRAL_URL": self.central_url,
            "FACTORYSYNC_LOG_LEVEL": "INFO",
        }

    def start(self) -> None:
        self.process = _spawn(["central", "--port", str(self.port)], self.root, self.env, "central")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        url = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=30) as conn:
            try:
                return list(conn.execute(sql, params).fetchall())
            except psycopg.errors.UndefinedTable:
                return []

    def rows(self, site: str) -> list[tuple[Any, ...]]:
        return self.query(f"SELECT {COLUMNS} FROM production WHERE _site = %s", site)

    def applied(self) -> int:
        found = self.query("SELECT coalesce(sum(messages_applied), 0) FROM central_sites")
        return int(found[0][0]) if found else 0


@pytest.fixture
def group(tmp_path: Path, pg_server: Any) -> Iterator[dict[str, Any]]:
    require_nats_client()
    if isinstance(pg_server, Exception):
        need_service("PostgreSQL", str(pg_server))
    hub = NatsServer(tmp_path / "hub").start()
    leaf = NatsServer(tmp_path / "leaf", jetstream=False, hub_leaf_port=hub.leaf_port).start()
    url = pg_server.new_database()
    central = Central(tmp_path / "central", url, hub.url)
    (central.root / "data").mkdir(parents=True)
    run_cli("init", cwd=central.root, env=central.env, check=True)
    plants = [Plant("plant-a", tmp_path / "plant-a", leaf.url)]
    plants.append(Plant("plant-b", tmp_path / "plant-b", leaf.url))
    parts = {"hub": hub, "leaf": leaf, "central": central, "plants": plants}
    try:
        yield parts
    finally:
        for plant in plants:
            _terminate(plant.process)
        _terminate(central.process)
        leaf.stop()
        hub.stop()
        pg_server.drop(url)


def converged(plant: Plant, central: Central) -> bool:
    return plant.outbox() == 0 and checksum(plant.rows()) == checksum(central.rows(plant.site))


def _state(plant: Plant, central: Central) -> str:
    return (
        f"outbox {plant.outbox()}, plant {checksum(plant.rows())[0]} rows, "
        f"central {checksum(central.rows(plant.site))[0]} rows, "
        f"applied {central.applied()} messages; logs in {plant.root} and {central.root}"
    )


def test_two_plants_forward_exactly_into_one_central_store(group: dict[str, Any]) -> None:
    hub, central = group["hub"], group["central"]
    plant, second = group["plants"]
    plant.set_up()
    write_csv(plant.csv, 0, ROWS)
    plant.sync()  # the first load waits in the outbox until the service publishes it
    assert plant.outbox() > 0
    central.start()
    plant.start()
    wait_until(lambda: central.applied() > 0, timeout=300, what="the first load arriving")

    # A round of changes; the plant's service is killed while it forwards them.
    before = central.applied()
    write_csv(plant.csv, 1, ROWS)
    plant.sync()
    wait_until(lambda: central.applied() > before, timeout=300, what="round 1 arriving")
    plant.kill()
    plant.start()

    # The uplink goes down; the plant keeps syncing, its changes wait in its outbox.
    hub.stop()
    down_until = time.monotonic() + HUB_DOWN_S
    write_csv(plant.csv, 2, ROWS)
    plant.sync()
    write_csv(plant.csv, 3, ROWS)
    plant.sync()
    assert plant.outbox() > 0
    time.sleep(max(down_until - time.monotonic(), 0))  # the outage lasts its full length
    hub.start()

    # The central ingest is killed while it catches up, and started again.
    caught = central.applied()
    wait_until(lambda: central.applied() > caught, timeout=300, what="catching up after the outage")
    _kill(central.process)
    central.start()
    wait_until(
        lambda: converged(plant, central),
        timeout=CONVERGE_S,
        what="the central table equal to the plant's",
        state=lambda: _state(plant, central),
    )
    count, _ = checksum(plant.rows())
    assert count == len(central.rows("plant-a")) > ROWS * 0.9
    duplicates = central.query(
        "SELECT count(*) FROM (SELECT 1 FROM production "
        "GROUP BY _site, _source_id, line, seq HAVING count(*) > 1) d"
    )
    assert duplicates == [(0,)]

    # A second plant: the same source and keys, other quantities, into the same table.
    second.set_up()
    write_csv(second.csv, 0, 5000, qty_base=10_000)
    second.sync()
    second.start()
    wait_until(
        lambda: converged(second, central),
        timeout=CONVERGE_S,
        what="the second plant's rows at the central",
        state=lambda: _state(second, central),
    )
    assert converged(plant, central), "the second plant changed the first one's rows"
    sites = central.query("SELECT _site, count(*) FROM production GROUP BY 1 ORDER BY 1")
    assert sites == [("plant-a", count), ("plant-b", 5000)]
    lag = central.query("SELECT site, pending_messages FROM central_sites ORDER BY 1")
    assert {site for site, _ in lag} == {"plant-a", "plant-b"}

    # Both stop gracefully on SIGTERM.
    assert central.process is not None
    assert _terminate(central.process) == 0
    assert _terminate(plant.process) == 0
