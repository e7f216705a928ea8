"""The one record pipeline: map → validate → quarantine decision → row hash.

Batch runs (:mod:`factorysync.engine.mapping_run`) and the realtime writer
(:mod:`factorysync.realtime.writer`) hand every record they read to a
:class:`RecordPipeline`, so a record is loaded, or refused for the same reasons, whichever
way it arrives:

1. ``expand`` (``explode``/``where``): a record that cannot be expanded is refused as a
   whole (stage ``source``);
   with ``pivot``, each expanded record is a sample the :class:`~factorysync.engine.pivot.Pivot`
   places in its machine's row, and that row, as it now stands, is what is mapped: a
   sample the pivot cannot place, or whose row the mapping or the rules refuse, is
   refused (stage ``record``) and leaves the row as it was;
2. ``map`` and the rules of ``mapping_config.validate`` (:class:`Validator`), after an
   empty key column (and, for incremental reads, an empty cursor): a record that fails
   is refused with every reason (stage ``record``);
3. a refusal goes to the :class:`Quarantine` of its mapping, which applies ``on_invalid``
   (``fail`` ends the run, ``skip`` only counts, ``quarantine`` keeps the record for
   replay) and keeps at most :data:`QUARANTINE_CAP` entries per mapping and run (per
   realtime flush): beyond, refusals are only counted, so a source gone bad cannot fill
   the store with copies of one mistake;
4. a row that passes gets its content hash (:meth:`RecordPipeline.hashed`), which the
   merge compares to tell an update from a row that did not change; a mapping without a
   primary key numbers rows of equal content, so each is a row of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from factorysync.engine.mapping import Mapper, ValidationRule
from factorysync.engine.pivot import Pivot
from factorysync.engine.quarantine import reject
from factorysync.errors import MappingError
from factorysync.kinds import row_hash

Check = Callable[[Any], str | None]
QUARANTINE_CAP = 10_000  # entries per mapping and run (or realtime flush); beyond, counted


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Validator:
    """Compiled rules; ``check(row)`` returns the reasons a row is invalid (empty if valid)."""

    def __init__(self, rules: list[ValidationRule]) -> None:
        self._checks: list[tuple[str, Check]] = [(r.field, self._compile(r)) for r in rules]

    @staticmethod
    def _compile(rule: ValidationRule) -> Check:
        field, limit = rule.field, rule.value
        if rule.rule == "required":
            return lambda v: f"{field} is required" if v is None or v == "" else None
        if rule.rule in ("min", "max"):
            below = rule.rule == "min"

            def bound(v: Any) -> str | None:
                if v is None:
                    return None
                n = _number(v)
                if n is None:
                    return f"{field} = {v!r} is not a number"
                if below and n < limit:
                    return f"{field} = {v!r} is below the minimum {limit}"
                if not below and n > limit:
                    return f"{field} = {v!r} is above the maximum {limit}"
                return None

            return bound
        if rule.rule == "regex":
            pattern = re.compile(limit)
            return lambda v: (
                None
                if v is None or pattern.fullmatch(str(v))
                else f"{field} = {v!r} does not match {limit!r}"
            )
        if rule.rule == "allowed":
            allowed = list(limit)
            return lambda v: (
                None if v is None or v in allowed else f"{field} = {v!r} is not one of {allowed}"
            )
        seen: set[Any] = set()

        def unique(v: Any) -> str | None:
            if v is None:
                return None
            key = repr(v) if isinstance(v, dict | list) else v
            if key in seen:
                return f"{field} = {v!r} appears more than once in this run"
            seen.add(key)
            return None

        return unique

    def check(self, row: dict[str, Any]) -> list[str]:
        return [msg for field, fn in self._checks if (msg := fn(row.get(field))) is not None]


def row_problems(
    mapper: Mapper, validator: Validator, row: dict[str, Any], cursor_field: str | None = None
) -> list[str]:
    """Why a mapped row cannot be loaded: an empty key or cursor, then the rules."""
    found = [f"primary key column {k!r} is empty" for k in mapper.missing_key_columns(row)]
    if cursor_field and row.get(cursor_field) is None:
        found.append(f"cursor_field {cursor_field!r} is empty")
    return found + validator.check(row)


def key_of_record(mapper: Mapper, record: Any) -> tuple[Any, ...] | None:
    """The primary key of a record that could not be mapped as a whole, when its key
    columns still map (a bad value elsewhere); None when any key column does not."""
    if not mapper.key:
        return None
    if not isinstance(record, dict):
        if not mapper.columns or mapper.auto:
            return None
        record = {"value": record}
    columns = {c.name: c for c in mapper.columns}
    fields = mapper.source_fields(record) if mapper.auto else {}
    values = []
    for name in mapper.key:
        try:
            if name in columns:
                value = columns[name].compute(record)
            elif name in fields:
                value = record[fields[name]]
            else:
                return None
        except (MappingError, ValueError, TypeError, ArithmeticError):
            return None
        if value is None:
            return None
        values.append(value)
    return tuple(values)


@dataclass
class Mapped:
    """One record after map and validate: ``row`` is None when it could not be mapped;
    ``problems`` is empty when the row may be loaded."""

    record: Any
    row: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    stage: str = "record"

    @property
    def accepted(self) -> bool:
        return self.row is not None and not self.problems


class RecordPipeline:
    """One mapping's way from a source record to rows: ``run`` maps and validates,
    ``hashed`` finishes a row that passed, ``key_of`` names the row a refusal stands for.

    ``cursor_field``: an incremental read's cursor, which may not be empty. With
    ``pivot``, the pipeline holds the pivot's state for as long as it lives."""

    def __init__(
        self, mapper: Mapper, validator: Validator, *, cursor_field: str | None = None
    ) -> None:
        self.mapper = mapper
        self.validator = validator
        self.cursor_field = cursor_field
        self.occurrences: dict[str, int] = {}  # rows of equal content (no primary key)
        pivot = mapper.config.pivot
        self.pivot = Pivot(pivot, zone=mapper.zone) if pivot is not None else None

    def run(self, source_record: Any, *, expand: bool = True) -> Iterator[Mapped]:
        """The rows ``source_record`` stands for, each mapped and validated (``expand``
        false: the record is one already expanded, as a quarantined ``record`` entry)."""
        mapper = self.mapper
        try:
            expanded = mapper.expand(source_record) if expand else [source_record]
        except MappingError as exc:
            yield Mapped(source_record, None, [str(exc)], "source")
            return
        for record in expanded:
            if self.pivot is not None:
                yield self._pivoted(self.pivot, record)
                continue
            row, problems = self._mapped(record)
            yield Mapped(record, row, problems)

    def _mapped(self, record: Any) -> tuple[dict[str, Any] | None, list[str]]:
        mapper = self.mapper
        try:
            row = mapper.map(record)
            return row, row_problems(mapper, self.validator, row, self.cursor_field)
        except MappingError as exc:
            return None, [str(exc)]

    def _pivoted(self, pivot: Pivot, sample: Any) -> Mapped:
        """One sample: its machine's row (mapped from the pivoted record), or its refusal.
        A refused sample (kept as it came, so that a replay pivots it again) leaves the
        row as it was."""
        record, problems = pivot.place(sample)
        if record is None:
            return Mapped(sample, None, problems)
        row, problems = self._mapped(record)
        if row is None or problems:
            pivot.undo()
            return Mapped(sample, row, problems)
        return Mapped(record, row)

    def hashed(self, row: dict[str, Any]) -> str:
        """The content hash of a row that will be loaded; a mapping without a primary
        key also gets the row's ``_row_key`` (its hash and how many equal rows came first)."""
        digest = row_hash(row)
        if not self.mapper.key:
            row["_row_key"] = self._numbered(digest)
        return digest

    def key_of(self, mapped: Mapped) -> tuple[Any, ...] | None:
        """The target key of a refused record (None: not known), numbered like the rows
        that pass when the mapping has no primary key."""
        if mapped.row is None:
            return key_of_record(self.mapper, mapped.record)
        if self.mapper.key:
            key = self.mapper.key_of(mapped.row)
            return None if key is None or None in key else key
        return (self._numbered(row_hash(mapped.row)),)

    def _numbered(self, digest: str) -> str:
        n = self.occurrences.get(digest, 0)
        self.occurrences[digest] = n + 1
        return f"{digest}:{n}"


class Quarantine:
    """The refusals of one mapping in one run (or realtime flush), under ``on_invalid``.

    ``refuse`` raises MappingError for ``fail``; otherwise it counts the refusal and, for
    ``quarantine``, keeps an entry (up to :data:`QUARANTINE_CAP`) that ``take`` hands to
    :func:`~factorysync.engine.quarantine.store_rejects`."""

    def __init__(self, source_id: str, target_table: str, on_invalid: str) -> None:
        self.source_id = source_id
        self.target_table = target_table
        self.on_invalid = on_invalid
        self.refused = 0  # every refusal, kept or not
        self.kept = 0  # entries made (at most QUARANTINE_CAP)
        self.entries: list[dict[str, Any]] = []  # made and not yet taken

    def refuse(
        self,
        record: Any,
        reasons: list[str],
        run_id: int | None,
        *,
        stage: str = "record",
        label: str | None = None,
    ) -> int:
        """Apply ``on_invalid`` to one refused record; the index of its entry among those
        not yet taken, or -1 when none was kept. ``label`` names the record in the error
        of ``fail`` ("record 12"); without it the error is the first reason."""
        if self.on_invalid == "fail":
            if label is None:
                raise MappingError(reasons[0])
            raise MappingError(f"{label} rejected: {'; '.join(reasons)}")
        self.refused += 1
        if self.on_invalid != "quarantine" or self.kept >= QUARANTINE_CAP:
            return -1
        self.kept += 1
        self.entries.append(
            reject(self.source_id, self.target_table, record, reasons, run_id, stage=stage)
        )
        return len(self.entries) - 1

    def take(self) -> list[dict[str, Any]]:
        """The entries made since the last take (they are stored by the caller)."""
        entries, self.entries = self.entries, []
        return entries

    def reset(self) -> None:
        """Start a new flush: nothing counted, nothing kept."""
        self.refused = self.kept = 0
        self.entries = []
