"""``factorysync demo`` ends in the console: it prints the address and a login (the admin
with a new random password), which works in the console over real HTTP; started again
on the same store it resets the password and says so. The password is shown on the
terminal only: not in the logs (stderr), not in any file, not in the store."""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx2

from factorysync import services
from factorysync.demo.login import DEMO_ADMIN, demo_login
from factorysync.store.store import Store
from tests.waiting import wait_until

DEMO = [sys.executable, "-m", "factorysync.cli", "demo", "--size-mb", "0.1"]
ENV = {
    "FACTORYSYNC_DATABASE_URL": "sqlite:///./factorysync.db",
    "FACTORYSYNC_DATA_ROOTS": "./data",
    "FACTORYSYNC_SECRET_KEY_FILE": "./factorysync.key",
    "FACTORYSYNC_SECRET_KEY": "",
    "FACTORYSYNC_LOG_LEVEL": "DEBUG",  # everything the service logs, to look for the password
    "COLUMNS": "200",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def login(self) -> dict[str, str]:
        """``console``, ``username`` and ``password``, as the demo printed them."""
        return dict(re.findall(r"^(console|username|password) +(\S+)$", self.stdout(), re.M))

    def stop(self) -> tuple[str, str]:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.returncode == 0, self.err.read_text()
        return self.stdout(), self.err.read_text(encoding="utf-8", errors="replace")


def start_demo(plant: Path, logs: Path, name: str) -> Demo:
    """``factorysync demo`` in ``plant`` (as ``make demo`` runs it in a clone), once its
    console answers; its output goes to files in ``logs``, outside the plant folder."""
    import os

    port = free_port()
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    with out.open("wb") as o, err.open("wb") as e:
        process = subprocess.Popen(
            [*DEMO, "--host", "127.0.0.1", "--port", str(port)],
            cwd=plant,
            env={**os.environ, **ENV},
            stdout=o,
            stderr=e,
        )
    demo = Demo(process, out, err)

    def serving() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"demo exited {process.returncode}:\n{err.read_text()}")
        if "password" not in demo.login():
            return False
        try:
            return httpx2.get(f"http://127.0.0.1:{port}/api/health", timeout=2).is_success
        except httpx2.TransportError:
            return False

    try:
        wait_until(serving, what="the demo to print its login and serve", poll_s=0.2)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return demo


def log_in(url: str, username: str, password: str) -> tuple[httpx2.Client, int]:
    """A client with the console's login form posted (CSRF token from the login page)."""
    client = httpx2.Client(base_url=url, timeout=60)
    form = client.get("/login")
    assert form.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, form.text
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "csrf": csrf.group(1)},
        follow_redirects=False,
    )
    return client, answer.status_code


def assert_overview(client: httpx2.Client) -> None:
    try:
        page = client.get("/", follow_redirects=False)
    finally:
        client.close()
    assert page.status_code == 200, page.text
    assert 'id="totals"' in page.text and "/login" not in page.headers.get("location", "")


def assert_nowhere_stored(password: str, plant: Path) -> None:
    """Not in any file of the plant folder (store, WAL, key, data), nor in any table."""
    files = [p for p in plant.rglob("*") if p.is_file()]
    assert any(p.name == "factorysync.db" for p in files)
    for path in files:
        assert password.encode() not in path.read_bytes(), path
    with sqlite3.connect(plant / "factorysync.db") as db:
        dump = "\n".join(db.iterdump())
        (stored,) = db.execute(
            "SELECT password_hash FROM users WHERE username = ?", (DEMO_ADMIN,)
        ).fetchone()
    assert password not in dump
    assert stored.startswith("$argon2id$")


def test_demo_prints_a_login_that_opens_the_console(tmp_path: Path) -> None:
    plant, logs = tmp_path / "plant", tmp_path / "logs"
    plant.mkdir()
    logs.mkdir()

    first = start_demo(plant, logs, "first")
    try:
        printed = first.login()
        assert printed["username"] == DEMO_ADMIN
        assert printed["console"].startswith("http://127.0.0.1:")
        password = printed["password"]
        assert len(password) >= 20
        anonymous = httpx2.get(printed["console"], follow_redirects=False, timeout=60)
        assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
        client, status = log_in(printed["console"], DEMO_ADMIN, password)
        assert status == 303
        assert_overview(client)
    finally:
        out, err = first.stop()
    assert f"login     user '{DEMO_ADMIN}' for the console, password shown once:" in out
    assert re.search(r"^fs_\S{40,}$", out, re.M)  # a new store's first API token, as before
    assert out.count(password) == 1  # printed once
    assert password not in err
    assert_nowhere_stored(password, plant)

    # Again on the same store: a new password, said so; the old one no longer works.
    second = start_demo(plant, logs, "second")
    try:
        again = second.login()
        assert again["password"] != password
        client, status = log_in(again["console"], DEMO_ADMIN, password)
        client.close()
        assert status == 401
        client, status = log_in(again["console"], DEMO_ADMIN, again["password"])
        assert status == 303
        assert_overview(client)
    finally:
        out, err = second.stop()
    assert f"login     user '{DEMO_ADMIN}' existed: new password, the old one is void" in out
    assert not re.search(r"^fs_", out, re.M)
    assert again["password"] not in err and password not in err
    assert_nowhere_stored(again["password"], plant)


def test_demo_login_on_a_store_made_by_init_and_on_a_disabled_admin(store: Store) -> None:
    """``init`` made the admin with a token only: the demo gives it a password (not a
    "reset"); a disabled or demoted admin is made an active admin again."""
    from factorysync.store import accounts

    services.init_store(store)
    assert services.create_first_admin(store) is not None
    made = demo_login(store)
    assert (made.username, made.reset, made.token) == (DEMO_ADMIN, False, None)
    assert made.password not in repr(made)
    with store.begin() as conn:
        assert accounts.login(conn, DEMO_ADMIN, made.password) is not None
        accounts.update_user(conn, DEMO_ADMIN, is_active=False, role="viewer")
    again = demo_login(store)
    assert again.reset and again.password != made.password
    with store.begin() as conn:
        assert accounts.login(conn, DEMO_ADMIN, made.password) is None
        user = accounts.login(conn, DEMO_ADMIN, again.password)
    assert user is not None and user["role"] == "admin" and user["is_active"]
