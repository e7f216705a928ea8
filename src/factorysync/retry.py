"""One retry policy for transient failures, shared by every layer that retries.

A :class:`RetryPolicy` says how many attempts a piece of work gets, how long to wait
before each next one (exponential back-off, capped, with jitter) and which failures are
worth another attempt. Two layers retry today: the HTTP client of API sources (each
request) and the runner (each connection of a run). Their policies compose instead of
multiplying: a layer that gave up after spending its own attempts raises
:class:`RetriesSpent`, and no outer policy counts that failure as transient. So

    an API source whose server always fails transiently is asked ``1 + retries`` times
    in a run (4 with the defaults), not ``retry_attempts × (1 + retries)`` (12);
    any other transient failure (a refused database, a locked store) gets the runner's
    ``retry_attempts`` (3 with the defaults).

The wrapping layers still fail over to backup connections: a spent failure ends the
attempts on its connection, not the run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from factorysync.errors import ConnectorRetriable

if TYPE_CHECKING:
    from factorysync.settings import Settings

MAX_DELAY_S = 30.0


class RetriesSpent(ConnectorRetriable):
    """A transient failure whose retries were already spent by the layer that raised it:
    it stays retriable by nature (a later run may succeed), but no outer layer tries again."""


def _transient_default() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import OperationalError

    return (ConnectorRetriable, OperationalError)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (the first one included); before attempt ``n + 1`` it waits
    ``backoff_s × 2^(n-1)``, at most ``max_delay_s``, times a random factor in ``jitter``
    (so many sources failing at once do not come back at once)."""

    attempts: int
    backoff_s: float = 1.0
    max_delay_s: float = MAX_DELAY_S
    jitter: tuple[float, float] = (0.5, 1.0)
    transient: tuple[type[BaseException], ...] = field(default_factory=_transient_default)
    rand: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The runner's policy: ``retry_attempts``, ``retry_backoff_s``, ``retry_max_delay_s``."""
        return cls(
            attempts=settings.retry_attempts,
            backoff_s=settings.retry_backoff_s,
            max_delay_s=settings.retry_max_delay_s,
        )

    def retriable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another attempt under this policy."""
        return isinstance(exc, self.transient) and not isinstance(exc, RetriesSpent)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base = min(self.backoff_s * 2 ** (attempt - 1), self.max_delay_s)
        return float(base * self.rand(*self.jitter))

    def gives_up(self, attempt: int) -> bool:
        """Whether failed attempt ``attempt`` (1-based) was the last one."""
        return attempt >= self.attempts


@dataclass
class Reconnects:
    """The waits between the connections of a long-lived subscription (MQTT, OPC UA).

    While connections keep failing, the wait doubles from ``first_s`` up to ``max_s``; a
    connection that stayed up for ``healthy_s`` or longer was not a failing retry, so the
    wait after it starts again from ``first_s`` (a broker restarted once a day is back
    within a second, not after the half minute an outage of last week left behind)."""

    first_s: float = 1.0
    max_s: float = MAX_DELAY_S
    healthy_s: float = MAX_DELAY_S
    _next_s: float = field(default=0.0, init=False, repr=False)

    def after(self, lasted_s: float) -> float:
        """The wait before the next connection, given how long the last one lasted."""
        if self._next_s == 0.0 or lasted_s >= self.healthy_s:
            self._next_s = self.first_s
        wait = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return wait
