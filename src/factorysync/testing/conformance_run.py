"""One run of the conformance suite: the rows written to the medium so far, connectors
built and read as the engine builds and reads them, and the checks every step makes on
the rows it gets back. The steps themselves are in :mod:`.conformance_polled` and
:mod:`.conformance_streams`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from factorysync.connectors.base import Connector, ConnectorContext, ReadRequest
from factorysync.connectors.registry import build_connector
from factorysync.settings import Settings
from factorysync.testing.conformance_medium import ConformanceError, Medium, Row, Sample

SHOWN = 8  # keys named in a message before "…"


class Run:
    """One run of the suite: the medium, the rows written to it so far, and the reads
    of connectors built as runs build them."""

    def __init__(
        self,
        medium: Medium,
        settings: Settings | None,
        make_connector: Callable[[], Connector] | None,
        sample: Sample,
        batch_size: int,
        patience: float,
    ) -> None:
        self.medium = medium
        self.sample = sample
        self.patience = patience
        self.context = ConnectorContext("conformance", settings or Settings(), batch_size)
        self.make = make_connector or self.build
        self.written: dict[Any, Row] = {}
        self.next = sample.first

    # -- plumbing ------------------------------------------------------------------------
    def build(self) -> Connector:
        """A connector of the medium, built through the registry as runs build one."""
        m = self.medium
        return build_connector(m.connection_type, m.config, m.auth, self.context)

    def fail(self, step: str, problem: str) -> ConformanceError:
        return ConformanceError(self.medium.connection_type, step, problem)

    def write(self, count: int) -> list[Row]:
        rows = [self.sample.row(n) for n in range(self.next, self.next + count)]
        self.next += count
        if rows:
            self.medium.write(rows)
        self.written.update((row[self.sample.key], row) for row in rows)
        return rows

    def keys(self, keys: Iterable[Any]) -> str:
        found = list(keys)
        try:
            found.sort()
        except TypeError:
            found.sort(key=repr)
        shown = ", ".join(map(repr, found[:SHOWN]))
        more = f" … ({len(found)} in all)" if len(found) > SHOWN else ""
        return f"{self.sample.key} {shown}{more}"

    def newest(self) -> Any:
        return max(row[self.sample.cursor] for row in self.written.values())

    # -- rows ----------------------------------------------------------------------------
    def row(self, step: str, record: Any, *, decode: bool = True) -> Row:
        """The written row ``record`` carries (``Medium.row_of``, unless not ``decode``;
        else the record itself)."""
        try:
            row = self.medium.row_of(record) if decode and self.medium.row_of else record
        except Exception as exc:
            raise self.fail(step, f"no row found in the record {record!r}: {exc!r}") from exc
        if not isinstance(row, dict) or self.sample.key not in row:
            raise self.fail(step, f"the record {record!r} has no {self.sample.key!r}")
        return row

    def known(self, step: str, rows: list[Row], what: str, *, repeats: bool = False) -> set[Any]:
        """The keys of ``rows``, each a row of the medium as written (once, unless
        ``repeats`` are allowed)."""
        seen: Counter[Any] = Counter()
        for row in rows:
            key = row[self.sample.key]
            written = self.written.get(key)
            if written is None:
                raise self.fail(step, f"{what} returned a row the medium does not hold: {row!r}")
            if row != written:
                raise self.fail(step, f"{what} returned {row!r}; it was written as {written!r}")
            seen[key] += 1
        twice = [key for key, count in seen.items() if count > 1]
        if twice and not repeats:
            raise self.fail(step, f"{what} returned {self.keys(twice)} more than once")
        return set(seen)

    def every(self, step: str, rows: list[Row], what: str) -> None:
        missing = set(self.written) - self.known(step, rows, what)
        if missing:
            raise self.fail(step, f"{what} did not return {self.keys(missing)}")

    def read(self, step: str, request: ReadRequest) -> tuple[list[Row], dict[str, Any] | None]:
        """The rows of one read by a new connector, and the last state its batches carry
        (as stored)."""
        connector = self.make()
        size, columnar_size = connector.context.batch_size, connector.context.columnar_batch_size
        records: list[Any] = []
        state = None
        for batch in connector.read(request):
            if batch.rejected:
                reason = "; ".join(batch.rejected[0][1])
                raise self.fail(step, f"it refused {len(batch.rejected)} record(s): {reason}")
            if batch.arrow is not None:
                if not request.columnar:
                    raise self.fail(step, "an Arrow batch on a read that did not ask for one")
                if batch.records:
                    raise self.fail(step, "a batch with records and an Arrow batch at once")
                if batch.arrow.num_rows > columnar_size:
                    raise self.fail(
                        step,
                        f"an Arrow batch of {batch.arrow.num_rows} rows (at most {columnar_size})",
                    )
                records += batch.arrow.to_pylist()
            else:
                if len(batch.records) > size:
                    raise self.fail(
                        step, f"a batch of {len(batch.records)} records (batch_size is {size})"
                    )
                records += batch.records
            if batch.state is not None:
                state = batch.state
        return [self.row(step, record) for record in records], self.stored(step, state)

    def stored(self, step: str, state: Any) -> dict[str, Any] | None:
        """``state`` as the next run gets it back from the store (a JSON column)."""
        if state is None:
            return None
        try:
            kept = json.loads(json.dumps(state))
        except (TypeError, ValueError) as exc:
            raise self.fail(step, f"its state {state!r} cannot be stored as JSON: {exc}") from None
        if not isinstance(kept, dict):
            raise self.fail(step, f"its state {state!r} is not a mapping")
        return kept
