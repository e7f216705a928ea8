"""A source's records rebuilt in the shape of its own JSON document.

A widget that read ``/data/machine_list.json`` switches to the API by changing one URL:
the answer has the document's envelope (a list, one object, or a wrapper object with its
other top-level keys), the source's own field names, and times in the plant's time zone.
The envelope and field names are what the last run saw (sync state ``shape``); the
records come from the target table (soft-deleted rows left out), ordered by row identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

import orjson
from sqlalchemy import Connection, select

from factorysync.api.dataquery import to_json
from factorysync.api.tables import TableCache, TableInfo
from factorysync.engine.mapping import parse_path
from factorysync.engine.state import SHAPE_KEY, load_state
from factorysync.errors import NotFoundError
from factorysync.store.registry import get_source
from factorysync.store.store import Store

CHUNK_ROWS = 1000


@dataclass
class SourceShape:
    source_id: str
    info: TableInfo
    envelope: dict[str, Any]
    names: dict[str, str]  # target column → source field

    def prefix_suffix(self) -> tuple[bytes, bytes]:
        shape = self.envelope.get("shape")
        if shape != "wrapped":
            return b"[", b"]"
        path = [str(p) for p in parse_path(self.envelope.get("records_key") or "data")]
        extra = self.envelope.get("extra") or {}
        head = orjson.dumps({k: v for k, v in extra.items() if k != path[0]})
        prefix = head[:-1] + (b"," if len(head) > 2 else b"")
        for i, key in enumerate(path):
            prefix += orjson.dumps(key) + b":" + (b"[" if i == len(path) - 1 else b"{")
        return prefix, b"]" + b"}" * len(path)


def _names(
    columns: tuple[str, ...], mapping_config: dict[str, Any], learned: dict[str, str]
) -> dict[str, str]:
    fields = mapping_config.get("fields") or {}
    names = {}
    for column in columns:
        if column.startswith("_"):
            continue
        spec = fields.get(column)
        origin = spec if isinstance(spec, str) else (spec or {}).get("from")
        if column in learned:
            names[column] = learned[column]
        elif isinstance(origin, str) and len(parse_path(origin)) == 1:
            names[column] = origin
        else:
            names[column] = column
    return names


def source_shape(
    conn: Connection, tables: TableCache, source_id: str, target: str | None = None
) -> SourceShape:
    source = get_source(conn, source_id)
    mappings = source["mappings"]
    if target is not None:
        mappings = [m for m in mappings if m["target_table"] == target]
        if not mappings:
            raise NotFoundError(f"source {source_id!r} has no mapping to {target!r}")
    if not mappings:
        raise NotFoundError(f"source {source_id!r} has no mappings")
    mapping = mappings[0]
    try:
        info = tables.get(conn, mapping["target_table"])
    except NotFoundError:
        raise NotFoundError(
            f"source {source_id!r} has no data yet (its target table "
            f"{mapping['target_table']!r} is created by its first successful sync)"
        ) from None
    state = load_state(conn, source_id, mapping["id"], SHAPE_KEY) or {}
    envelope = state.get("envelope") or {"shape": "list"}
    names = _names(info.columns, mapping["mapping_config"] or {}, state.get("columns") or {})
    return SourceShape(source_id, info, envelope, names)


def _plain(value: Any, tz: tzinfo) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def render(store: Store, shape: SourceShape, tz: tzinfo) -> Iterator[bytes]:
    """The document in chunks; reads the rows in batches on its own connection."""
    table = shape.info.table
    columns = list(shape.names)
    stmt = (
        select(*(table.c[c] for c in columns))
        .where(table.c._source_id == shape.source_id, table.c._deleted_at.is_(None))
        .order_by(*(table.c[c] for c in shape.info.identity))
    )
    keys = [shape.names[c] for c in columns]
    single = shape.envelope.get("shape") == "object"
    prefix, suffix = shape.prefix_suffix()
    if not single:
        yield prefix
    first = True
    with store.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(stmt)
        for rows in result.partitions(CHUNK_ROWS):
            records = [{k: _plain(v, tz) for k, v in zip(keys, row, strict=True)} for row in rows]
            if single:
                yield orjson.dumps(records[0], default=to_json)
                return
            body = b",".join(orjson.dumps(r, default=to_json) for r in records)
            yield body if first else b"," + body
            first = False
    yield b"{}" if single else suffix
