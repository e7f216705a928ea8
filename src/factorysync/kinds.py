"""Column kinds: what a value suggests, how kinds widen, and how a value fits a column.

A kind names a column's type in one word ("integer", "float", "decimal", "boolean",
"string", "date", "datetime", "json"), mapped to PostgreSQL's names (:data:`PG_TYPES`)
here and to SQLAlchemy types in :data:`factorysync.store.targets.kinds.KIND_TYPES`.
Kinds only widen (integer → float → string, anything → json), so a column never refuses
values it took before. Nothing here touches a database: connectors and the engine infer
kinds with these functions before any target table exists.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

PG_TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE PRECISION",
    "decimal": "NUMERIC",
    "boolean": "BOOLEAN",
    "string": "TEXT",
    "date": "DATE",
    "datetime": "TIMESTAMP WITH TIME ZONE",
    "json": "JSONB",
}
ISO_DATE = _ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = _ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
)
_NUMERIC = ("integer", "decimal", "float")


def infer_kind(value: Any) -> str | None:
    """The column kind a single value suggests (None for null: no information)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, str):
        # Only timestamps with an explicit offset: a naive one's zone would be a guess.
        if _ISO_DATETIME.match(value):
            return "datetime"
        if _ISO_DATE.match(value):
            return "date"
        return "string"
    return "json"


def merge_kinds(a: str | None, b: str | None) -> str | None:
    """The narrowest kind that holds values of both kinds."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if "json" in (a, b):
        return "json"
    if a in _NUMERIC and b in _NUMERIC:
        return "float" if "float" in (a, b) else "decimal"
    if {a, b} == {"date", "datetime"}:
        return "string"
    return "string"


def kind_of_type_name(name: str) -> str:
    """The kind of a column declared with this SQL type name (as SQLite reports it)."""
    upper = name.upper()
    if "JSON" in upper:
        return "json"
    if "BOOL" in upper:
        return "boolean"
    if "INT" in upper:
        return "integer"
    if any(t in upper for t in ("FLOAT", "DOUBLE", "REAL")):
        return "float"
    if "NUMERIC" in upper or "DECIMAL" in upper:
        return "decimal"
    if "TIMESTAMP" in upper or "DATETIME" in upper:
        return "datetime"
    if "DATE" in upper:
        return "date"
    return "string"


def kind_of_type(sqltype: Any) -> str:
    return kind_of_type_name(type(sqltype).__name__)


def to_kind(value: Any, kind: str) -> tuple[bool, Any]:
    """(fits, value converted for a column of ``kind``)."""
    if value is None:
        return True, None
    got = infer_kind(value)
    if got == kind:
        if kind == "datetime" and isinstance(value, str):
            return True, datetime.fromisoformat(value)
        if kind == "date" and isinstance(value, str):
            return True, date.fromisoformat(value)
        return True, value
    if kind == "json":
        return True, value
    if kind == "float" and got in ("integer", "decimal"):
        return True, float(value)
    if kind == "decimal" and got == "integer":
        return True, Decimal(value)
    if kind == "string" and got != "json":
        if isinstance(value, datetime | date):
            return True, value.isoformat()
        return True, value if isinstance(value, str) else orjson.dumps(value).decode()
    return False, value


def row_hash(row: dict[str, Any]) -> str:
    import hashlib

    blob = orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.blake2b(blob, digest_size=16).hexdigest()
