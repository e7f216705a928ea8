"""Waiting for a condition in tests, instead of sleeping for a fixed time.

A fixed sleep encodes a guess about the machine's speed: too short on a loaded CI
runner (the test fails), too long everywhere else (the suite crawls). These helpers
poll for the condition itself under a generous deadline, so a test takes as long as the
system needs and no longer, and a real failure says what was last seen.

``PATIENCE`` is the default deadline: long enough for a machine running two test
suites at once on two cores, and it costs nothing when the condition holds early.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

PATIENCE = 120.0  # seconds
POLL_S = 0.05


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float = PATIENCE,
    what: str = "the condition",
    state: Callable[[], Any] | None = None,
    poll_s: float = POLL_S,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    After ``timeout`` seconds the test fails with ``what`` and the last value seen (and
    ``state()``, when given, to show more of the system than the check returns).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = f"; last check gave {value!r}"
            if state is not None:
                seen += f"; state: {state()!r}"
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{seen}")
        time.sleep(poll_s)


def wait_for_value(
    observe: Callable[[], T],
    expected: Any,
    *,
    timeout: float = PATIENCE,
    what: str | None = None,
    poll_s: float = POLL_S,
) -> T:
    """Call ``observe`` until it returns ``expected``; on timeout the message shows the
    last value observed next to the one expected."""
    last: list[T] = []

    def check() -> bool:
        last[:] = [observe()]
        return bool(last[0] == expected)

    try:
        wait_until(check, timeout=timeout, what=what or f"{expected!r}", poll_s=poll_s)
    except AssertionError:
        raise AssertionError(
            f"timed out after {timeout:g} s waiting for {what or 'the value'}: "
            f"expected {expected!r}, last observed {last[0]!r}"
        ) from None
    return last[0]
