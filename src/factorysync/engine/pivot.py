"""Machine-shaped rows from narrow samples: ``mapping_config.pivot``.

OPC UA, Sparkplug B and MQTT topic levels deliver one value of one signal per record
(``{"node_id": "ns=2;s=Press1.Force", "field": "force", "value": 812.5,
"source_timestamp": ...}``). A pivot makes one row per machine of them: the key columns,
``ts`` (with ``ts_from``) and one column per signal name. The record pipeline
(:mod:`factorysync.engine.pipeline`) pivots each sample after ``explode`` and ``where``
and before the fields are mapped and validated, so the rest of the pipeline sees
ordinary wide rows.

* ``latest``: one row per key, with the latest value of every name the key has had
  and, with ``ts_from``, the latest sample time in ``ts``. A sample older than the value
  held for its name changes nothing (equal times: the later arrival wins); without
  ``ts_from``, the order of arrival decides.
* ``wide_time_series``: one row per key and sample time, with the names that have a
  sample at that time.

**Rows are whole.** The target merges rows by key and empties the columns a row does
not carry, while a flush of the realtime writer (or a batch of a run) may hold only some
of a machine's signals. So the pivot keeps every row it has made (its state) and answers
each sample with the row of its key as it now stands; the last row of a key in a flush or
run holds everything the earlier ones did, and the merge keeps the last.

The state lives as long as the pipeline: the realtime writer's stream, or one batch run.
It begins empty (after a restart a row holds the signals that arrived since) and keeps at
most ``state_rows`` rows, the least recently changed leaving first. A sample for a time
row that has left (a time at or before the latest one that left for its key) is refused
rather than let it make a row of its own names only.

Names become column names by snake_case, as auto mode names fields (``Motor/Speed`` →
``motor_speed``). A sample is refused, with the reason, when its key, name or time is
empty or unreadable, when its name makes the column of another name, a key column or
``ts``, or when it would be name number :data:`MAX_COLUMNS` + 1.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from factorysync.config.names import MISSING
from factorysync.engine.mapping import (
    PIVOT_TS,
    FieldSpec,
    PivotConfig,
    caster,
    field_reader,
    snake_case,
)
from factorysync.errors import MappingError

MAX_COLUMNS = 1_000  # signal names (columns) of one pivot


@dataclass
class _Row:
    """One row of the state: its key values, time and values by column."""

    key: tuple[Any, ...]
    ts: datetime | None = None  # latest: the newest sample's time; wide: the row's time
    values: dict[str, Any] = field(default_factory=dict)
    stamps: dict[str, datetime] = field(default_factory=dict)  # latest: time per value


@dataclass
class _Change:
    """What one sample changed, so that a row the mapping refuses can be taken back."""

    slot: tuple[Any, ...]
    column: str
    created: bool
    value: Any
    stamp: datetime | None
    ts: datetime | None


def _described(value: Any) -> str:
    return f"a {type(value).__name__}"


class Pivot:
    """The state of one mapping's pivot: ``place`` a sample, get its key's row."""

    def __init__(self, config: PivotConfig, *, zone: str = "UTC") -> None:
        self.config = config
        self.wide = config.mode == "wide_time_series"
        self._key: list[tuple[str, Callable[[Any], Any]]] = [
            (
                column,
                field_reader(column, config.key_from[column], zone)
                if column in config.key_from
                else _field(column),
            )
            for column in config.key
        ]
        self._name = field_reader("pivot.name_from", config.name_from, zone)
        self._value = field_reader("pivot.value_from", config.value_from, zone)
        self._ts = (
            field_reader("pivot.ts_from", config.ts_from, zone)
            if config.ts_from is not None
            else None
        )
        # Times are then read as a field of type datetime is: ISO text, a date-time or
        # epoch seconds; without an offset, in the connection's time zone.
        self._read_ts = caster(FieldSpec(type="datetime"), zone)
        self._reserved = set(config.key) | ({PIVOT_TS} if self._ts is not None else set())
        self._columns: dict[str, str] = {}  # name -> column
        self._names: dict[str, str] = {}  # column -> name
        self._rows: OrderedDict[tuple[Any, ...], _Row] = OrderedDict()
        # wide_time_series: per key, the latest time of a row that left the state.
        self._gone: OrderedDict[tuple[Any, ...], datetime] = OrderedDict()
        self._last: _Change | None = None

    def __len__(self) -> int:
        return len(self._rows)

    # -- samples -------------------------------------------------------------------------
    def place(self, sample: Any) -> tuple[dict[str, Any] | None, list[str]]:
        """Take one sample into the state: (the row of its key as it now stands, []), or
        (None, every reason the sample cannot be placed)."""
        self._last = None
        if not isinstance(sample, dict):
            return None, [f"a pivot sample is an object, not {_described(sample)}"]
        problems: list[str] = []
        key = self._read_key(sample, problems)
        named = self._read_name(sample, problems)
        ts = self._read_time(sample, problems)
        try:
            value = self._value(sample)
        except MappingError as exc:
            problems.append(str(exc))
            value = None
        if problems or named is None:
            return None, problems
        return self._apply(tuple(key), named, value, ts)

    def undo(self) -> None:
        """Take back what the last placed sample changed (its row was refused)."""
        change, self._last = self._last, None
        if change is None:
            return
        row = self._rows.get(change.slot)
        if row is None:
            return
        if change.created:
            del self._rows[change.slot]
            return
        if change.value is MISSING:
            row.values.pop(change.column, None)
        else:
            row.values[change.column] = change.value
        if change.stamp is None:
            row.stamps.pop(change.column, None)
        else:
            row.stamps[change.column] = change.stamp
        row.ts = change.ts

    def _read_key(self, sample: dict[str, Any], problems: list[str]) -> list[Any]:
        key = []
        for column, read in self._key:
            try:
                value = read(sample)
            except MappingError as exc:
                problems.append(f"pivot key {exc}")
                continue
            if value is None:
                problems.append(f"pivot key column {column!r} is empty")
            elif isinstance(value, dict | list):
                problems.append(
                    f"pivot key column {column!r} holds {_described(value)}, not one value"
                )
            else:
                key.append(value)
        return key

    def _read_name(self, sample: dict[str, Any], problems: list[str]) -> tuple[str, str] | None:
        """(signal name, its column), or None with the reason in ``problems``."""
        where = f"pivot.name_from {_shown(self.config.name_from)}"
        try:
            name = self._name(sample)
        except MappingError as exc:
            problems.append(str(exc))
            return None
        if name is None or name == "":
            problems.append(f"{where} is empty")
            return None
        if isinstance(name, bool) or not isinstance(name, str | int):
            problems.append(f"{where} holds {_described(name)}, not a signal name")
            return None
        text = str(name)
        column = self._columns.get(text)
        if column is not None:
            return text, column
        # snake_case cuts at 63 characters: a cut may end in "_", which auto mode strips.
        column = snake_case(text).rstrip("_")
        if column in self._reserved:
            what = "the timestamp column" if column == PIVOT_TS else "a pivot.key column"
            problems.append(f"signal {text!r} would fill column {column!r}, which is {what}")
        elif column in self._names:
            problems.append(
                f"signals {self._names[column]!r} and {text!r} both make column {column!r}"
            )
        elif len(self._names) >= MAX_COLUMNS:
            problems.append(
                f"signal {text!r} would be column number {MAX_COLUMNS + 1}: a pivot makes at "
                f"most {MAX_COLUMNS} columns of signal names"
            )
        else:
            return text, column
        return None

    def _read_time(self, sample: dict[str, Any], problems: list[str]) -> datetime | None:
        if self._ts is None:
            return None
        where = f"pivot.ts_from {_shown(self.config.ts_from)}"
        try:
            raw = self._ts(sample)
        except MappingError as exc:
            problems.append(str(exc))
            return None
        if raw is None or raw == "":
            problems.append(f"{where} is empty")
            return None
        try:
            ts = self._read_ts(raw)
        except (ValueError, TypeError, OverflowError, OSError) as exc:
            problems.append(f"{where}: cannot read {raw!r} as a date-time: {exc}")
            return None
        assert isinstance(ts, datetime)
        return ts

    # -- the state -----------------------------------------------------------------------
    def _apply(
        self, key: tuple[Any, ...], named: tuple[str, str], value: Any, ts: datetime | None
    ) -> tuple[dict[str, Any] | None, list[str]]:
        name, column = named
        slot = (*key, ts) if self.wide else key
        row = self._rows.get(slot)
        created = row is None
        if row is None:
            gone = self._gone.get(key) if self.wide else None
            if gone is not None and ts is not None and ts <= gone:
                return None, [
                    f"the row of {self._key_text(key)} at {ts.isoformat()} has left the "
                    f"pivot's memory (pivot.state_rows {self.config.state_rows}): a sample "
                    "this late would make a row of its own signals only"
                ]
            self._make_room()
            row = self._rows[slot] = _Row(key, ts if self.wide else None)
        else:
            self._rows.move_to_end(slot)
        if name not in self._columns:  # first seen: the column is this name's from now on
            self._columns[name] = column
            self._names[column] = name
        stamp = row.stamps.get(column)
        if not self.wide and ts is not None and stamp is not None and ts < stamp:
            return self._record(row), []  # older than the value held: nothing changes
        self._last = _Change(slot, column, created, row.values.get(column, MISSING), stamp, row.ts)
        row.values[column] = value
        if not self.wide and ts is not None:
            row.stamps[column] = ts
            if row.ts is None or ts > row.ts:
                row.ts = ts
        return self._record(row), []

    def _make_room(self) -> None:
        while len(self._rows) >= self.config.state_rows:
            _, row = self._rows.popitem(last=False)
            if self.wide and row.ts is not None:
                gone = self._gone.get(row.key)
                self._gone[row.key] = row.ts if gone is None or row.ts > gone else gone
                self._gone.move_to_end(row.key)
                if len(self._gone) > self.config.state_rows:
                    self._gone.popitem(last=False)

    def _record(self, row: _Row) -> dict[str, Any]:
        record = dict(zip(self.config.key, row.key, strict=True))
        if self._ts is not None:
            record[PIVOT_TS] = row.ts
        record.update(row.values)
        return record

    def _key_text(self, key: tuple[Any, ...]) -> str:
        return ", ".join(f"{c} {v!r}" for c, v in zip(self.config.key, key, strict=True))


def _shown(ref: str | FieldSpec | None) -> str:
    """The source path a pivot setting reads, for messages."""
    return repr(ref.from_ if isinstance(ref, FieldSpec) else ref)


def _field(name: str) -> Callable[[Any], Any]:
    """The sample's top-level field ``name`` (missing: None)."""

    def read(sample: Any) -> Any:
        return sample.get(name) if isinstance(sample, dict) else None

    return read
