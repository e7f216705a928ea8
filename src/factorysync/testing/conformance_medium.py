"""What the conformance suite (:mod:`factorysync.testing.conformance`) is given and
what it reports: the :class:`Medium` a connection type's rows live in, the
:class:`Sample` of rows written to it, the names of the steps, and
:class:`ConformanceError`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SETUP = "setup"  # writing the first rows, building a connector
BAD_CONFIG = "bad config"
CHECK = "check"
DISCOVER = "discover"
FULL_READ = "full read"
COLUMNAR_READ = "columnar read"
INCREMENTAL = "incremental resume"
READ_REFUSED = "read refused"
SUBSCRIBE = "subscribe"
PUSH = "push"

Row = dict[str, Any]


class ConformanceError(AssertionError):
    """A connection type does not do what the suite checks: ``step`` says which check."""

    def __init__(self, connection_type: str, step: str, problem: str) -> None:
        super().__init__(f"connection type {connection_type!r}, {step}: {problem}")
        self.connection_type = connection_type
        self.step = step
        self.problem = problem


def production_row(n: int) -> Row:
    """Row ``n`` of the default sample: a production count of one of four machines. The
    cursor ``lot`` grows by one every second row, so neighbours share a cursor value."""
    return {"id": n, "machine": f"M-{n % 4:02d}", "qty": n * 3, "lot": n // 2}


@dataclass(frozen=True)
class Sample:
    """The rows the suite writes: ``row(n)`` for n = first, first + 1, …; ``size`` of them
    before the checks, ``more`` at a time when a step needs new ones. ``key`` tells rows
    apart; ``cursor`` never decreases with n."""

    row: Callable[[int], Row] = production_row
    first: int = 1
    size: int = 40
    more: int = 5
    key: str = "id"
    cursor: str = "lot"


@dataclass
class Medium:
    """Where a connection type's rows live, as the caller drives it.

    ``write(rows)`` adds rows to the medium (a file rewritten with them, rows inserted,
    messages published, records posted). ``config`` and ``auth`` reach the medium; they
    are read whenever a connector is built, so ``write`` may change them.
    ``resumes``: reads narrow by state or cursor (see the module docstring).
    ``row_of(record)``: the written row a record of the type carries, when its records
    are not the rows themselves (an OPC UA value change); ``fields`` is then what
    ``discover()`` names, as field name → kind (default: the rows' fields and kinds).
    ``received()``: the rows that reached their destination so far (pushed types)."""

    connection_type: str
    config: dict[str, Any]
    write: Callable[[list[Row]], None]
    auth: dict[str, Any] = field(default_factory=dict)
    resumes: bool = True
    row_of: Callable[[Any], Row] | None = None
    fields: dict[str, str | None] | None = None
    received: Callable[[], list[Row]] | None = None
