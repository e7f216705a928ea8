"""A central table: the plant's target table with ``_site``, one row per site, source and key.

The central store holds every site's rows of a forwarded table in one table of the same
name. It has the plant's columns (provenance included: ``_row_hash``, ``_run_id``,
``_synced_at``, ``_deleted_at``, ``_source_id``) plus ``_site``, and its unique key is
``(_site, _source_id, key…)``, so two plants whose sources and keys coincide never
collide. It is made and evolved by the store's own target code
(:class:`~factorysync.store.targets.evolution.EvolvingTarget`: the same column types,
the same widening, the same ``schema.changed`` events), with ``_site`` as the first key
column.

A message is applied with one statement (PostgreSQL): rows by ``INSERT … SELECT FROM
unnest(…) ON CONFLICT DO UPDATE`` changing a row only where a value differs, deletes by
``DELETE … USING unnest(…)``. Applying the same message twice changes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Index, Table, text

from factorysync.forward.central_message import PROVENANCE, BadMessage, ForwardMessage
from factorysync.kinds import PG_TYPES, merge_kinds, to_kind
from factorysync.store.targets.evolution import EvolvingTarget
from factorysync.store.targets.kinds import KIND_TYPES

SITE = "_site"


class CentralTable(EvolvingTarget):
    """One central table; ``key`` is the plant's key (``_site`` is put before it)."""

    def __init__(self, conn: Connection, name: str, key: list[str]) -> None:
        super().__init__(conn, name, source_id="", key=[SITE, *key])
        self.plant_key = list(key)

    def _add_indexes(self, table: Table) -> None:
        table.append_constraint(
            Index(f"ux_{self.name}_key"[:63], SITE, "_source_id", *self.plant_key, unique=True)
        )
        table.append_constraint(Index(f"ix_{self.name}_synced"[:63], "_synced_at"))

    def prepare(self, message: ForwardMessage) -> None:
        """Make or evolve the table to hold the message's columns (in the caller's
        transaction); afterwards ``kinds`` holds the central kind of each column."""
        self.source_id = message.source_id  # who a schema change is reported for
        planned = {SITE: "string"}
        for column, kind in message.columns.items():
            if column in PROVENANCE or column == "_row_key":
                continue
            have = self.existing.get(column)
            planned[column] = merge_kinds(have, kind) or kind
        self.kinds = planned
        self.ensure_target()

    def apply(self, message: ForwardMessage) -> int:
        """Apply a message; returns the rows it inserted, changed or deleted."""
        if message.op == "delete":
            return self._delete(message)
        if not message.rows:
            return 0
        self.prepare(message)
        order = list(message.columns)
        columns = [c for c in order if c != SITE]
        # The last row of a key wins (a plant sends each key once per message).
        key_at = [order.index(k) for k in message.key]
        latest: dict[tuple[Any, ...], list[Any]] = {}
        for row in message.rows:
            latest[tuple(row[i] for i in key_at)] = row
        at = {c: i for i, c in enumerate(order)}
        kept = list(latest.values())
        arrays = [self._array(c, [row[at[c]] for row in kept]) for c in columns]
        q = self._quote
        listed = ", ".join(q(c) for c in columns)
        casts = ", ".join(
            f"CAST(:a{n} AS {PG_TYPES[self._kind(c)]}[])" for n, c in enumerate(columns)
        )
        conflict = ", ".join([q(SITE), "_source_id", *(q(k) for k in self.plant_key)])
        changed = [c for c in columns if c not in message.key]
        sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in changed)
        differs = " OR ".join(f"t.{q(c)} IS DISTINCT FROM EXCLUDED.{q(c)}" for c in changed)
        statement = (
            f"INSERT INTO {q(self.name)} AS t ({q(SITE)}, _source_id, {listed}) "
            f"SELECT :site, :source_id, {listed} FROM unnest({casts}) AS u({listed}) "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {sets} WHERE {differs}"
        )
        params: dict[str, Any] = {f"a{n}": values for n, values in enumerate(arrays)}
        params.update(site=message.site, source_id=message.source_id)
        return int(self.conn.execute(text(statement), params).rowcount)

    def _delete(self, message: ForwardMessage) -> int:
        if not message.rows or not self.existing:
            return 0  # nothing of this table arrived yet: nothing to delete
        key = message.key
        q = self._quote
        arrays = [self._array(k, [row[n] for row in message.rows]) for n, k in enumerate(key)]
        casts = ", ".join(
            f"CAST(:k{n} AS {PG_TYPES[self.existing[k]]}[])" for n, k in enumerate(key)
        )
        names = ", ".join(q(k) for k in key)
        match = " AND ".join(f"t.{q(k)} = d.{q(k)}" for k in key)
        statement = (
            f"DELETE FROM {q(self.name)} AS t USING unnest({casts}) AS d({names}) "
            f"WHERE t.{q(SITE)} = :site AND t._source_id = :source_id AND {match}"
        )
        params: dict[str, Any] = {f"k{n}": values for n, values in enumerate(arrays)}
        params.update(site=message.site, source_id=message.source_id)
        return int(self.conn.execute(text(statement), params).rowcount)

    def _kind(self, column: str) -> str:
        return PROVENANCE.get(column) or self.existing.get(column) or self.kinds[column]

    def _array(self, column: str, values: list[Any]) -> list[Any]:
        """A column's values as the driver binds them into the column's kind."""
        kind = self._kind(column)
        bind = KIND_TYPES[kind].bind_processor(self.conn.dialect)
        found = []
        for value in values:
            fits, converted = to_kind(value, kind)
            if not fits:
                raise BadMessage(f"column {column!r}: a value does not fit its kind {kind}")
            found.append(converted if bind is None or converted is None else bind(converted))
        return found
