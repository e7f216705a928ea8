"""Fixtures for realtime tests: the local Mosquitto broker, a private broker that a test
may stop and start, publishers and waiting helpers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from factorysync.intake import parse_sources
from factorysync.store.registry_save import apply_declarations
from factorysync.store.store import Store
from tests.conftest import need_service
from tests.waiting import PATIENCE, wait_until

BROKER = ("127.0.0.1", 1883)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def broker() -> tuple[str, int]:
    pytest.importorskip("paho.mqtt.client")
    if not reachable(*BROKER):
        need_service("Mosquitto", f"{BROKER[0]}:{BROKER[1]}")
    return BROKER


@pytest.fixture
def topic_root() -> str:
    """A topic prefix no other test uses."""
    return f"fs-test/{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    """A port free right now (another process may take it before it is used)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateBroker:
    """A Mosquitto of this test's own (persistence on), so the test may stop and start it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.conf = workdir / "mosquitto.conf"
        self._write_conf()
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_conf(self) -> None:
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "max_queued_messages 100000\n"
        )

    def start(self, *, new_port_if_taken: bool = False) -> None:
        """Start the broker and wait until it accepts connections. ``new_port_if_taken``:
        on a first start, a port another process took after it was found free is replaced
        by a fresh one (a restart must keep its port, which its clients reconnect to)."""
        for _ in range(5):
            proc = self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(self.conf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_until(
                lambda proc=proc: proc.poll() is not None or reachable("127.0.0.1", self.port),
                what=f"the private mosquitto on port {self.port}",
            )
            if proc.poll() is None:
                return
            if not new_port_if_taken:
                break
            self.port = free_port()
            self._write_conf()
        raise RuntimeError(f"private mosquitto did not start (exit status {proc.returncode})")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: the broker saves its sessions and queues
            self.proc.wait(PATIENCE)
            self.proc = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    pytest.importorskip("paho.mqtt.client")
    if shutil.which("mosquitto") is None:
        need_service("Mosquitto", "the mosquitto executable is not installed")
    b = PrivateBroker(tmp_path)
    b.start(new_port_if_taken=True)
    yield b
    b.stop()


class Publisher:
    """A paho client publishing at QoS 1 and waiting for the broker's PUBACK."""

    def __init__(self, host: str, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"fs-pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        info = self.client.publish(topic, data, qos=qos, retain=retain)
        info.wait_for_publish(PATIENCE)

    def publish_many(
        self, items: list[tuple[str, Any]], qos: int = 1, *, wait: bool = True
    ) -> list[Any]:
        infos = [
            self.client.publish(t, p if isinstance(p, bytes) else orjson.dumps(p), qos=qos)
            for t, p in items
        ]
        if wait:
            for info in infos:
                info.wait_for_publish(PATIENCE)
        return infos

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: tuple[str, int]) -> Iterator[Publisher]:
    p = Publisher(*broker)
    yield p
    p.close()


def register(store: Store, *sources: dict[str, Any]) -> None:
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": list(sources)}), store.box)


def mqtt_source(
    source_id: str,
    host: str,
    port: int,
    topics: list[str],
    *,
    table: str | None = None,
    mapping: dict[str, Any] | None = None,
    **config: Any,
) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "mqtt",
        "connections": [
            {
                "connection_config": {
                    "host": host,
                    "port": port,
                    "topics": topics,
                    "batch_ms": 50,
                    "client_id": f"fs-test-{uuid.uuid4().hex[:10]}",
                    "session_expiry_s": 300,
                    **config,
                }
            }
        ],
        "mappings": [
            {
                "target_table": table or source_id.replace("-", "_"),
                "sync_strategy": "realtime",
                "sync_frequency": "realtime",
                "mapping_config": mapping or {},
            }
        ],
    }
