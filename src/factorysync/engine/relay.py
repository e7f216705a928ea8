"""First loads relayed from a PostgreSQL source into a PostgreSQL store.

When a mapping only picks and renames a PostgreSQL source's columns, its first full
load into an empty PostgreSQL target needs no value to pass through Python: the source
server writes the rows in binary COPY format, each column cast to the exact type of its
store column, and the bytes go unchanged into a binary ``COPY … FROM STDIN`` of the
target. The provenance columns come from column defaults set for the load when this
transaction made the table (fewer bytes to write, send and parse), else as constants the
source adds to each row. Both servers do their own half at once; the indexes are built
afterwards, as for every first load.

The result is the one the Arrow path gives: the same column types (only types whose
binary value equals what the Arrow path stores are relayed), the same text columns
(auto mode types a text column whose values are ISO dates; such a source is not
relayed), and rows with an empty key column, which the Arrow path rejects, make the
runner load again on that path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from factorysync.engine import columnar
from factorysync.engine.mapping import MappingConfig
from factorysync.prefetch import prefetched

if TYPE_CHECKING:
    from factorysync.connectors.database import Relay
    from factorysync.store.targets import TargetTable

PROVENANCE = ("_source_id", "_run_id", "_synced_at")
PREFETCH = 4  # relayed chunks (about 1 MB each) that may wait for the store


class RelayFallback(Exception):
    """The relayed rows cannot stand as loaded: the run loads again on the Arrow path."""


def first_load(
    target: TargetTable, config: MappingConfig, relay: Relay, columns: dict[str, str]
) -> int | None:
    """Relay the source into ``target`` (a PostgreSQL store's direct first load, which
    the caller checks); the rows written, or None when this mapping or source needs the
    Arrow path (nothing written then). ``columns`` learns the target columns of an auto
    mapping, as on the Arrow path."""
    from factorysync.connectors import pg_copy
    from factorysync.store import bulk
    from factorysync.store.targets import ISO_DATE, ISO_DATETIME

    if any(kind not in pg_copy.PIPE_CASTS for kind in relay.types.values()):
        return None
    casts = {name: pg_copy.PIPE_CASTS[kind] for name, kind in relay.types.items()}
    kinds = {name: pg_copy.PIPE_KINDS[kind] for name, kind in relay.types.items()}
    planned = columnar.projection(config, kinds)
    if planned is None:
        return None
    pairs, auto = planned
    names = [column for column, _ in pairs]
    if any(key not in names for key in target.key):
        return None
    # schema_contract freeze: records with a field the table has no column for are
    # quarantined, which only the row path does.
    frozen = target.frozen_columns()
    named = config.fields or {}
    if frozen is not None and any(c not in frozen and c not in named for c in names):
        return None
    # Auto mode would type a text column of ISO dates: its first value shows it is not.
    sources = dict(pairs)
    firsts = relay.first_values([sources[c] for c in auto])
    if any(isinstance(v, str) and (ISO_DATETIME.match(v) or ISO_DATE.match(v)) for v in firsts):
        return None
    wanted = [kinds[source] for _, source in pairs]
    bulk.plan_kinds(target, dict(zip(names, wanted, strict=True)))
    if [target.kinds[column] for column in names] != wanted:
        return None  # a declared type differs from the source's: the Arrow path converts
    target.ensure_target()
    layout = [*names, *PROVENANCE]
    provenance_kinds = ["string", "integer", "datetime"]
    if not bulk.binary_fits(target, target.name, layout, [*wanted, *provenance_kinds]):
        return None
    select = [f"q.{pg_copy.quote(source)}::{casts[source]}" for _, source in pairs]
    values = target.direct_values
    written, params = layout, dict[str, Any]()
    provenance: AbstractContextManager[None] = nullcontext()
    if target.created_by_direct_load:
        # A table this transaction made: the provenance columns come from column
        # defaults, so the stream carries only the source's columns.
        written, provenance = names, _provenance_defaults(target, values)
    else:
        select += [
            "%(fs_source_id)s::text",
            "%(fs_run_id)s::bigint",
            "%(fs_synced_at)s::timestamp with time zone",
        ]
        params = {f"fs{name}": values[name] for name in PROVENANCE}
    with provenance:
        chunks = prefetched(relay.stream(select, params), depth=PREFETCH)
        rows = bulk.copy_binary(target, target.name, written, chunks)
    # Key columns the source declares NOT NULL need no look at the rows.
    declared = relay.not_null([sources[k] for k in target.key])
    if not declared and _empty_key(target, values["_run_id"]):
        raise RelayFallback("a key column has empty values")
    if config.fields is None:
        for column, source in pairs:
            columns.setdefault(column, source)
    target.direct_rows += rows
    return rows


@contextmanager
def _provenance_defaults(target: TargetTable, values: dict[str, Any]) -> Iterator[None]:
    """Column defaults for the provenance columns while the block runs. Only for a table
    this transaction made: on a table others can see, ALTER TABLE would lock them out,
    and a failure rolls the defaults back with the table."""
    from psycopg import sql

    assert target.created_by_direct_load

    raw = target.conn.connection.driver_connection
    literal = {
        "_source_id": sql.Literal(str(values["_source_id"])).as_string(raw) + "::text",
        "_run_id": str(int(values["_run_id"])),
        "_synced_at": sql.Literal(values["_synced_at"]).as_string(raw) + "::timestamptz",
    }
    table, q = target.quote(target.name), target.quote
    alter = ", ".join(f"ALTER COLUMN {q(n)} SET DEFAULT {literal[n]}" for n in PROVENANCE)
    target.conn.execute(text(f"ALTER TABLE {table} {alter}"))
    yield
    drop = ", ".join(f"ALTER COLUMN {q(n)} DROP DEFAULT" for n in PROVENANCE)
    target.conn.execute(text(f"ALTER TABLE {table} {drop}"))


def _empty_key(target: TargetTable, run_id: Any) -> bool:
    empty = " OR ".join(f"{target.quote(k)} IS NULL" for k in target.key)
    table = target.quote(target.name)
    found = target.conn.execute(
        text(f"SELECT 1 FROM {table} WHERE _run_id = :run AND ({empty}) LIMIT 1"),
        {"run": run_id},
    ).first()
    return found is not None
