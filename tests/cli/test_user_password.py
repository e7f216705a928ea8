"""``factorysync user set-password``: a new password from stdin or a hidden prompt, never an
argument; the user's console and API logins end (against a real ``factorysync serve``),
its API tokens stay; refusals change nothing and say why in one line."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import httpx2
import pytest

from factorysync.settings import Settings
from factorysync.store import accounts
from factorysync.store.store import Store
from tests.api.conftest import PASSWORD, cli_with_input, start_server
from tests.conftest import run_cli

NEW_PASSWORD = "Battery-Staple-77"


def console_login(client: httpx2.Client, password: str) -> httpx2.Response:
    csrf = client.get("/login").cookies["fs_login_csrf"]
    form = {"username": "ops", "password": password, "csrf": csrf, "next": "/"}
    return client.post("/login", data=form)


def api_login(client: httpx2.Client, password: str) -> httpx2.Response:
    return client.post("/api/auth/login", json={"username": "ops", "password": password})


def add_ops() -> None:
    run_cli("init", check=True)
    added = cli_with_input(
        "user", "add", "ops", "--role", "operator", "--password-stdin", text=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr


def logs_in(password: str) -> bool:
    store = Store(Settings())
    try:
        with store.begin() as conn:
            return accounts.login(conn, "ops", password) is not None
    finally:
        store.dispose()


def test_a_new_password_ends_the_login_sessions_and_keeps_the_tokens(
    env: dict[str, str],
) -> None:
    add_ops()
    created = run_cli("token", "create", "--user", "ops", "--name", "scada", check=True)
    scada = {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}
    server = start_server("serve", env={**env, "FACTORYSYNC_API_CACHE_S": "0"})
    try:
        with (
            httpx2.Client(base_url=server.url, timeout=30) as console,
            httpx2.Client(base_url=server.url, timeout=30) as client,
        ):
            assert console_login(console, PASSWORD).status_code == 303
            assert console.get("/", follow_redirects=False).status_code == 200
            login = api_login(client, PASSWORD)
            assert login.status_code == 200, login.text
            session = {"Authorization": f"Bearer {login.json()['token']}"}
            assert client.get("/api/sources", headers=session).status_code == 200

            changed = cli_with_input(
                "user",
                "set-password",
                "ops",
                "--password-stdin",
                "--json",
                text=NEW_PASSWORD + "\n",
            )
            assert changed.returncode == 0, changed.stderr
            user = json.loads(changed.stdout)
            assert (user["username"], user["has_password"], user["sessions_ended"]) == (
                "ops",
                True,
                2,
            )
            assert "password_hash" not in user
            for text in (changed.stdout, changed.stderr):
                assert NEW_PASSWORD not in text and PASSWORD not in text

            # Both logins of the old password are over; the token made on purpose is not.
            out = console.get("/", follow_redirects=False)
            assert out.status_code == 303 and "/login" in out.headers["location"]
            assert client.get("/api/sources", headers=session).status_code == 401
            assert client.get("/api/sources", headers=scada).status_code == 200
            assert api_login(client, PASSWORD).status_code == 401
            assert api_login(client, NEW_PASSWORD).status_code == 200
    finally:
        server.stop()
    assert logs_in(NEW_PASSWORD) and not logs_in(PASSWORD)
    tokens = json.loads(run_cli("token", "list", "--user", "ops", "--json", check=True).stdout)
    assert {(t["name"], t["revoked_at"] is None) for t in tokens} == {
        ("scada", True),
        ("console", False),
        ("login", False),
        ("login", True),  # the one logged in with the new password
    }

    again = cli_with_input(
        "user", "set-password", "ops", "--password-stdin", text="Third-Pass-2026\n"
    )
    assert again.returncode == 0, again.stderr
    assert "user 'ops': password changed, 1 login session(s) ended" in again.stdout


@pytest.mark.parametrize("backend", ["sqlite"])
def test_refusals_change_nothing_and_say_why(env: dict[str, str]) -> None:
    add_ops()
    store = Store(Settings())
    with store.begin() as conn:
        found = accounts.login_token(conn, "ops", PASSWORD, name="console", ttl_s=600)
    assert found is not None
    session = found[0]

    def refused(text: str, *args: str) -> str:
        result = cli_with_input("user", "set-password", *args, "--password-stdin", text=text)
        assert result.returncode != 0 and result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result.stderr.strip()

    assert refused(NEW_PASSWORD + "\n", "ghost") == (
        "error: no user 'ghost' (see 'factorysync user list')"
    )
    assert refused("short\n", "ops") == "error: password: at least 8 characters"
    assert (
        refused("", "ops") == "error: --password-stdin: the first line of standard input is empty"
    )
    assert refused("x" * 1025 + "\n", "ops") == "error: password: at most 1024 characters"
    assert logs_in(PASSWORD)
    with store.connect() as conn:
        assert accounts.authenticate(conn, session) is not None

    # `user add` asked for a password too: an empty one is refused, not a user without one.
    empty = cli_with_input("user", "add", "qc", "--password-stdin", text="")
    assert empty.returncode == 2 and "standard input is empty" in empty.stderr
    with store.connect() as conn:
        assert "qc" not in [u["username"] for u in accounts.list_users(conn)]
    # A token made on purpose cannot pass for a login session (nor be ended as one).
    named = run_cli("token", "create", "--user", "ops", "--name", "console")
    assert named.returncode == 2
    assert (
        named.stderr.strip() == "error: name 'console' is kept for login sessions: choose another"
    )
    # Never an argument: it would land in the shell's history and in `ps`.
    as_argument = run_cli("user", "set-password", "ops", NEW_PASSWORD)
    assert as_argument.returncode == 2 and logs_in(PASSWORD)
    store.dispose()


def read_until(fd: int, wanted: str, seen: bytearray, start: int = 0) -> int:
    """Read the terminal into ``seen`` until ``wanted`` shows after ``start``: where it ends."""
    end = time.monotonic() + 60
    while (at := seen.find(wanted.encode(), start)) < 0:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {wanted!r} on the terminal: {bytes(seen)!r}")
        if select.select([fd], [], [], left)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the command ended and its side of the pty closed
                raise AssertionError(f"no {wanted!r} on the terminal: {bytes(seen)!r}") from None
    return at + len(wanted)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_prompt_asks_twice_and_never_shows_the_password(env: dict[str, str]) -> None:
    """On a real terminal (a pty): hidden input, asked again when the two differ."""
    add_ops()
    leader, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "factorysync.cli", "user", "set-password", "ops"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
        start_new_session=True,  # no controlling terminal: getpass works on stdin, the pty
    )
    os.close(terminal)
    seen = bytearray()
    at = 0
    try:
        # Each prompt's last space is written once echo is off (getpass): then we type.
        for typed, prompt in [
            (NEW_PASSWORD, "password: "),
            ("Not-The-Same-1", "confirmation: "),
            (NEW_PASSWORD, "password: "),
            (NEW_PASSWORD, "confirmation: "),
        ]:
            at = read_until(leader, prompt, seen, at)
            os.write(leader, typed.encode() + b"\n")
        read_until(leader, "ended", seen, at)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert "do not match" in text
    assert "user 'ops': password changed, 0 login session(s) ended" in text
    assert NEW_PASSWORD not in text and "Not-The-Same" not in text
    assert logs_in(NEW_PASSWORD) and not logs_in(PASSWORD)
