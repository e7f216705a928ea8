"""Alert fixtures: a real webhook receiver (HTTP on 127.0.0.1) and a real SMTP server
(aiosmtpd), and a file source whose document can be broken and repaired."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from factorysync import services
from factorysync.store.store import Store
from tests.conftest import write_json
from tests.waiting import PATIENCE


def free_port() -> int:
    """A port free right now (another process may take it before it is used)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Webhook:
    """Records every JSON POST it receives."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                hook.paths.append(self.path)
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/plant-alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        return [b["event"] for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """A real SMTP server (aiosmtpd) keeping the messages it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.recipients.append(list(envelope.rcpt_tos))
                box.messages.append(message_from_bytes(envelope.original_content))
                return "250 Message accepted"

        for attempt in range(5):
            self.port = free_port()
            self.controller = Controller(
                Handler(), hostname="127.0.0.1", port=self.port, ready_timeout=PATIENCE
            )
            try:
                self.controller.start()
                break
            except OSError:  # the port found free was taken meanwhile: another one
                if attempt == 4:
                    raise

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.close()


def file_source(store: Store, data_dir: Path, source_id: str = "press_line", **extra: Any) -> Path:
    path = write_json(data_dir / f"{source_id}.json", [{"id": 1, "qty": 5}, {"id": 2, "qty": 7}])
    services.create_source(
        store,
        {
            "source_id": source_id,
            "name": "Press line",
            "source_type": "json",
            "refresh_interval": 60,
            "connections": [{"connection_config": {"file_path": str(path)}}],
            "mappings": [{"target_table": source_id, "mapping_config": {"primary_key": ["id"]}}],
            **extra,
        },
    )
    return path
