"""The ``mapping_config`` declaration: its model, and the names and paths it is made of.

:class:`MappingConfig` is what a source declares for one target table (validated at the
edge, every problem reported at once), :class:`PivotConfig` its ``pivot`` (narrow samples
made machine-shaped rows); :func:`records_at` finds a document's records. Identifiers,
source paths and time zones are checked by :mod:`factorysync.config.names`. The mapper
that applies a config to records is :mod:`factorysync.engine.mapping`, the pivot
:mod:`factorysync.engine.pivot`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

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

from factorysync.config.names import (
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

FieldType = Literal["integer", "float", "decimal", "boolean", "string", "date", "datetime", "json"]
SYSTEM_COLUMNS = ("_source_id", "_run_id", "_synced_at", "_row_hash", "_row_key", "_deleted_at")
PIVOT_TS = "ts"  # the pivoted rows' timestamp column (from pivot.ts_from)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what an integer column (BIGINT) holds


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


class PivotConfig(BaseModel):
    """``mapping_config.pivot``: narrow samples (one value of one signal each, as OPC UA,
    Sparkplug B and MQTT topic levels deliver them) turned into one row per machine
    before the fields are mapped (:mod:`factorysync.engine.pivot`).

    A pivoted row holds the ``key`` columns, ``ts`` (with ``ts_from``) and one column per
    signal name. ``key`` names target columns; each is read from the sample's field of
    that name, or computed as ``key_from`` says. ``key_from`` entries and ``name_from``,
    ``value_from``, ``ts_from`` are each a source path, or a field spec (``from`` with
    ``expr``, ``map``, ``type`` …, e.g. the press and the signal parts of an OPC UA node
    id)."""

    model_config = ConfigDict(extra="forbid")

    key: list[str] = Field(min_length=1)
    key_from: dict[str, FieldRef] = Field(default_factory=dict)
    name_from: FieldRef
    value_from: FieldRef
    ts_from: FieldRef | None = None
    mode: Literal["latest", "wide_time_series"] = "latest"
    # Rows the pivot keeps in memory (latest: keys; wide_time_series: key and time rows).
    state_rows: int = Field(default=10_000, ge=1, le=1_000_000)

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("key")
    @classmethod
    def _key_columns(cls, v: list[str]) -> list[str]:
        for column in v:
            check_identifier(column, "pivot.key column")
            if column in SYSTEM_COLUMNS:
                raise ValueError(f"pivot.key column {column!r} is reserved for provenance")
            if snake_case(column) != column:
                # Auto mode names columns by snake_case: the key must already be one.
                raise ValueError(
                    f"pivot.key column {column!r} is not in snake_case: "
                    f"write {snake_case(column)!r}"
                )
        repeated = sorted({c for c in v if v.count(c) > 1})
        if repeated:
            raise ValueError(f"pivot.key names {', '.join(map(repr, repeated))} more than once")
        return v

    @field_validator("name_from", "value_from", "ts_from")
    @classmethod
    def _source(cls, v: str | FieldSpec | None, info: ValidationInfo) -> str | FieldSpec | None:
        if isinstance(v, str):
            check_source_path(v, f"pivot.{info.field_name}")
        elif v is not None and v.from_ is None:
            raise ValueError(f"pivot.{info.field_name} needs 'from' (the sample's source path)")
        return v

    @field_validator("key_from")
    @classmethod
    def _key_sources(cls, v: dict[str, Any]) -> dict[str, Any]:
        for column, spec in v.items():
            if isinstance(spec, str):
                check_source_path(spec, f"pivot.key_from source path of {column}")
        return v

    @model_validator(mode="after")
    def _whole(self) -> PivotConfig:
        for column in self.key_from:
            if column not in self.key:
                raise ValueError(
                    f"pivot.key_from names {column!r}, which is not one of pivot.key {self.key}"
                )
        if self.mode == "wide_time_series" and self.ts_from is None:
            raise ValueError(
                "pivot.ts_from is required with mode 'wide_time_series' (its rows are one "
                "per key and sample time)"
            )
        if self.ts_from is not None and PIVOT_TS in self.key:
            raise ValueError(
                f"pivot.key column {PIVOT_TS!r} is the pivoted rows' timestamp (from "
                "pivot.ts_from): name the key column otherwise"
            )
        return self

    @property
    def primary_key(self) -> list[str]:
        """The target rows' key: one row per key (latest), or per key and ``ts``."""
        if self.mode == "wide_time_series":
            return [*self.key, PIVOT_TS]
        return list(self.key)


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
    # Narrow samples made one row per machine before the fields are mapped; the rows'
    # primary key is the pivot's (PivotConfig.primary_key).
    pivot: PivotConfig | None = None

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
    def _pivoted(self) -> MappingConfig:
        if self.pivot is None:
            return self
        # Each refusal names what to do instead; the pivot decides the rows' key, and
        # each machine's row fills up one sample at a time.
        if self.primary_key:
            raise ValueError(
                "primary_key cannot be declared with pivot: the rows' key is pivot.key "
                "(mode latest) or pivot.key and ts (mode wide_time_series)"
            )
        if self.cursor_field is not None:
            raise ValueError(
                "cursor_field cannot be used with pivot: an incremental read pivots only "
                "the samples after the cursor, and each machine's row would lose the "
                "signals read before (use sync_strategy full or realtime)"
            )
        if self.detect_deletes is not None:
            raise ValueError(
                "detect_deletes cannot be used with pivot (the pivoted keys are not "
                "columns of the source)"
            )
        for rule in self.validate_:
            if rule.rule in ("required", "unique"):
                raise ValueError(
                    f"validate rule {rule.rule!r} on {rule.field!r} cannot be used with "
                    "pivot: rules check a machine's row each time one of its samples "
                    "arrives, while the row is still filling up"
                )
        return self

    @model_validator(mode="after")
    def _keys_are_columns(self) -> MappingConfig:
        explicit = self.fields is not None and not self.include_unmapped
        mapped = self.fields or {}
        for key in self.key_columns:
            if explicit and key not in mapped:
                whose = " (a key column of the pivot)" if self.pivot is not None else ""
                raise ValueError(
                    f"primary_key column {key!r}{whose} is not one of the mapped fields"
                )
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

    @property
    def key_columns(self) -> list[str]:
        """The target rows' primary key: ``primary_key``, or the pivot's."""
        if self.pivot is not None:
            return self.pivot.primary_key
        return list(self.primary_key)


def records_at(document: Any, records_path: str | None) -> Iterable[Any]:
    """The records inside a parsed document: a list at ``records_path`` (or the document)."""
    if records_path:
        found = get_path(document, parse_path(records_path))
        if found is MISSING:
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
