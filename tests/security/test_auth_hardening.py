"""Login throttling and forwarded client addresses.

The throttle's rules run on a clock the tests move by hand. The client address rules run
against the real ``factorysync serve`` on 127.0.0.1, with clients bound to other
loopback addresses (127.0.0.2, 127.0.0.3, …: the whole 127/8 is local on Linux).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest
from pydantic import ValidationError

from factorysync.security.throttle import LoginThrottle, LoginThrottled, address_key
from factorysync.settings import Settings
from tests.api.conftest import PASSWORD, Server, cli_with_input, start_server
from tests.conftest import run_cli


# -- the throttle, on a hand-moved clock ---------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **overrides: Any) -> LoginThrottle:
    options: dict[str, Any] = {
        "address_max_failures": 20,
        "backoff_s": 1.0,
        "backoff_max_s": 5.0,
        "clock": clock,
    }
    options.update(overrides)
    return LoginThrottle(3, 60.0, **options)


def attempt(limiter: LoginThrottle, user: str, address: str, ok: bool) -> None:
    with limiter.admit(user, address) as a:
        a.ok = ok


def wait_for(limiter: LoginThrottle, user: str, address: str) -> float:
    with pytest.raises(LoginThrottled) as refused:
        limiter.admit(user, address)
    return refused.value.retry_after


def test_failures_are_counted_per_user_and_address() -> None:
    clock = Clock()
    limiter = throttle(clock)
    for _ in range(3):
        attempt(limiter, "ops", "10.0.0.2", ok=False)
    assert wait_for(limiter, "OPS", "10.0.0.2") == 1.0  # user names count case-blind
    # The right password from elsewhere, and other users from here, are let through.
    attempt(limiter, "ops", "10.0.0.3", ok=True)
    attempt(limiter, "qc", "10.0.0.2", ok=True)
    assert wait_for(limiter, "ops", "10.0.0.2") == 1.0


def test_each_further_failure_doubles_the_wait_up_to_the_cap() -> None:
    clock = Clock()
    limiter = throttle(clock)
    for _ in range(3):
        attempt(limiter, "ops", "10.0.0.2", ok=False)
    waits = [wait_for(limiter, "ops", "10.0.0.2")]
    for _ in range(4):
        # Refused attempts are not checked, so asking while waiting changes nothing.
        clock.now += waits[-1] / 2
        assert wait_for(limiter, "ops", "10.0.0.2") == waits[-1] / 2
        clock.now += waits[-1] / 2
        attempt(limiter, "ops", "10.0.0.2", ok=False)
        waits.append(wait_for(limiter, "ops", "10.0.0.2"))
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_counts_are_forgotten_after_the_window_and_cleared_by_success() -> None:
    clock = Clock()
    limiter = throttle(clock)
    for _ in range(2):
        attempt(limiter, "ops", "10.0.0.2", ok=False)
    attempt(limiter, "ops", "10.0.0.2", ok=True)
    for _ in range(2):  # the success started the count over
        attempt(limiter, "ops", "10.0.0.2", ok=False)
    clock.now += 60.0
    for _ in range(2):  # so did a quiet window
        attempt(limiter, "ops", "10.0.0.2", ok=False)
    attempt(limiter, "ops", "10.0.0.2", ok=False)
    assert wait_for(limiter, "ops", "10.0.0.2") == 1.0
    # The window runs from the end of the wait: one more failure then doubles it.
    clock.now += 1.0 + 59.0
    attempt(limiter, "ops", "10.0.0.2", ok=False)
    assert wait_for(limiter, "ops", "10.0.0.2") == 2.0


def test_one_address_trying_many_users_is_throttled() -> None:
    clock = Clock()
    limiter = throttle(clock, address_max_failures=4)
    for user in ("a", "b", "c", "d"):
        attempt(limiter, user, "10.0.0.2", ok=False)
    with pytest.raises(LoginThrottled, match="from this address: try again in 1 s") as refused:
        limiter.admit("ops", "10.0.0.2")
    assert refused.value.retry_after_s == 1
    attempt(limiter, "ops", "10.0.0.3", ok=True)
    # A correct password from the spraying address does not reset its count.
    clock.now += 1.0
    attempt(limiter, "ops", "10.0.0.2", ok=True)
    attempt(limiter, "e", "10.0.0.2", ok=False)
    assert wait_for(limiter, "f", "10.0.0.2") == 2.0


def test_parallel_attempts_cannot_slip_past_the_limit() -> None:
    clock = Clock()
    limiter = throttle(clock)
    attempt(limiter, "ops", "10.0.0.2", ok=False)
    held = [limiter.admit("ops", "10.0.0.2") for _ in range(2)]  # two failures remain
    wait_for(limiter, "ops", "10.0.0.2")
    attempt(limiter, "qc", "10.0.0.2", ok=True)  # other keys are not held up
    for a in held:
        with a:
            a.ok = False
    assert wait_for(limiter, "ops", "10.0.0.2") == 1.0

    threaded = throttle(Clock(), backoff_s=30.0)
    admitted: list[int] = []
    start = threading.Barrier(20)

    def guess() -> None:
        start.wait()
        try:
            a = threaded.admit("ops", "10.0.0.9")
        except LoginThrottled:
            return
        admitted.append(1)
        time.sleep(0.01)  # the password check, while the others arrive
        with a:
            a.ok = False

    workers = [threading.Thread(target=guess) for _ in range(20)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert 1 <= len(admitted) <= 3


def test_an_error_before_the_check_counts_nothing() -> None:
    limiter = throttle(Clock())
    for _ in range(5):
        with pytest.raises(RuntimeError), limiter.admit("ops", "10.0.0.2"):
            raise RuntimeError("store unavailable")
    attempt(limiter, "ops", "10.0.0.2", ok=True)


def test_addresses_are_counted_per_ipv6_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("::ffff:10.0.0.2") == "10.0.0.2"
    assert address_key("10.0.0.2") == "10.0.0.2"
    assert address_key("testclient") == "testclient"
    limiter = throttle(Clock())
    for host in ("2001:db8::1", "2001:db8::2", "2001:db8::3"):
        attempt(limiter, "ops", host, ok=False)
    wait_for(limiter, "ops", "2001:db8::ffff")
    attempt(limiter, "ops", "2001:db8:0:1::1", ok=True)


def test_trusted_proxies_setting() -> None:
    assert Settings().trusted_proxy_list() == []
    listed = Settings(trusted_proxies="127.0.0.1, 10.0.0.0/8 ::1")
    assert listed.trusted_proxy_list() == ["127.0.0.1", "10.0.0.0/8", "::1"]
    with pytest.raises(ValidationError, match=re.escape("'proxy.local', '*': list proxies by IP")):
        Settings(trusted_proxies="proxy.local, *")


# -- a real server -------------------------------------------------------------------
@contextmanager
def serving(env: dict[str, str], **settings: Any) -> Iterator[Server]:
    """``factorysync serve`` over a store with the user ``ops`` (password PASSWORD)."""
    run_cli("init", check=True)
    added = cli_with_input("user", "add", "ops", "--password-stdin", text=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    extra = {f"FACTORYSYNC_{name.upper()}": str(value) for name, value in settings.items()}
    server = start_server("serve", env={**env, **extra})
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def client_at(server: Server, address: str) -> Iterator[httpx2.Client]:
    """A client whose connections come from ``address``."""
    transport = httpx2.HTTPTransport(local_address=address)
    with httpx2.Client(base_url=server.url, transport=transport, timeout=30) as client:
        yield client


def api_login(client: httpx2.Client, password: str, **kw: Any) -> httpx2.Response:
    return client.post("/api/auth/login", json={"username": "ops", "password": password}, **kw)


def console_login(client: httpx2.Client, username: str, password: str) -> httpx2.Response:
    csrf = client.get("/login").cookies["fs_login_csrf"]
    form = {"username": username, "password": password, "csrf": csrf, "next": "/"}
    return client.post("/login", data=form)


def next_admitted(client: httpx2.Client, password: str, timeout: float = 30) -> httpx2.Response:
    """Log in again and again until the answer is not 429 (the wait is over)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        response = api_login(client, password)
        if response.status_code != 429:
            return response
        time.sleep(0.05)
    raise AssertionError(f"still refused after {timeout} s")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_wrong_passwords_from_one_address_do_not_lock_out_another(env: dict[str, str]) -> None:
    with (
        serving(env, login_max_failures=3, login_backoff_s=2, login_backoff_max_s=60) as server,
        client_at(server, "127.0.0.2") as guesser,
        client_at(server, "127.0.0.3") as owner,
    ):
        for _ in range(3):
            assert api_login(guesser, "wrong-password").status_code == 401
        refused = api_login(guesser, PASSWORD)
        assert refused.status_code == 429, refused.text
        first_wait = int(refused.headers["retry-after"])
        assert 1 <= first_wait <= 2
        assert "for 'ops' from this address" in refused.json()["detail"]
        assert api_login(owner, PASSWORD).status_code == 200
        # When the wait is over one more failure doubles it.
        assert next_admitted(guesser, "wrong-password").status_code == 401
        again = api_login(guesser, PASSWORD)
        assert again.status_code == 429 and int(again.headers["retry-after"]) > first_wait
        assert api_login(owner, PASSWORD).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"])
def test_console_login_shares_the_throttle(env: dict[str, str]) -> None:
    settings = {"login_max_failures": 10, "login_address_max_failures": 3, "login_backoff_s": 60}
    with (
        serving(env, **settings) as server,
        client_at(server, "127.0.0.4") as sprayer,
        client_at(server, "127.0.0.5") as owner,
    ):
        for user in ("admin", "ops", "qc"):
            assert console_login(sprayer, user, "Winter-2026").status_code == 401
        refused = console_login(sprayer, "ops", PASSWORD)
        assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
        over_api = api_login(sprayer, PASSWORD)
        assert over_api.status_code == 429
        assert over_api.json()["detail"].startswith("too many failed logins from this address")
        ok = console_login(owner, "ops", PASSWORD)
        assert ok.status_code == 303 and ok.cookies.get("fs_session", "").startswith("fs_")


SPOOFS = [
    {"X-Forwarded-For": "10.0.0.1"},
    {"Forwarded": "for=10.0.0.2"},
    {"X-Real-IP": "10.0.0.3"},
]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(env: dict[str, str]) -> None:
    with (
        serving(env, login_max_failures=3, login_backoff_s=60) as server,
        client_at(server, "127.0.0.1") as local,
    ):
        for headers in SPOOFS:
            assert api_login(local, "wrong-password", headers=headers).status_code == 401
        # Every request counted against 127.0.0.1, whatever address it claimed.
        for headers in [{"X-Forwarded-For": "10.0.0.9"}, {"X-Real-IP": "10.0.0.9"}, {}]:
            assert api_login(local, PASSWORD, headers=headers).status_code == 429


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_trusted_proxy_names_the_client(env: dict[str, str]) -> None:
    with (
        serving(
            env, login_max_failures=3, login_backoff_s=60, trusted_proxies="127.0.0.1"
        ) as server,
        client_at(server, "127.0.0.1") as proxy,
        client_at(server, "127.0.0.2") as direct,
    ):
        client_a = {"X-Forwarded-For": "10.0.0.1"}
        for _ in range(3):
            assert api_login(proxy, "wrong-password", headers=client_a).status_code == 401
        assert api_login(proxy, PASSWORD, headers=client_a).status_code == 429
        # Another client behind the proxy, and the proxy's own address, are not held up.
        assert (
            api_login(proxy, PASSWORD, headers={"X-Forwarded-For": "10.0.0.2"}).status_code == 200
        )
        assert api_login(proxy, PASSWORD).status_code == 200
        # Only X-Forwarded-For is read from a proxy; other headers do not name the client.
        for other in [{"X-Real-IP": "10.0.0.1"}, {"Forwarded": "for=10.0.0.1"}]:
            assert api_login(proxy, PASSWORD, headers=other).status_code == 200
        # An address that is not a listed proxy cannot claim to be 10.0.0.1, nor escape
        # its own count by claiming another address.
        assert api_login(direct, PASSWORD, headers=client_a).status_code == 200
        for i in range(3):
            spoof = {"X-Forwarded-For": f"10.0.1.{i}"}
            assert api_login(direct, "wrong-password", headers=spoof).status_code == 401
        assert (
            api_login(direct, PASSWORD, headers={"X-Forwarded-For": "10.0.2.1"}).status_code == 429
        )
