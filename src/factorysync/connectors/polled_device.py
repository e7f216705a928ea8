"""Plant-floor devices read by polling (Modbus TCP, Siemens S7): what their types share.

A PLC does not push its values: it is asked for them, on a steady cycle. This module
holds everything about that cycle that does not depend on the protocol, so that each
protocol module only says how to connect, how to read its points in as few requests as
the protocol allows, and how to decode them (a :class:`Device`):

* the config fields both types have (:class:`PolledDeviceConfig`) and the fields of one
  point, a register or a tag (:class:`PointSpec`: name, scale, offset, deadband);
* the poll loop (:class:`PollLoop`) a connector's ``subscribe(sink, stop)`` runs.

The poll loop
-------------

Every ``poll_ms`` on a fixed grid: the next poll is due one period after the previous
one was *due*, not after it finished, so the schedule does not drift by the time a read
takes. A poll that overruns (a slow device, a store that holds back the writer) skips
the slots it missed instead of polling back to back to catch up; the skipped slots are
counted and reported as a ``poll.overrun`` event (at most once a minute).

Each poll hands one row to the sink::

    {"ts": "2026-03-02T06:00:01.000+00:00", "device": "press-7", "<point>": value, ...}

``ts`` is when the poll started (UTC, milliseconds), ``device`` the config's ``device``.

Deadband: a point with a ``deadband`` is written only when its value left the band
around the value *last written* for it (``|new - last| > absolute``, or ``> percent`` %
of ``|last|``); inside the band its column is left out of the row. A row whose every
point is inside its band is not written at all (``ts`` and ``device`` alone say
nothing), so an idle machine whose points all have a deadband writes no rows; points
without a deadband are in every row. After a gap (below) every point is written again.
Deadbands suit a time series keyed by (device, ts): in a table keyed by ``device``
alone, a column left out of a row is written empty.

A device that does not answer, refuses a read (a Modbus exception code, an S7 item
error) or answers something that cannot be decoded fails the poll: the source's
``last_error`` says why (``sink.status``), the connection is closed, and the loop tries
again after 1 s, doubling up to 30 s (each wait shortened by up to a fifth at random,
so devices that failed together do not all come back in the same instant). ``stop`` is
honoured at once while waiting and within ``timeout`` while a device is being asked.
When the device answers again, the time in between is recorded as a gap
(``sink.gap``: the source's event log, and ``details.gaps`` of the next history row),
from the last poll it answered (or the first failure, when it never did) to the first
new one, and the source is reported healthy again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from factorysync.config.names import check_identifier, snake_case
from factorysync.connectors.base import FieldInfo, Sink
from factorysync.retry import RetryPolicy

log = logging.getLogger("factorysync.connectors.polled")
# Columns every row has; no point may take their names.
ROW_FIELDS = ("ts", "device")
# Reconnect waits: 1 s doubling to 30 s, each up to a fifth shorter at random.
BACKOFF = RetryPolicy(attempts=1, backoff_s=1.0, max_delay_s=30.0, jitter=(0.8, 1.0))
OVERRUN_EVENT = "poll.overrun"
OVERRUN_REPORT_S = 60.0  # at most one overrun event a minute


class DeviceError(Exception):
    """A poll failed. The message says how, for the source's ``last_error``.

    ``retriable``: the device did not answer (or not yet); False when it answered and
    refused (a Modbus exception code, an S7 item error): then the configuration is the
    likelier culprit, which ``source test`` reports as such."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


class Device(Protocol):
    """One connection to one device, as a protocol module provides it."""

    def connect(self) -> None:
        """Open the connection; DeviceError when the device cannot be reached."""

    def read(self) -> dict[str, Any]:
        """Every point's decoded value by name, in as few requests as the protocol
        allows; DeviceError when a request fails or an answer cannot be decoded."""

    def close(self) -> None:
        """Close the connection (never raises)."""


# -- configuration shared by the polled types ------------------------------------------------
class Deadband(BaseModel):
    """How far a value may move from the value last written before it is written again."""

    model_config = ConfigDict(extra="forbid")

    absolute: float | None = Field(
        default=None,
        ge=0,
        description="Written again when it differs from the last written value by more "
        "than this (in the decoded unit, after scale and offset).",
    )
    percent: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="Written again when it differs from the last written value by more "
        "than this percentage of it.",
    )

    @model_validator(mode="after")
    def _one(self) -> Deadband:
        if (self.absolute is None) == (self.percent is None):
            raise ValueError("a deadband is either {absolute: x} or {percent: y}")
        return self

    def holds(self, last: Any, value: Any) -> bool:
        """Whether ``value`` is inside the band around ``last`` (then it is not written)."""
        if last is None or value is None:
            return last is value
        diff = abs(value - last)
        if self.absolute is not None:
            return bool(diff <= self.absolute)
        assert self.percent is not None
        return bool(diff <= abs(last) * self.percent / 100)


class PointSpec(BaseModel):
    """What every point (a Modbus register, an S7 tag) has besides its address."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Column name of the value in every row: lower-case letters, digits "
        "and underscores, unique within the connection ('ts' and 'device' are taken)."
    )
    scale: float = Field(
        default=1.0,
        description="Numbers only: the decoded value is raw × scale + offset.",
    )
    offset: float = Field(
        default=0.0,
        description="Numbers only: added after scale.",
    )
    deadband: Deadband | None = Field(
        default=None,
        description="Numbers only: write the value only when it moved further than this "
        "from the value last written ({absolute: 0.5} or {percent: 1}); "
        "inside the band the row leaves its column out.",
    )

    # What a point is called in messages ("register", "tag").
    what: ClassVar[str] = "point"

    @model_validator(mode="wrap")
    @classmethod
    def _named(cls, data: Any, handler: ModelWrapValidatorHandler[PointSpec]) -> PointSpec:
        """Every problem of a point in one message that starts with its name, so that an
        engineer finds it by name rather than by its position in the list."""
        name = data.get("name") if isinstance(data, dict) else None
        try:
            point = handler(data)
            name = point.name
            point.settle()
            return point
        except ValidationError as exc:
            if not isinstance(name, str):
                raise
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err.get("loc", ()))
                text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                problems.append(f"{where}: {text}" if where else text)
            raise ValueError(f"{cls.what} {name!r}: {'; '.join(problems)}") from None
        except ValueError as exc:  # from settle()
            raise ValueError(f"{cls.what} {name!r}: {exc}") from None

    def settle(self) -> None:
        """Fill the defaults that depend on other fields and check how the fields fit
        together; a ValueError says what does not fit (the point's name is added)."""
        self.check_numeric_options()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        check_identifier(v, "name")
        if v in ROW_FIELDS:
            raise ValueError(f"name {v!r} is taken: every row has 'ts' and 'device'")
        if v.startswith("_"):
            raise ValueError(f"name {v!r}: names starting with '_' are kept for system columns")
        if snake_case(v) != v:
            raise ValueError(f"name {v!r} would be stored as {snake_case(v)!r}: use that")
        return v

    @property
    def numeric(self) -> bool:
        """Whether the point holds a number (scale, offset and deadband apply)."""
        raise NotImplementedError

    @property
    def column_kind(self) -> str:
        """The kind of the point's column (see :mod:`factorysync.kinds`)."""
        raise NotImplementedError

    def check_numeric_options(self) -> None:
        """scale, offset and deadband are for numbers: a ValueError naming the options."""
        if self.numeric:
            return
        given = [
            name
            for name, unset in (
                ("scale", self.scale == 1.0),
                ("offset", self.offset == 0.0),
                ("deadband", self.deadband is None),
            )
            if not unset
        ]
        if given:
            raise ValueError(f"{', '.join(given)}: for numbers only")

    def scaled(self, raw: Any) -> Any:
        """``raw × scale + offset``: an integer stays one when scale and offset change
        nothing; a result is rounded to 15 significant digits, so that 3 × 0.1 reads 0.3;
        a float that is not a number (NaN, infinite) becomes None."""
        if isinstance(raw, float) and not math.isfinite(raw):
            return None
        if self.scale == 1.0 and self.offset == 0.0:
            return raw
        value = float(raw) * self.scale + self.offset
        if not math.isfinite(value):
            return None
        return float(f"{value:.15g}")


def unique_names(points: Iterable[PointSpec], what: str) -> None:
    """A ValueError listing the names given to more than one point."""
    seen: set[str] = set()
    repeated: list[str] = []
    for p in points:
        if p.name in seen and p.name not in repeated:
            repeated.append(p.name)
        seen.add(p.name)
    if repeated:
        raise ValueError(f"{what} name(s) given more than once: {', '.join(repeated)}")


class PolledDeviceConfig(BaseModel):
    """``connection_config`` fields every polled device type has."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(
        title="Device host",
        examples=["10.20.1.15"],
        json_schema_extra={"group": "connection"},
        min_length=1,
        max_length=253,
        description="Address (IP or DNS name) of the device.",
    )
    poll_ms: int = Field(
        title="Poll interval (ms)",
        examples=[1000],
        default=1000,
        ge=10,
        le=3_600_000,
        description="Poll period in milliseconds, on a fixed schedule: one row per poll.",
    )
    timeout: float = Field(
        title="Timeout (s)",
        examples=[3],
        default=3.0,
        gt=0,
        le=60,
        description="Seconds to wait for the connection and for each answer.",
    )
    device: str | None = Field(
        title="Device name",
        examples=["press-01"],
        default=None,
        min_length=1,
        max_length=200,
        description="Name stamped on every row in the 'device' column (default: made "
        "of the device's address).",
    )
    batch_rows: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Rows written per transaction at most (micro-batch size).",
    )
    batch_ms: int = Field(
        default=200,
        ge=1,
        le=60_000,
        description="How long the first row of a micro-batch may wait for others (ms).",
    )


def field_infos(row: Mapping[str, Any], points: Iterable[PointSpec]) -> list[FieldInfo]:
    """The fields of a row of one poll (``ts``, ``device``, then the points in the
    configured order) with their kinds and the value read as the sample. A point may be
    empty in a row when it has a deadband (left out inside the band) or is a float (not
    a number reads as null)."""
    specs = {p.name: p for p in points}
    fields = [
        FieldInfo("ts", "datetime", [row["ts"]]),
        FieldInfo("device", "string", [row["device"]]),
    ]
    for name, spec in specs.items():
        value = row.get(name)
        kind = spec.column_kind
        nullable = spec.deadband is not None or kind == "float"
        fields.append(FieldInfo(name, kind, [] if value is None else [value], nullable=nullable))
    return fields


def plc_text(data: bytes) -> str:
    """Characters of a PLC string: UTF-8, or Latin-1 (which every byte is) where the
    bytes are not valid UTF-8, as in strings written by older controllers."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


# -- the poll loop ----------------------------------------------------------------------------
class DeadbandFilter:
    """The values of a poll that are to be written, against the ones last written."""

    def __init__(self, bands: Mapping[str, Deadband]) -> None:
        self.bands = dict(bands)
        self.last: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget what was written: the next poll writes every point."""
        self.last = {}

    def outside(self, values: Mapping[str, Any]) -> dict[str, Any]:
        written = {}
        for name, value in values.items():
            band = self.bands.get(name)
            if band is not None:
                if name in self.last and band.holds(self.last[name], value):
                    continue
                self.last[name] = value
            written[name] = value
        return written


class PollLoop:
    """Polls one device on a fixed schedule and hands a row per poll to the sink, until
    ``stop`` (see the module docstring). Counters: ``polls`` (rows handed over or
    suppressed by deadbands), ``failures`` (failed polls), ``skipped`` (slots missed by
    overrunning polls)."""

    def __init__(
        self,
        device: Device,
        *,
        name: str,
        where: str,
        period_s: float,
        deadbands: Mapping[str, Deadband],
        sink: Sink,
        source_id: str,
        backoff: RetryPolicy = BACKOFF,
    ) -> None:
        self.device = device
        self.name = name
        self.where = where
        self.period = period_s
        self.filter = DeadbandFilter(deadbands)
        self.sink = sink
        self.source_id = source_id
        self.backoff = backoff
        self.polls = self.failures = self.skipped = 0
        self._unreported_skips = 0
        self._overrun_reported = -math.inf

    def run(self, stop: threading.Event) -> None:
        connected = False
        healthy = False  # the sink was told the device answers
        attempts = 0  # failed polls in a row
        answered: datetime | None = None  # the last poll the device answered
        down: tuple[datetime, str] | None = None  # since when, and why
        due = time.monotonic()
        try:
            while not stop.wait(max(0.0, due - time.monotonic())):
                started = datetime.now(UTC)
                started = started.replace(microsecond=started.microsecond // 1000 * 1000)
                try:
                    if not connected:
                        self.device.connect()
                        connected = True
                    values = self.device.read()
                except Exception as exc:  # a device's answer never ends the loop
                    connected = False
                    self.device.close()
                    attempts += 1
                    self.failures += 1
                    reason = str(exc) if isinstance(exc, DeviceError) else repr(exc)
                    if down is None:
                        down = (answered or started, reason)
                    delay = self.backoff.delay(attempts)
                    message = f"{self.where}: {reason}; reconnecting in {delay:.0f} s"
                    log.warning("%s: %s", self.source_id, message)
                    self.sink.status(message)
                    healthy = False
                    due = time.monotonic() + delay
                    continue
                if down is not None:
                    since, reason = down
                    tries = f" ({attempts} failed poll(s))" if attempts > 1 else ""
                    self.sink.gap(since, started, f"{self.where}: {reason}{tries}")
                    self.filter.reset()
                    down = None
                if not healthy:
                    log.info("%s: reading %s", self.source_id, self.where)
                    self.sink.status(None, subscribed=self.where)
                    healthy = True
                attempts = 0
                self._hand_over(started, values)
                answered = started
                due = self._next_due(due)
        finally:
            self.device.close()

    def _hand_over(self, started: datetime, values: Mapping[str, Any]) -> None:
        self.polls += 1
        written = self.filter.outside(values)
        if values and not written:
            return  # every point inside its deadband
        row = {"ts": iso_ms(started), "device": self.name, **written}
        self.sink.put([row], raw=row)

    def _next_due(self, due: float) -> float:
        """One period after ``due``; slots already past are skipped and counted."""
        due += self.period
        late = time.monotonic() - due
        if late >= 0:
            missed = int(late // self.period) + 1
            due += missed * self.period
            self.skipped += missed
            self._unreported_skips += missed
            self._report_overrun()
        return due

    def _report_overrun(self) -> None:
        now = time.monotonic()
        if now - self._overrun_reported < OVERRUN_REPORT_S:
            return
        skipped, self._unreported_skips = self._unreported_skips, 0
        self._overrun_reported = now
        message = (
            f"{self.where}: polls took longer than poll_ms ({self.period * 1000:.0f} ms); "
            f"{skipped} poll(s) skipped"
        )
        log.warning("%s: %s", self.source_id, message)
        self.sink.event(
            OVERRUN_EVENT,
            message,
            level="warning",
            details={"skipped": skipped, "total_skipped": self.skipped},
        )
