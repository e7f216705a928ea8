"""The quarantine: one entry per source, target table and record content, where the
records a run refused wait to be fixed.

A record refused again counts up its entry's ``times_seen`` and moves its ``last_seen``,
``run_id`` and ``reasons`` to the latest refusal (``content_hash`` is the record's
content, keys in any order), so the table grows with the distinct bad records, never with
the runs that meet them. Entries leave by replay (:mod:`factorysync.engine.quality`), by
``clear`` and by retention (:mod:`factorysync.engine.retention`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select

from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.types import utcnow

UPSERT_CHUNK = 500  # entries per INSERT … ON CONFLICT statement


def _canonical(record: Any) -> bytes:
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits: the standard library writes it
        return json.dumps(record, sort_keys=True, ensure_ascii=False).encode()


def normalised(record: Any) -> Any:
    """The record as the quarantine stores it: plain JSON values (timestamps as ISO text,
    other objects as their text)."""
    try:
        return orjson.loads(orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:
        return json.loads(json.dumps(record, default=str))


def content_hash(record: Any) -> str:
    """Hash of a record's content: equal records (keys in any order) hash equal."""
    return hashlib.blake2b(_canonical(normalised(record)), digest_size=16).hexdigest()


def reject(
    source_id: str,
    target_table: str,
    record: Any,
    reasons: list[str],
    run_id: int | None,
    *,
    stage: str = "record",
) -> dict[str, Any]:
    """One refused record, for :func:`store_rejects`; ``stage`` as the column says."""
    return {
        "source_id": source_id,
        "target_table": target_table,
        "record": record,
        "reasons": reasons,
        "run_id": run_id,
        "stage": stage,
        "kept_previous": False,
    }


def store_rejects(
    conn: Connection, entries: Iterable[dict[str, Any]], now: datetime | None = None
) -> int:
    """Upsert refused records (see :func:`reject`) into the quarantine; distinct entries.

    A record already quarantined for its source and target table counts up
    ``times_seen`` (once per refusal, so a record twice in one file counts twice) and
    takes the latest run, reasons and ``kept_previous``; ``first_seen`` stays.
    """
    now = now or utcnow()
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entry in entries:
        record = normalised(entry["record"])
        digest = hashlib.blake2b(_canonical(record), digest_size=16).hexdigest()
        key = (entry["source_id"], entry.get("target_table") or "", digest)
        have = merged.get(key)
        if have is not None:
            have["times_seen"] += 1
            have.update(reasons=list(entry["reasons"]), run_id=entry.get("run_id"))
            have["kept_previous"] = have["kept_previous"] or bool(entry.get("kept_previous"))
            continue
        merged[key] = {
            "source_id": key[0],
            "target_table": key[1],
            "content_hash": digest,
            "record": record,
            "stage": entry.get("stage") or "record",
            "reasons": list(entry["reasons"]),
            "run_id": entry.get("run_id"),
            "first_seen": now,
            "last_seen": now,
            "times_seen": 1,
            "kept_previous": bool(entry.get("kept_previous")),
        }
    if not merged:
        return 0
    stmt: Any
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(quarantine_t)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(quarantine_t)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source_id", "target_table", "content_hash"],
        set_={
            "times_seen": quarantine_t.c.times_seen + stmt.excluded.times_seen,
            "last_seen": stmt.excluded.last_seen,
            "reasons": stmt.excluded.reasons,
            "run_id": stmt.excluded.run_id,
            "stage": stmt.excluded.stage,
            "kept_previous": stmt.excluded.kept_previous,
        },
    )
    # One order for every writer, so two transactions never wait on each other's rows.
    rows = sorted(merged.values(), key=lambda r: (r["target_table"], r["content_hash"]))
    for start in range(0, len(rows), UPSERT_CHUNK):
        conn.execute(stmt, rows[start : start + UPSERT_CHUNK])
    return len(rows)


ENTRY_COLUMNS = (
    "id",
    "source_id",
    "target_table",
    "stage",
    "times_seen",
    "first_seen",
    "last_seen",
    "run_id",
    "kept_previous",
    "reasons",
    "record",
    "content_hash",
)


def count_entries(conn: Connection, source_id: str) -> int:
    return int(
        conn.execute(select(func.count()).where(quarantine_t.c.source_id == source_id)).scalar_one()
    )


def list_entries(
    conn: Connection, source_id: str, *, limit: int | None, offset: int = 0
) -> list[dict[str, Any]]:
    """The source's entries, most recently refused first (``limit`` None: all)."""
    stmt = (
        select(*(quarantine_t.c[c] for c in ENTRY_COLUMNS))
        .where(quarantine_t.c.source_id == source_id)
        .order_by(quarantine_t.c.last_seen.desc(), quarantine_t.c.id.desc())
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [{str(k): v for k, v in r.items()} for r in conn.execute(stmt).mappings()]


def clear_entries(conn: Connection, source_id: str) -> int:
    return int(
        conn.execute(delete(quarantine_t).where(quarantine_t.c.source_id == source_id)).rowcount
    )


def purge_entries(conn: Connection, source_id: str, target_table: str, cutoff: datetime) -> int:
    """Remove entries of one mapping last refused before ``cutoff`` (retention)."""
    return int(
        conn.execute(
            delete(quarantine_t).where(
                quarantine_t.c.source_id == source_id,
                quarantine_t.c.target_table == target_table,
                quarantine_t.c.last_seen < cutoff,
            )
        ).rowcount
    )
