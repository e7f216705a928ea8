"""A console page's live stream ends when its session logs out (a real server)."""

from __future__ import annotations

import queue
import re
import threading
import time

import httpx
import pytest

from factorysync.intake import parse_sources
from factorysync.store.registry_save import apply_declarations
from factorysync.store.store import Store
from tests.api.test_live import live_server, push_source
from tests.waiting import PATIENCE, wait_until
from tests.web.conftest import PASSWORDS, add_users


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_the_live_data_stream_ends_when_the_session_logs_out(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factorysync.services import stream_access

    monkeypatch.setattr(stream_access, "RECHECK_S", 0.1)
    add_users(store)
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": [push_source()]}), store.box)
    with live_server(store) as url, httpx.Client(base_url=url, timeout=PATIENCE) as http:
        login = {
            "username": "viewer1",
            "password": PASSWORDS["viewer"],
            "csrf": csrf_of(http.get("/login").text),
            "next": "/data",
        }
        assert http.post("/login", data=login, follow_redirects=False).status_code == 303
        csrf = csrf_of(http.get("/data").text)
        frames: queue.Queue[str] = queue.Queue()

        def read() -> None:
            try:
                with http.stream("GET", "/data/press_push/events") as answer:
                    frames.put(f"status {answer.status_code}")
                    for line in answer.iter_lines():
                        if line.startswith("event:"):
                            frames.put(line[6:].strip())
            except httpx.HTTPError as exc:
                frames.put(f"error {exc}")
            frames.put("closed")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert frames.get(timeout=PATIENCE) == "status 200"
        assert frames.get(timeout=PATIENCE) == "ready"
        opened = time.monotonic()
        wait_until(lambda: time.monotonic() - opened > 0.5, what="a few checks")
        assert frames.empty(), "the stream ended while the session was valid"
        with httpx.Client(base_url=url, timeout=PATIENCE, cookies=http.cookies) as other:
            assert (
                other.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code
                == 303
            )
        assert frames.get(timeout=PATIENCE) == "end"
        assert frames.get(timeout=PATIENCE) == "closed"
        reader.join(PATIENCE)
