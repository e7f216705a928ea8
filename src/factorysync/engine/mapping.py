"""Mapping of source records into target rows: ``mapping_config`` model and the mapper.

Two modes:

* **auto** (no ``fields``): every top-level field of a record becomes a column named by the
  snake_case of the field; nested values are kept as JSON; types are inferred by the writer.
* **explicit** (``fields``): each target column names a source path (dot notation, list
  indexes ``items.0.qty`` or ``items[0].qty``) or a spec with a type cast, format, time
  zone, default, constant, value map, trim/case and a safe arithmetic expression.
  ``include_unmapped: true`` adds the remaining top-level fields as in auto mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.errors import MappingError

FieldType = Literal["integer", "float", "decimal", "boolean", "string", "date", "datetime", "json"]
SYSTEM_COLUMNS = ("_source_id", "_run_id", "_synced_at", "_row_hash", "_row_key", "_deleted_at")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_CAMEL_1 = re.compile(r"(.)([A-Z][a-z]+)")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_PATH_INDEX = re.compile(r"\[(\d+)\]")
_TRUE = {"true", "1", "yes", "y", "t", "on", "ya"}
_FALSE = {"false", "0", "no", "n", "f", "off", "tidak"}


def snake_case(name: str) -> str:
    """Column name for a source field: ``machineId`` → ``machine_id``, ``Temp (C)`` → ``temp_c``."""
    text = _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", str(name)))
    text = _NON_WORD.sub("_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text) or "field"
    if text[0].isdigit():
        text = "c_" + text
    return text[:63]


def check_identifier(name: str, what: str) -> str:
    if not IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid name: use lower-case letters, digits and "
            "underscores, starting with a letter or underscore, at most 63 characters"
        )
    return name


def check_zone(name: str | None) -> str | None:
    """A time zone setting, refused with a clear message unless it is a known IANA name."""
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r} (use an IANA name like Asia/Jakarta or UTC)"
            ) from None
    return name


def parse_path(path: str) -> tuple[str | int, ...]:
    """``a.b[0].c`` or ``a.b.0.c`` → ``("a", "b", 0, "c")``."""
    parts: list[str | int] = []
    for part in _PATH_INDEX.sub(r".\1", path).split("."):
        if part == "":
            raise ValueError(f"path {path!r} has an empty segment")
        parts.append(int(part) if part.isdigit() else part)
    return tuple(parts)


_MISSING = object()


def get_path(record: Any, path: tuple[str | int, ...]) -> Any:
    value = record
    for part in path:
        if isinstance(value, dict):
            value = value.get(part if isinstance(part, str) else str(part), _MISSING)
        elif isinstance(value, list) and isinstance(part, int):
            value = value[part] if part < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


class FieldSpec(BaseModel):
    """How one target column is computed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(default=None, alias="from")
    type: FieldType | None = None
    format: str | None = None
    timezone: str | None = None
    default: Any = None
    value: Any = None
    map: dict[str, Any] | None = None
    trim: bool = False
    case: Literal["upper", "lower", "title"] | None = None
    expr: str | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return check_zone(v)

    @field_validator("from_")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None:
            parse_path(v)
        return v

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        if v is not None:
            from factorysync.engine.expressions import compile_expression

            compile_expression(v)
        return v


class ValidationRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str
    rule: Literal["required", "min", "max", "regex", "allowed", "unique"]
    value: Any = None

    @model_validator(mode="after")
    def _needs_value(self) -> ValidationRule:
        if self.rule in {"min", "max"} and not isinstance(self.value, int | float):
            raise ValueError(f"rule {self.rule!r} on {self.field!r} needs a numeric 'value'")
        if self.rule == "regex":
            if not isinstance(self.value, str):
                raise ValueError(f"rule 'regex' on {self.field!r} needs a pattern in 'value'")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"rule 'regex' on {self.field!r}: bad pattern: {exc}") from None
        if self.rule == "allowed" and not isinstance(self.value, list):
            raise ValueError(f"rule 'allowed' on {self.field!r} needs a list in 'value'")
        return self


class MappingConfig(BaseModel):
    """``mapping_config`` of a mapping (DESIGN §3)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    records_path: str | None = None
    primary_key: list[str] = Field(default_factory=list)
    cursor_field: str | None = None
    fields: dict[str, str | FieldSpec] | None = None
    include_unmapped: bool = False
    validate_: list[ValidationRule] = Field(default_factory=list, alias="validate")
    on_invalid: Literal["quarantine", "skip", "fail"] = "quarantine"
    delete_mode: Literal["hard", "soft"] = "hard"
    # Keep only source records for which this expression (on ``row``) is true.
    where: str | None = None
    # Turn each element of this list into its own record (the parent's other top-level
    # fields are kept; a scalar element is put under ``explode_as``, default "value").
    explode: str | None = None
    explode_as: str | None = None
    # Incremental: also re-read this much before the stored cursor (seconds for time
    # cursors, units for numeric ones), for rows that arrive late.
    lookback: float | None = Field(default=None, ge=0)
    # Retention: the target column whose age decides (default: the sync time).
    retention_field: str | None = None

    @field_validator("where")
    @classmethod
    def _where(cls, v: str | None) -> str | None:
        if v is not None:
            from factorysync.engine.expressions import compile_expression

            compile_expression(v)
        return v

    @field_validator("explode")
    @classmethod
    def _explode(cls, v: str | None) -> str | None:
        if v is not None:
            parse_path(v)
        return v

    @field_validator("primary_key", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("records_path")
    @classmethod
    def _records_path(cls, v: str | None) -> str | None:
        if v in ("", "$", "."):
            return None
        if v is not None:
            parse_path(v)
        return v

    @field_validator("fields")
    @classmethod
    def _columns(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        for column, spec in (v or {}).items():
            check_identifier(column, "target column")
            if column in SYSTEM_COLUMNS:
                raise ValueError(f"target column {column!r} is reserved for provenance")
            if isinstance(spec, str):
                parse_path(spec)
        return v

    @model_validator(mode="after")
    def _keys_are_columns(self) -> MappingConfig:
        explicit = self.fields is not None and not self.include_unmapped
        mapped = self.fields or {}
        for key in self.primary_key:
            check_identifier(key, "primary_key column")
            if explicit and key not in mapped:
                raise ValueError(f"primary_key column {key!r} is not one of the mapped fields")
        for name, what in (
            (self.cursor_field, "cursor_field"),
            (self.retention_field, "retention_field"),
        ):
            if name is not None and explicit and name not in mapped:
                raise ValueError(f"{what} {name!r} is not one of the mapped fields")
        for rule in self.validate_:
            if explicit and rule.field not in mapped:
                raise ValueError(f"validate rule names {rule.field!r}, which is not a mapped field")
        return self

    @property
    def auto(self) -> bool:
        return self.fields is None


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


def caster(spec: FieldSpec) -> Callable[[Any], Any]:
    """The function converting a raw value to the spec's type (None stays None)."""
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
        "datetime": lambda v: _parse_datetime(v, spec.format, spec.timezone),
        "json": lambda v: v,
    }
    return table[kind]


class _Column:
    __slots__ = ("cast", "expr", "name", "path", "spec")

    def __init__(self, name: str, spec: FieldSpec) -> None:
        from factorysync.engine.expressions import compile_expression

        self.name = name
        self.spec = spec
        self.path = parse_path(spec.from_ if spec.from_ is not None else name)
        self.cast = caster(spec)
        self.expr = compile_expression(spec.expr) if spec.expr else None

    def compute(self, record: Any) -> Any:
        spec = self.spec
        if spec.value is not None:
            return spec.value
        value = get_path(record, self.path)
        if (
            value is _MISSING
            or value is None
            or (value == "" and spec.type not in (None, "string"))
        ):
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


class Mapper:
    """Turns source records into target rows for one mapping."""

    def __init__(self, config: MappingConfig) -> None:
        self.config = config
        self.columns = [
            _Column(name, FieldSpec(**{"from": spec}) if isinstance(spec, str) else spec)
            for name, spec in (config.fields or {}).items()
        ]
        self._explicit_sources = {
            str(c.path[0]) for c in self.columns if c.spec.value is None and c.path
        }
        self.auto = config.fields is None or config.include_unmapped
        self.key = list(config.primary_key)
        self._where = None
        if config.where:
            from factorysync.engine.expressions import compile_expression

            self._where = compile_expression(config.where)
        self._explode = parse_path(config.explode) if config.explode else None

    def expand(self, record: Any) -> list[Any]:
        """The records one source record stands for, after ``explode`` and ``where``."""
        records = [record]
        if self._explode is not None and isinstance(record, dict):
            items = get_path(record, self._explode)
            if items is _MISSING or items is None:
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

    def map(self, record: Any) -> dict[str, Any]:
        """Map one record; raises MappingError naming the column on a bad value."""
        if not isinstance(record, dict):
            if self.columns and not self.auto:
                record = {"value": record}
            else:
                raise MappingError(f"record is a {type(record).__name__}, not an object")
        row: dict[str, Any] = {}
        for column in self.columns:
            row[column.name] = column.compute(record)
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
                row[name] = value
        return row

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


def records_at(document: Any, records_path: str | None) -> Iterable[Any]:
    """The records inside a parsed document: a list at ``records_path`` (or the document)."""
    if records_path:
        found = get_path(document, parse_path(records_path))
        if found is _MISSING:
            raise MappingError(f"records_path {records_path!r} not found in the document")
        document = found
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        return [document]
    raise MappingError(
        f"records_path {records_path or '(document root)'!r} holds a "
        f"{type(document).__name__}, not a list of records"
    )
