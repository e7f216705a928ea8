"""A source's quarantine: its pages, as CSV, replayed, cleared (with who cleared it)."""

from __future__ import annotations

from typing import Any

from factorysync.store.registry import get_source
from factorysync.store.store import Store


def quarantine_page(
    store: Store, source_id: str, *, limit: int | None = 100, offset: int = 0
) -> dict[str, Any]:
    """One page of the source's quarantine, most recently refused first, with the total.

    NotFoundError for a source that neither exists nor has entries (the entries of a
    removed source stay readable until they are cleared)."""
    from factorysync.engine import quality

    with store.connect() as conn:
        total = quality.count_entries(conn, source_id)
        if not total:
            get_source(conn, source_id)
        entries = quality.list_entries(conn, source_id, limit=limit, offset=offset)
    return {
        "source_id": source_id,
        "total": total,
        "limit": limit,
        "offset": offset,
        "entries": entries,
    }


def quarantined(store: Store, source_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The source's latest quarantine entries (the first page of :func:`quarantine_page`)."""
    entries: list[dict[str, Any]] = quarantine_page(store, source_id, limit=limit)["entries"]
    return entries


def quarantine_csv(entries: list[dict[str, Any]]) -> str:
    """Quarantine entries as CSV: one line each, reasons joined by "; ", the record as JSON."""
    import csv
    import io

    import orjson

    from factorysync.engine.quality import ENTRY_COLUMNS

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ENTRY_COLUMNS)
    for entry in entries:
        line = []
        for column in ENTRY_COLUMNS:
            value = entry[column]
            if column == "reasons":
                value = "; ".join(value)
            elif column == "record":
                value = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            elif isinstance(value, bool):
                value = str(value).lower()
            line.append("" if value is None else value)
        writer.writerow(line)
    return buffer.getvalue()


def replay_quarantine(store: Store, source_id: str, *, trigger: str = "manual") -> dict[str, Any]:
    """Load the source's quarantined records that now pass its mapping and rules
    (:func:`factorysync.engine.quality.replay`); the counts and the history run id."""
    from factorysync.engine import quality

    return quality.replay(store, source_id, trigger=trigger).as_dict()


def clear_quarantine(store: Store, source_id: str, *, cleared_by: str) -> dict[str, Any]:
    """Remove every quarantine entry of the source; logged (infolog) with who did it."""
    from factorysync.engine import quality
    from factorysync.observability import infolog

    with store.begin() as conn:
        removed = quality.clear_entries(conn, source_id)
        if not removed:
            get_source(conn, source_id)
        infolog.record(
            conn,
            "info",
            "quarantine.cleared",
            f"quarantine cleared by {cleared_by}: {removed} entries removed",
            source_id=source_id,
            details={"removed": removed, "by": cleared_by},
        )
    return {"source_id": source_id, "removed": removed}
