"""What the central tests share: nats-server processes on loopback, a tiny publisher of
spec-conformant forwarding messages, and the central tables read back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from factorysync.store.store import Store
from tests.conftest import need_service

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
STREAM = "FACTORYSYNC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class NatsServer:
    """A nats-server on 127.0.0.1: the hub (JetStream, leaf node port) or a leaf of it."""

    workdir: Path
    jetstream: bool = True
    hub_leaf_port: int | None = None  # a leaf: the hub's leaf node port
    port: int = field(default_factory=free_port)
    leaf_port: int = field(default_factory=free_port)  # a hub: where leaves connect
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [f"listen: 127.0.0.1:{self.port}", f'server_name: "fs-{self.port}"']
        if self.jetstream:
            store = self.workdir / "js"
            lines.append(f'jetstream {{ store_dir: "{store}" }}')
        if self.hub_leaf_port is None:
            lines.append(f"leafnodes {{ listen: 127.0.0.1:{self.leaf_port} }}")
        else:
            lines.append(
                "leafnodes { remotes [ { url: "
                f'"nats-leaf://127.0.0.1:{self.hub_leaf_port}" }} ] }}'
            )
        return "\n".join(lines) + "\n"

    def start(self) -> NatsServer:
        if not Path(NATS_SERVER).exists():
            need_service("nats-server", f"{NATS_SERVER} not found")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nats.conf"
        conf.write_text(self.config())
        log = (self.workdir / "nats.log").open("ab")
        self.process = subprocess.Popen(
            [NATS_SERVER, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 60
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"nats-server did not start: {(self.workdir / 'nats.log').read_text()[-2000:]}"
                )
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.process = None


def row_hash(values: Iterable[Any]) -> str:
    return hashlib.blake2b(orjson.dumps(list(values)), digest_size=16).hexdigest()


@dataclass
class Change:
    """One message of the forwarding format, version 1 (the spec's payload)."""

    site: str
    table: str
    op: str
    rows: list[list[Any]]
    columns: dict[str, str]
    key: list[str]
    source_id: str = "line1"
    run_id: int = 1
    outbox_seq: int = 1
    published_at: str | None = None

    @property
    def subject(self) -> str:
        return f"factorysync.{self.site}.{self.table}"

    def payload(self) -> bytes:
        stamp = self.published_at or datetime.now(UTC).isoformat(timespec="milliseconds")
        return orjson.dumps(
            {
                "v": 1,
                "site": self.site,
                "table": self.table,
                "source_id": self.source_id,
                "run_id": self.run_id,
                "outbox_seq": self.outbox_seq,
                "op": self.op,
                "key": self.key,
                "columns": self.columns,
                "rows": self.rows,
                "published_at": stamp.replace("+00:00", "Z"),
            }
        )

    def msg_id(self) -> str:
        blob = orjson.dumps(
            [self.site, self.run_id, self.table, self.op, self.outbox_seq, self.rows]
        )
        return hashlib.sha256(blob).hexdigest()


PRODUCTION = {
    "machine": "string",
    "ts": "datetime",
    "qty": "integer",
    "_row_hash": "string",
    "_run_id": "integer",
    "_synced_at": "datetime",
    "_deleted_at": "datetime",
}


def production_rows(site: str, run_id: int, items: list[tuple[str, str, int]]) -> Change:
    """A "rows" message for table ``production`` keyed by (machine, ts)."""
    synced = datetime.now(UTC).isoformat()
    rows = [[m, ts, q, row_hash([m, ts, q]), run_id, synced, None] for m, ts, q in items]
    return Change(
        site, "production", "rows", rows, dict(PRODUCTION), ["machine", "ts"], run_id=run_id
    )


def production_deletes(site: str, run_id: int, keys: list[tuple[str, str]]) -> Change:
    return Change(
        site, "production", "delete", [list(k) for k in keys], dict(PRODUCTION),
        ["machine", "ts"], run_id=run_id,
    )  # fmt: skip


async def _ensure_stream(js: Any) -> None:
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=STREAM,
                subjects=["factorysync.>"],
                storage=StorageType.FILE,
                duplicate_window=86400,
            )
        )


def publish(url: str, changes: list[Change], *, msg_ids: bool = True) -> list[int]:
    """Publish ``changes`` to the stream (made when missing); returns their sequences."""

    async def run() -> list[int]:
        import nats

        nc = await nats.connect(url, connect_timeout=10)
        try:
            js = nc.jetstream(timeout=30)
            await _ensure_stream(js)
            seqs = []
            for change in changes:
                headers = {"Fs-Format": "1"}
                if msg_ids:
                    headers["Nats-Msg-Id"] = change.msg_id()
                ack = await js.publish(change.subject, change.payload(), headers=headers)
                seqs.append(ack.seq)
            return seqs
        finally:
            await nc.close()

    return asyncio.run(run())


def publish_raw(url: str, subject: str, data: bytes) -> int:
    async def run() -> int:
        import nats

        nc = await nats.connect(url, connect_timeout=10)
        try:
            js = nc.jetstream(timeout=30)
            await _ensure_stream(js)
            ack = await js.publish(subject, data)
            return int(ack.seq)
        finally:
            await nc.close()

    return asyncio.run(run())


def table_rows(
    store: Store, table: str, order: str = "_site, _source_id, machine, ts"
) -> list[dict[str, Any]]:
    with store.connect() as conn:
        found = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY {order}')).mappings()
        return [dict(r) for r in found]


def has_table(store: Store, table: str) -> bool:
    with store.connect() as conn:
        return bool(conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar())


def column_types(store: Store, table: str) -> dict[str, str]:
    with store.connect() as conn:
        return {
            r[0]: r[1]
            for r in conn.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = :t"
                ),
                {"t": table},
            )
        }


def require_nats_client() -> None:
    try:
        import nats  # noqa: F401
    except ImportError:
        pytest.skip("nats-py is not installed (pip install 'factorysync[nats]')")


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))
