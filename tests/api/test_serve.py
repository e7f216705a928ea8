"""The real servers on a loopback port: ``serve``, ``run`` (scheduler next to the API) and
``demo``; real HTTP, gzip on the wire, graceful stop on SIGTERM."""

from __future__ import annotations

import gzip
import signal
import socket
import time
from pathlib import Path

import httpx2
import orjson

from tests.api.conftest import machine_source, machines, start_server
from tests.conftest import run_cli, write_json


def raw_get(url: str, path: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """One HTTP/1.1 request over a plain socket: (head, body) exactly as sent."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_serve_over_real_http(env: dict[str, str], data_dir: Path) -> None:
    token = run_cli("init", check=True).stdout.strip().splitlines()[-1]
    write_json(data_dir / "m.json", {"data": machines(300)})
    server = start_server("serve", env=env)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx2.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/api/health").json()["status"] == "ok"
            assert client.get("/api/status").status_code == 401
            assert client.get("/openapi.json").status_code == 401
            assert "swagger-ui" in client.get("/docs", headers=headers).text
            document = client.get("/openapi.json", headers=headers).json()
            assert document["info"]["title"] == "factorysync"
            assert "console" in client.get("/").text
            created = client.post(
                "/api/sources", json=machine_source(data_dir / "m.json"), headers=headers
            )
            assert created.status_code == 201
            run = client.post("/api/sources/machines/sync", headers=headers).json()
            for _ in range(600):
                done = client.get(f"/api/runs/{run['run_id']}", headers=headers).json()
                if done["sync_status"] != "running":
                    break
                time.sleep(0.05)
            assert done["sync_status"] == "success" and done["records_inserted"] == 300
            page = client.get("/api/data/machines?limit=100", headers=headers)
            assert len(page.json()["items"]) == 100
        head, body = raw_get(
            server.url,
            "/api/data/machines?limit=100",
            {**headers, "Accept-Encoding": "gzip"},
        )
        assert b"content-encoding: gzip" in head.lower()
        assert orjson.loads(gzip.decompress(body))["items"] == page.json()["items"]
    finally:
        code, out, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert token not in out + err


def test_run_serves_the_api_next_to_the_scheduler(env: dict[str, str], data_dir: Path) -> None:
    token = run_cli("init", check=True).stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    write_json(data_dir / "m.json", {"data": machines(20)})
    server = start_server("run", env=env)
    try:
        with httpx2.Client(base_url=server.url, headers=headers, timeout=30) as client:
            body = machine_source(data_dir / "m.json")
            assert client.post("/api/sources", json=body).status_code == 201
            # Nobody asks for a sync: the scheduler runs the new (due) source by itself.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                page = client.get("/api/data/machines?limit=1000")
                if page.status_code == 200 and len(page.json()["items"]) == 20:
                    break
                time.sleep(0.2)
            assert len(page.json()["items"]) == 20, page.text
            runs = client.get("/api/sources/machines/history").json()
            assert runs[0]["trigger"] == "schedule"
    finally:
        code, out, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert "finishing runs in progress" in err
    assert "API and console on http://127.0.0.1:" in out


def test_demo_serves_what_it_synced(tmp_path: Path) -> None:
    env = {
        "FACTORYSYNC_DATABASE_URL": "sqlite:///./factorysync.db",
        "FACTORYSYNC_DATA_ROOTS": "./data",
        "FACTORYSYNC_SECRET_KEY_FILE": "./factorysync.key",
        "FACTORYSYNC_SECRET_KEY": "",
    }
    server = start_server("demo", "--size-mb", "0.2", "--json", env=env, cwd=tmp_path)
    try:
        out = (server.logs / "stdout").read_text()
        token = next(line for line in out.splitlines() if line.startswith("fs_"))
        with httpx2.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            entries = client.get("/api/legacy/source_data").json()
            assert len(entries) >= 40
            first = client.get(entries[0]["url"])
            assert first.status_code == 200 and first.json()
    finally:
        code, _, err = server.stop(signal.SIGINT)
    assert code == 0, err
