"""The ``mapping_config`` declaration: its model, and the names and paths it is made of.

:class:`MappingConfig` is what a source declares for one target table (validated at the
edge, every problem reported at once); the helpers here check identifiers, source paths
and time zones, and find values and records by path. The mapper that applies a config
to records is :mod:`factorysync.engine.mapping`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from factorysync.errors import MappingError

FieldType = Literal["integer", "float", "decimal", "boolean", "string", "date", "datetime", "json"]
SYSTEM_COLUMNS = ("_source_id", "_run_id", "_synced_at", "_row_hash", "_row_key", "_deleted_at")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_CAMEL_1 = re.compile(r"(.)([A-Z][a-z]+)")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_PATH_INDEX = re.compile(r"\[(\d+)\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_SOURCE_PATH = 1_000  # characters of a source path or field name
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what an integer column (BIGINT) holds


def snake_case(name: str) -> str:
    """Column name for a source field: ``machineId`` → ``machine_id``, ``Temp (C)`` → ``temp_c``."""
    text = _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", str(name)))
    text = _NON_WORD.sub("_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text) or "field"
    if text[0].isdigit():
        text = "c_" + text
    return text[:63]


def check_identifier(name: str, what: str) -> str:
    """A target-side name (table or column): it ends up in SQL, so only a plain
    identifier is accepted, whatever the dialect quotes."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise ValueError(
            f"{what} {shown} is not a valid name: use lower-case letters, digits and "
            "underscores, starting with a letter or underscore, at most 63 characters"
        )
    return name


def check_source_name(name: str, what: str) -> str:
    """A source-side name or path: anything a document or a CSV header may hold (spaces,
    capitals, accents), but bounded and without control characters."""
    if len(name) > MAX_SOURCE_PATH:
        raise ValueError(f"{what} is {len(name)} characters long: the limit is {MAX_SOURCE_PATH}")
    if _CONTROL.search(name):
        raise ValueError(f"{what} {name[:80]!r} holds a control character")
    return name


def check_source_path(path: str, what: str) -> str:
    check_source_name(path, what)
    parse_path(path)
    return path


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
            check_source_path(v, "source path")
        return v

    @field_validator("value", "default")
    @classmethod
    def _constant(cls, v: Any) -> Any:
        _check_constant(v)
        return v

    @field_validator("map")
    @classmethod
    def _mapped(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        for mapped in (v or {}).values():
            _check_constant(mapped)
        return v

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        if v is not None:
            from factorysync.expressions import compile_expression

            compile_expression(v)
        return v


def _check_constant(value: Any) -> None:
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        shown = f"a {value.bit_length()}-bit integer" if value.bit_length() > 200 else value
        raise ValueError(
            f"{shown} does not fit a 64-bit integer column "
            f"({INT64_MIN} to {INT64_MAX}); write it as text or a decimal number"
        )


def _field_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return "path"
    return "spec" if isinstance(v, dict | FieldSpec) else None


# A field is a source path or a spec; told apart by type, so that a bad spec is reported
# once (``fields.qty.spec.expr: ...``), not also as "not a valid string".
FieldRef = Annotated[
    Annotated[str, Tag("path")] | Annotated[FieldSpec, Tag("spec")],
    Discriminator(
        _field_kind,
        custom_error_type="field_ref",
        custom_error_message="a field is a source path (text) or a spec (a mapping of "
        "from, type, expr, ...)",
    ),
]


class ValidationRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str
    rule: Literal["required", "min", "max", "regex", "allowed", "unique"]
    value: Any = None

    @field_validator("field")
    @classmethod
    def _column(cls, v: str) -> str:
        return check_identifier(v, "validate rule column")

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
    fields: dict[str, FieldRef] | None = None
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
    # Incremental database mappings: every ``delete_scan_every`` runs, read the primary
    # key columns of the whole source and delete the target rows whose key is gone
    # (engine.key_scan). Incremental reads alone never see a row deleted upstream.
    detect_deletes: Literal["key_scan"] | None = None
    delete_scan_every: int = Field(default=10, ge=1, le=1_000_000)
    # What a change of the source's schema may do to the target table: "evolve" adds and
    # widens columns (reported as schema.changed events and a schema_change alert);
    # "freeze" quarantines records with fields the table has no column for and fails a
    # run whose values would change a column's type.
    schema_contract: Literal["evolve", "freeze"] = "evolve"

    @field_validator("where")
    @classmethod
    def _where(cls, v: str | None) -> str | None:
        if v is not None:
            from factorysync.expressions import compile_expression

            compile_expression(v)
        return v

    @field_validator("explode")
    @classmethod
    def _explode(cls, v: str | None) -> str | None:
        if v is not None:
            check_source_path(v, "explode path")
        return v

    @field_validator("explode_as")
    @classmethod
    def _explode_as(cls, v: str | None) -> str | None:
        if v is not None:
            check_source_name(v, "explode_as field name")
        return v

    @field_validator("primary_key", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("primary_key")
    @classmethod
    def _key_columns(cls, v: list[str]) -> list[str]:
        for key in v:
            check_identifier(key, "primary_key column")
        return v

    # Target columns: each is a column of the target table and, for the cursor, the
    # column an incremental read filters and orders on.
    @field_validator("cursor_field", "retention_field")
    @classmethod
    def _target_column(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            check_identifier(v, str(info.field_name))
        return v

    @field_validator("records_path")
    @classmethod
    def _records_path(cls, v: str | None) -> str | None:
        if v in ("", "$", "."):
            return None
        if v is not None:
            check_source_path(v, "records_path")
        return v

    @field_validator("fields")
    @classmethod
    def _columns(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        for column, spec in (v or {}).items():
            check_identifier(column, "target column")
            if column in SYSTEM_COLUMNS:
                raise ValueError(f"target column {column!r} is reserved for provenance")
            if isinstance(spec, str):
                check_source_path(spec, f"source path of {column}")
        return v

    @model_validator(mode="after")
    def _keys_are_columns(self) -> MappingConfig:
        explicit = self.fields is not None and not self.include_unmapped
        mapped = self.fields or {}
        for key in self.primary_key:
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

    @model_validator(mode="after")
    def _key_scan(self) -> MappingConfig:
        if self.detect_deletes == "key_scan":
            if not self.primary_key:
                raise ValueError("detect_deletes 'key_scan' needs a primary_key to compare")
            if self.explode is not None:
                raise ValueError(
                    "detect_deletes 'key_scan' cannot be used with explode (the keys of "
                    "exploded rows are not in the source's key columns)"
                )
        return self

    @property
    def auto(self) -> bool:
        return self.fields is None


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
