"""A forwarded message as the central ingest reads it: checked, and its values typed.

A plant publishes each change of a forwarded table as one JSON message on
``factorysync.<site>.<table>`` (the forwarding format, version 1)::

    {"v": 1, "site": "plant-a", "table": "production", "source_id": "line1",
     "run_id": 42, "outbox_seq": 17, "op": "rows" | "delete",
     "key": ["machine_id", "ts"],
     "columns": {"machine_id": "string", "ts": "datetime", ..., "_row_hash": "string"},
     "rows": [[...values in "columns" order...], ...],   # "delete": key values only
     "published_at": "2026-12-06T20:00:00.123Z"}

Payloads come from the network and are not trusted: every name must be a plain
identifier, every kind one the store knows, every row as long as its column list and
every value of its column's kind; the site and table must be the subject's. What does
not hold is a :class:`BadMessage` naming the field, and the message is not applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from factorysync.config.names import IDENTIFIER
from factorysync.kinds import PG_TYPES
from factorysync.settings import SITE_NAME

FORMAT = 1
SUBJECT_PREFIX = "factorysync"
# Kinds as the store names them; "text" is accepted for "string", "bytes" (base64) is
# kept as its base64 text.
KINDS = frozenset(PG_TYPES)
KIND_ALIASES = {"text": "string", "bytes": "string"}
# Provenance columns the plant sends with every row, and their kinds at the central.
PROVENANCE = {
    "_row_hash": "string",
    "_run_id": "integer",
    "_synced_at": "datetime",
    "_deleted_at": "datetime",
}
RESERVED = frozenset({"_site", "_source_id"})
SOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_ROWS = 100_000  # rows of one message (plants send at most 1,000)
MAX_COLUMNS = 1_600  # PostgreSQL's limit of columns in a table


class BadMessage(ValueError):
    """A message that cannot be applied; the text names what is wrong, never a value."""


@dataclass
class ForwardMessage:
    """One checked message: ``rows`` hold typed values in ``columns`` order (for a
    delete: key values in ``key`` order)."""

    site: str
    table: str
    source_id: str
    run_id: int | None
    outbox_seq: int | None
    op: str
    key: list[str]
    columns: dict[str, str]
    rows: list[list[Any]]
    published_at: datetime | None

    @property
    def mapped(self) -> dict[str, str]:
        """Columns other than the key and provenance, with their kinds."""
        return {c: k for c, k in self.columns.items() if c not in self.key and c not in PROVENANCE}


def subject_parts(subject: str) -> tuple[str, str]:
    """(site, table) of ``factorysync.<site>.<table>``."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != SUBJECT_PREFIX:
        raise BadMessage(f"subject {subject[:120]!r} is not factorysync.<site>.<table>")
    site, table = parts[1], parts[2]
    if not SITE_NAME.match(site) or not IDENTIFIER.match(table):
        raise BadMessage(f"subject {subject[:120]!r} names no valid site and table")
    return site, table


def parse(subject: str, data: bytes) -> ForwardMessage:
    """The message of ``data`` received on ``subject``, checked (:class:`BadMessage`)."""
    site, table = subject_parts(subject)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"payload is not JSON ({exc.msg})") from None
    if not isinstance(body, dict):
        raise BadMessage("payload is not a JSON object")
    if body.get("v") != FORMAT:
        raise BadMessage(f"payload format v={str(body.get('v'))[:20]!r}: only {FORMAT} is read")
    if body.get("site") != site or body.get("table") != table:
        raise BadMessage("payload site/table differ from the subject's")
    source_id = body.get("source_id")
    if not isinstance(source_id, str) or not SOURCE_ID.match(source_id):
        raise BadMessage("source_id is missing or not a source id")
    op = body.get("op")
    if op not in ("rows", "delete"):
        raise BadMessage("op must be 'rows' or 'delete'")
    columns = _columns(body.get("columns"))
    key = body.get("key")
    if (
        not isinstance(key, list)
        or not key
        or len(set(map(str, key))) != len(key)
        or any(not isinstance(k, str) or k not in columns or k in PROVENANCE for k in key)
    ):
        raise BadMessage("key must be a list of distinct columns of 'columns'")
    if op == "rows":
        missing = [c for c in ("_row_hash",) if c not in columns]
        if missing:
            raise BadMessage(f"columns lack {missing}")
    raw = body.get("rows")
    if not isinstance(raw, list) or len(raw) > MAX_ROWS:
        raise BadMessage(f"rows must be a list of at most {MAX_ROWS:,} rows")
    kinds = [columns[k] for k in key] if op == "delete" else list(columns.values())
    names = key if op == "delete" else list(columns)
    rows = [_row(i, row, names, kinds) for i, row in enumerate(raw)]
    return ForwardMessage(
        site=site,
        table=table,
        source_id=source_id,
        run_id=_int_or_none(body.get("run_id"), "run_id"),
        outbox_seq=_int_or_none(body.get("outbox_seq"), "outbox_seq"),
        op=op,
        key=list(key),
        columns=columns,
        rows=rows,
        published_at=_published(body.get("published_at")),
    )


def _columns(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value or len(value) > MAX_COLUMNS:
        raise BadMessage("columns must be an object of column: kind")
    found = {}
    for name, kind in value.items():
        if not IDENTIFIER.match(name) or name in RESERVED:
            raise BadMessage(f"column {name[:80]!r} is not a valid column name")
        kind = KIND_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
        if kind not in KINDS:
            raise BadMessage(f"column {name!r}: unknown kind {str(kind)[:30]!r}")
        found[name] = PROVENANCE.get(name, kind)
    return found


def _int_or_none(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadMessage(f"{what} must be an integer")
    return value


def _published(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadMessage("published_at is not an ISO 8601 time") from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _row(i: int, row: Any, names: list[str], kinds: list[str]) -> list[Any]:
    if not isinstance(row, list) or len(row) != len(names):
        raise BadMessage(f"row {i} does not have the {len(names)} values its columns name")
    typed = []
    for value, kind, name in zip(row, kinds, names, strict=True):
        try:
            typed.append(_value(value, kind))
        except (ValueError, TypeError, InvalidOperation, OverflowError):
            raise BadMessage(f"row {i}, column {name!r}: not a value of kind {kind}") from None
    return typed


def _value(value: Any, kind: str) -> Any:
    """A wire value as the store writes it into a column of ``kind``."""
    if value is None or kind == "json":
        return value
    if kind == "string":
        if isinstance(value, str):
            return value
        raise TypeError(kind)
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(kind)
        if not -(2**63) <= value < 2**63:
            raise OverflowError(kind)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(kind)
        return float(value)
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError(kind)
        found = Decimal(str(value))
        if not found.is_finite():
            raise ValueError(kind)
        return found
    if kind == "boolean":
        if not isinstance(value, bool):
            raise TypeError(kind)
        return value
    if kind == "date":
        return date.fromisoformat(_text(value))
    if kind == "datetime":
        stamp = datetime.fromisoformat(_text(value).replace("Z", "+00:00"))
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
    raise ValueError(kind)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("text")
    return value
