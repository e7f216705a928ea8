"""Mapping of source records into target rows: ``mapping_config`` model and the mapper.

Two modes:

* **auto** (no ``fields``): every top-level field of a record becomes a column named by the
  snake_case of the field; nested values are kept as JSON; types are inferred by the writer.
* **explicit** (``fields``): each target column names a source path (dot notation, list
  indexes ``items.0.qty`` or ``items[0].qty``) or a spec with a type cast, format, time
  zone, default, constant, value map, trim/case and a safe arithmetic expression.
  ``include_unmapped: true`` adds the remaining top-level fields as in auto mode.

With ``pivot``, the records a mapping maps are the machine-shaped rows the record pipeline
made of narrow samples (:mod:`factorysync.engine.pivot`); the primary key is the pivot's.

The declaration itself (:class:`MappingConfig` and the path and name helpers) lives in
:mod:`factorysync.config.mapping`; its names are reached from here as well.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from factorysync.config.mapping import (
    INT64_MAX,
    INT64_MIN,
    PIVOT_TS,
    SYSTEM_COLUMNS,
    FieldRef,
    FieldSpec,
    FieldType,
    MappingConfig,
    PivotConfig,
    ValidationRule,
    records_at,
)
from factorysync.config.names import (
    IDENTIFIER,
    MAX_SOURCE_PATH,
    MISSING,
    check_identifier,
    check_source_name,
    check_source_path,
    check_zone,
    get_path,
    parse_path,
    snake_case,
)
from factorysync.errors import MappingError

__all__ = [
    "IDENTIFIER",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_SOURCE_PATH",
    "PIVOT_TS",
    "SYSTEM_COLUMNS",
    "FieldRef",
    "FieldSpec",
    "FieldType",
    "Mapper",
    "MappingConfig",
    "PivotConfig",
    "ValidationRule",
    "caster",
    "check_identifier",
    "check_source_name",
    "check_source_path",
    "check_zone",
    "field_reader",
    "get_path",
    "new_field",
    "parse_path",
    "records_at",
    "snake_case",
]

_TRUE = {"true", "1", "yes", "y", "t", "on", "ya"}
_FALSE = {"false", "0", "no", "n", "f", "off", "tidak"}


def _parse_datetime(value: Any, fmt: str | None, zone: str | None) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        text = value.strip()
        dt = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    else:
        raise ValueError("not a date-time")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(zone) if zone else UTC)
    return dt


def _parse_date(value: Any, fmt: str | None) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        return datetime.strptime(text, fmt).date() if fmt else date.fromisoformat(text[:10])
    raise ValueError("not a date")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("not a boolean")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    raise ValueError("not an integer")


def _parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise ValueError("not a number")


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("not a decimal number") from None


def caster(spec: FieldSpec, zone: str = "UTC") -> Callable[[Any], Any]:
    """The function converting a raw value to the spec's type (None stays None).

    A timestamp without an offset is in the spec's ``timezone``, else in ``zone`` (the
    connection's ``timezone``, UTC unless it says otherwise)."""
    kind = spec.type
    if kind is None:
        return lambda v: v
    table: dict[str, Callable[[Any], Any]] = {
        "integer": _parse_int,
        "float": _parse_float,
        "decimal": _parse_decimal,
        "boolean": _parse_bool,
        "string": lambda v: v if isinstance(v, str) else str(v),
        "date": lambda v: _parse_date(v, spec.format),
        "datetime": lambda v: _parse_datetime(v, spec.format, spec.timezone or zone),
        "json": lambda v: v,
    }
    return table[kind]


class _Column:
    __slots__ = ("cast", "expr", "name", "path", "spec")

    def __init__(self, name: str, spec: FieldSpec, zone: str = "UTC") -> None:
        from factorysync.expressions import compile_expression

        self.name = name
        self.spec = spec
        self.path = parse_path(spec.from_ if spec.from_ is not None else name)
        self.cast = caster(spec, zone)
        self.expr = compile_expression(spec.expr, name, storable=True) if spec.expr else None

    def compute(self, record: Any) -> Any:
        spec = self.spec
        if spec.value is not None:
            return spec.value
        value = get_path(record, self.path)
        if value is MISSING or value is None or (value == "" and spec.type not in (None, "string")):
            value = None
        if value is not None and isinstance(value, str):
            if spec.trim:
                value = value.strip()
            if spec.case:
                value = getattr(value, spec.case)()
        if value is not None and spec.map is not None:
            value = spec.map.get(str(value), value)
        if value is not None:
            try:
                value = self.cast(value)
            except (ValueError, TypeError, OverflowError) as exc:
                raise MappingError(
                    f"{self.name}: cannot convert {value!r} to {spec.type}: {exc}"
                ) from None
            if self.expr is not None:
                value = self.expr(value, record)
        if value is None:
            value = spec.default
        return value


def field_reader(name: str, ref: FieldRef, zone: str = "UTC") -> Callable[[Any], Any]:
    """How one value is computed from a record, as a column of ``fields`` is (a source
    path, or a spec with its cast, map, expression …); raises MappingError naming
    ``name`` on a bad value."""
    spec = FieldSpec.model_validate({"from": ref}) if isinstance(ref, str) else ref
    return _Column(name, spec, zone).compute


class Mapper:
    """Turns source records into target rows for one mapping.

    ``zone`` is the connection's ``timezone``: timestamps without an offset are read in it
    (a field's own ``timezone`` wins).
    """

    def __init__(self, config: MappingConfig, *, zone: str = "UTC") -> None:
        self.config = config
        self.zone = zone
        self.columns = [
            _Column(
                name,
                FieldSpec.model_validate({"from": spec}) if isinstance(spec, str) else spec,
                zone,
            )
            for name, spec in (config.fields or {}).items()
        ]
        # schema_contract freeze: the columns auto mode may fill (None: any).
        self.frozen: frozenset[str] | None = None
        self._explicit_sources = {
            str(c.path[0]) for c in self.columns if c.spec.value is None and c.path
        }
        self.auto = config.fields is None or config.include_unmapped
        self.key = config.key_columns
        self._where = None
        if config.where:
            from factorysync.expressions import compile_expression

            self._where = compile_expression(config.where, "where")
        self._explode = parse_path(config.explode) if config.explode else None

    def expand(self, record: Any) -> list[Any]:
        """The records one source record stands for, after ``explode`` and ``where``."""
        records = [record]
        if self._explode is not None and isinstance(record, dict):
            items = get_path(record, self._explode)
            if items is MISSING or items is None:
                items = []
            if not isinstance(items, list):
                raise MappingError(
                    f"explode: {self.config.explode!r} holds a {type(items).__name__}, not a list"
                )
            parent = {k: v for k, v in record.items() if k != self._explode[0]}
            name = self.config.explode_as or "value"
            records = [
                {**parent, **item} if isinstance(item, dict) else {**parent, name: item}
                for item in items
            ]
        if self._where is not None:
            records = [r for r in records if self._where(None, r)]
        return records

    def declared_types(self) -> dict[str, str]:
        """Target columns whose type the mapping fixes (others are inferred from values)."""
        return {c.name: c.spec.type for c in self.columns if c.spec.type}

    def freeze(self, columns: Iterable[str] | None) -> None:
        """Under ``schema_contract: freeze``, the target table's columns: a record with a
        field auto mode would add as a new column is then refused (quarantined); such a
        field that is empty is left out instead. None (no table yet, or ``evolve``) lets
        every field through. Fields the mapping names are its own choice and always pass."""
        self.frozen = None if columns is None else frozenset(columns)

    def map(self, record: Any) -> dict[str, Any]:
        """Map one record; raises MappingError naming the column on a bad value."""
        if not isinstance(record, dict):
            if self.columns and not self.auto:
                record = {"value": record}
            else:
                raise MappingError(f"record is a {type(record).__name__}, not an object")
        row: dict[str, Any] = {}
        for column in self.columns:
            value = column.compute(record)
            if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
                value = self._wide_integer(column, value)
            row[column.name] = value
        if self.auto:
            for field, value in record.items():
                if field in self._explicit_sources and not self.config.auto:
                    continue
                name = snake_case(field)
                if name in SYSTEM_COLUMNS:
                    name = name.lstrip("_") + "_src"
                if name in row:
                    if self.config.auto:
                        raise MappingError(
                            f"fields {field!r} and another field both map to column {name!r}; "
                            "name the columns in mapping_config.fields"
                        )
                    continue
                if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
                    raise MappingError(_too_wide(name, value))
                if self.frozen is not None and name not in self.frozen:
                    if value is None:
                        continue  # an empty new field carries nothing to refuse
                    raise MappingError(new_field(field, name))
                row[name] = value
        return row

    @staticmethod
    def _wide_integer(column: _Column, value: int) -> Any:
        """An integer beyond 64 bits, as the column's declared type holds it; a record
        error when that is an integer column (or none: the store would make one)."""
        kind = column.spec.type
        try:
            if kind == "decimal":
                return Decimal(value)
            if kind == "float":
                return float(value)
            if kind == "string":
                return str(value)
        except (OverflowError, ValueError) as exc:
            raise MappingError(f"{column.name}: cannot convert to {kind}: {exc}") from None
        raise MappingError(_too_wide(column.name, value))

    def source_fields(self, record: dict[str, Any]) -> dict[str, str]:
        """Target column -> top-level source field, for the columns auto mode adds."""
        found = {}
        for field in record:
            if field in self._explicit_sources and not self.config.auto:
                continue
            name = snake_case(field)
            found[name.lstrip("_") + "_src" if name in SYSTEM_COLUMNS else name] = field
        return found

    def key_of(self, row: dict[str, Any]) -> tuple[Any, ...] | None:
        return tuple(row.get(k) for k in self.key) if self.key else None

    def missing_key_columns(self, row: dict[str, Any]) -> list[str]:
        return [k for k in self.key if row.get(k) is None]


def new_field(field: str, column: str) -> str:
    """Why a record with a field the frozen target table has no column for is refused."""
    return (
        f"field {field!r} is new: the target table has no column {column!r} and "
        "mapping_config.schema_contract is freeze (name the field in mapping_config.fields "
        "or set schema_contract: evolve to add the column)"
    )


def _too_wide(column: str, value: int) -> str:
    shown = f"of {value.bit_length()} bits" if value.bit_length() > 200 else repr(value)
    return (
        f"{column}: the integer {shown} does not fit a 64-bit integer column "
        f"({INT64_MIN} to {INT64_MAX})"
    )
