"""Slowing down password guessing, without locking the right user out.

Failed logins are counted twice, each count with its own limit:

    key                           limit                           against
    (user name, client address)   ``login_max_failures``          guessing one account
    client address                ``login_address_max_failures``  spraying many accounts

Once a count reaches its limit, that key is refused for ``login_backoff_s``; every
further failure doubles the wait, up to ``login_backoff_max_s``. Refused attempts are
not checked and so do not count. A count is forgotten ``login_window_s`` after its last
failure or the end of its wait, whichever is later; a correct password clears the
(user, address) count, never the address count (a sprayer holding one valid account
must not be able to reset it).

Nothing is keyed by user name alone: a guesser elsewhere cannot lock a user out, and the
right password from another address always gets through. IPv6 clients are counted per
/64, the block one subscriber usually holds.

Attempts are admitted before the password is checked and finished after, so parallel
requests cannot all slip in before the first failure is counted: near a limit, only as
many attempts run at once as failures remain before it.

The counts live in memory, per process (each ``serve --workers`` process counts on its
own). The client address is the connection's, or the one a trusted proxy forwarded (see
the ``trusted_proxies`` setting).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factorysync.settings import Settings

Key = tuple[str, ...]


class LoginThrottled(Exception):
    """Too many failed logins: wait ``retry_after`` seconds (answered 429)."""

    def __init__(self, retry_after: float, username: str, by_address: bool) -> None:
        self.retry_after = retry_after
        whose = "from this address" if by_address else f"for {username!r} from this address"
        super().__init__(f"too many failed logins {whose}: try again in {self.retry_after_s} s")

    @property
    def retry_after_s(self) -> int:
        """Whole seconds for the ``Retry-After`` header (never 0 while refused)."""
        return max(1, math.ceil(self.retry_after))


@dataclass
class _Count:
    failures: int = 0
    until: float = 0.0  # refused before this time
    last: float = 0.0  # last failure
    pending: int = 0  # admitted attempts not finished yet


def address_key(host: str) -> str:
    """The address a client is counted under: IPv6 by its /64, anything else as is."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginAttempt:
    """One admitted login: set ``ok`` once the password is checked, then leave the block.

    Leaving without setting ``ok`` (an error before the check) counts nothing.
    """

    def __init__(self, throttle: LoginThrottle, keys: tuple[Key, Key]) -> None:
        self._throttle = throttle
        self._keys = keys
        self.ok: bool | None = None

    def __enter__(self) -> LoginAttempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._throttle._finish(self._keys, self.ok)


class LoginThrottle:
    """Failed logins per (user name, address) and per address, with doubling waits."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        *,
        address_max_failures: int,
        backoff_s: float,
        backoff_max_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.address_max_failures = address_max_failures
        self.window_s = window_s
        self.backoff_s = backoff_s
        self.backoff_max_s = max(backoff_max_s, backoff_s)
        self.clock = clock
        self.max_keys = max_keys
        self._counts: OrderedDict[Key, _Count] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        return cls(
            settings.login_max_failures,
            settings.login_window_s,
            address_max_failures=settings.login_address_max_failures,
            backoff_s=settings.login_backoff_s,
            backoff_max_s=settings.login_backoff_max_s,
        )

    def _limit(self, key: Key) -> int:
        return self.max_failures if key[0] == "user" else self.address_max_failures

    def _current(self, key: Key, now: float) -> _Count | None:
        """The key's count, dropped when it has been quiet for the window."""
        count = self._counts.get(key)
        if count is None or count.pending:
            return count
        if now >= max(count.last, count.until) + self.window_s:
            del self._counts[key]
            return None
        return count

    def _wait(self, key: Key, now: float) -> float:
        count = self._current(key, now)
        if count is None:
            return 0.0
        if now < count.until:
            return count.until - now
        if count.pending and count.failures + count.pending >= self._limit(key):
            # As many attempts are being checked as failures remain before the limit.
            return min(1.0, self.backoff_s)
        return 0.0

    def admit(self, username: str, address: str) -> LoginAttempt:
        """Let one login attempt go ahead, or raise LoginThrottled with the wait."""
        where = address_key(address)
        pair: Key = ("user", username.lower(), where)
        place: Key = ("address", where)
        now = self.clock()
        with self._lock:
            by_pair = self._wait(pair, now)
            by_place = self._wait(place, now)
            if by_pair or by_place:
                raise LoginThrottled(max(by_pair, by_place), username, by_place > by_pair)
            for key in (pair, place):
                self._counts.setdefault(key, _Count()).pending += 1
                self._counts.move_to_end(key)
            self._evict()
        return LoginAttempt(self, (pair, place))

    def _finish(self, keys: tuple[Key, Key], ok: bool | None) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                count = self._counts.get(key)
                if count is None:  # evicted meanwhile
                    continue
                count.pending = max(0, count.pending - 1)
                if ok is False:
                    self._failed(key, count, now)
                elif ok and key is keys[0]:
                    count.failures, count.until = 0, 0.0
                if not count.failures and not count.pending:
                    del self._counts[key]

    def _failed(self, key: Key, count: _Count, now: float) -> None:
        count.failures += 1
        count.last = now
        over = count.failures - self._limit(key)
        if over >= 0:
            wait = min(self.backoff_max_s, self.backoff_s * 2 ** min(over, 60))
            count.until = max(count.until, now + wait)

    def _evict(self) -> None:
        """Keep memory bounded: the least recently used quiet keys go first."""
        excess = len(self._counts) - self.max_keys
        quiet: list[Key] = []
        for key, count in self._counts.items():
            if len(quiet) >= excess:
                break
            if not count.pending:
                quiet.append(key)
        for key in quiet:
            del self._counts[key]
