"""Real HTTP(S) servers on 127.0.0.1 for API connector tests.

A test gives a function from :class:`Request` to :class:`Reply`; the server runs it in a
thread per connection and records every request (with its arrival time).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() on arrival
    target: str  # path and query as sent

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # bytes or str as they are; anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the server stops)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        if self.body is None and self.status == 204:
            return b""
        return orjson.dumps(self.body)


App = Callable[[Request], Reply]


class HttpServer:
    """A threading HTTP/1.1 server running ``app``; ``url`` is its base URL."""

    def __init__(self, app: App, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"):
        self.app = app
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10
            # Headers and body in one segment: no Nagle/delayed-ACK stalls between requests.
            wbufsize = -1
            disable_nagle_algorithm = True

            def _handle(self) -> None:
                at = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    at,
                    self.path,
                )
                with owner._lock:
                    owner.requests.append(request)
                reply = owner.app(request)
                if reply.hang:
                    owner.stopping.wait(30)
                    self.close_connection = True
                    return
                data = reply.encoded()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        # A client that rejects the certificate or hangs up is part of the tests.
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{host}:{self.server.server_address[1]}"
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@contextmanager
def serving(app: App, **options: Any) -> Iterator[HttpServer]:
    server = HttpServer(app, **options)
    try:
        yield server
    finally:
        server.stop()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by itself; (cert, key) PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "factorysync test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Servers:
    """Starts servers for one test and stops them all at its end."""

    def __init__(self) -> None:
        self.started: list[HttpServer] = []

    def start(self, app: App, **options: Any) -> HttpServer:
        server = HttpServer(app, **options)
        self.started.append(server)
        return server

    def stop(self) -> None:
        for server in self.started:
            server.stop()


def api_connector(
    config: dict[str, Any],
    auth: dict[str, Any] | None = None,
    *,
    batch_size: int = 5000,
    **settings: Any,
) -> Any:
    """An ``api`` connector as the engine builds it, with fast retries by default."""
    from factorysync.connectors.base import ConnectorContext
    from factorysync.connectors.registry import build_connector
    from factorysync.settings import Settings

    options = {"retry_backoff_s": 0.01, "api_allowed_hosts": "", **settings}
    context = ConnectorContext("api_test", Settings(**options), batch_size)
    return build_connector("api", config, auth or {}, context)


def read_all(connector: Any, **request: Any) -> list[Any]:
    from factorysync.connectors.base import ReadRequest

    return [r for batch in connector.read(ReadRequest(**request)) for r in batch.records]
