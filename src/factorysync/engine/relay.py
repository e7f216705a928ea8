"""First loads relayed by the connector into a PostgreSQL store.

Relaying is a capability a connector may offer: ``connector.relay(request)`` opens a
:class:`RelaySource` (or None when this source cannot be relayed), and the engine asks
every connector the same way. A PostgreSQL database source offers it: when a mapping
only picks and renames its columns, its first full load into an empty PostgreSQL target
needs no value to pass through Python: the source server writes the rows in binary COPY
format, each column as the exact type of its store column, and the bytes go unchanged
into a binary ``COPY … FROM STDIN`` of the target. The provenance columns come from
column defaults set for the load when this transaction made the table (fewer bytes to
write, send and parse), else as constants the source adds to each row. Both servers do
their own half at once; the indexes are built afterwards, as for every first load.

The result is the one the Arrow path gives: the same column types (only types whose
binary value equals what the Arrow path stores are relayed), the same text columns
(auto mode types a text column whose values are ISO dates; such a source is not
relayed), and rows with an empty key column, which the Arrow path rejects, make the
runner load again on that path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text

from factorysync.engine import columnar
from factorysync.engine.mapping import MappingConfig
from factorysync.prefetch import prefetched

if TYPE_CHECKING:
    from factorysync.connectors.base import Connector
    from factorysync.engine.history import RunResult
    from factorysync.engine.mapping_run import MappingRun
    from factorysync.store.targets import TargetTable

PROVENANCE = ("_source_id", "_run_id", "_synced_at")
PROVENANCE_KINDS = ("string", "integer", "datetime")
PREFETCH = 4  # relayed chunks (about 1 MB each) that may wait for the store


class RelaySource(Protocol):
    """What a connector's ``relay(request)`` opens: the source's columns and their rows
    in PostgreSQL's binary COPY format, with errors reported as the source's."""

    # Source column -> the kind it is stored as (integer, float, string, boolean, date,
    # datetime): only columns whose binary value is what the Arrow path would store.
    kinds: dict[str, str]

    def first_values(self, columns: list[str]) -> list[Any]:
        """Each column's first value that is not NULL, in the order the source reads."""
        ...

    def not_null(self, columns: list[str]) -> bool:
        """Whether the source declares every one of ``columns`` NOT NULL."""
        ...

    def stream(
        self, columns: list[str], constants: dict[str, tuple[Any, str]]
    ) -> Iterable[bytes | bytearray]:
        """Binary COPY data of ``columns``, each as the store type of its kind, followed
        by one column per constant (``name: (value, kind)``) with that value in every row."""
        ...


class RelayFallback(Exception):
    """The relayed rows cannot stand as loaded: the run loads again on the Arrow path."""


def relayed(connector: Connector, mrun: MappingRun, result: RunResult) -> bool:
    """Relay a direct first load of ``mrun`` when its connector offers it and its target
    is a PostgreSQL store; whether it did (its rows are then counted in ``result``)."""
    target = mrun.target
    if not connector.relays or mrun.incremental or not mrun.columnar or not target.direct:
        return False
    if target.dialect != "postgresql":
        return False
    with connector.relay(mrun.request()) as source:
        if source is None:
            return False
        rows = first_load(target, mrun.decl.mapping_config, source, mrun.columns)
    if rows is None:
        return False
    result.records_processed += rows
    return True


def first_load(
    target: TargetTable, config: MappingConfig, relay: RelaySource, columns: dict[str, str]
) -> int | None:
    """Relay the source into ``target`` (a PostgreSQL store's direct first load, which
    the caller checks); the rows written, or None when this mapping or source needs the
    Arrow path (nothing written then). ``columns`` learns the target columns of an auto
    mapping, as on the Arrow path."""
    from factorysync.kinds import ISO_DATE, ISO_DATETIME
    from factorysync.store import bulk

    kinds = relay.kinds
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
    if not bulk.binary_fits(target, target.name, layout, [*wanted, *PROVENANCE_KINDS]):
        return None
    values = target.direct_values
    written, constants = layout, dict[str, tuple[Any, str]]()
    provenance: AbstractContextManager[None] = nullcontext()
    if target.created_by_direct_load:
        # A table this transaction made: the provenance columns come from column
        # defaults, so the stream carries only the source's columns.
        written, provenance = names, _provenance_defaults(target, values)
    else:
        constants = {
            name.lstrip("_"): (values[name], kind)
            for name, kind in zip(PROVENANCE, PROVENANCE_KINDS, strict=True)
        }
    with provenance:
        stream = relay.stream([source for _, source in pairs], constants)
        chunks = prefetched(iter(stream), depth=PREFETCH)
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
