"""The connector interface every connection type implements.

A connector is built from a validated ``connection_config`` model and the decrypted
``authentication_config``. It answers three questions:

* ``check()``: can the source be reached right now? (raises a ConnectorError if not)
* ``discover()``: which fields, of which kinds, with which sample values?
* ``read(request)``: the records, as batches; each batch carries the state to resume from.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from factorysync.settings import Settings

# Arrow batches on columnar reads hold this many times ``batch_size`` rows (50,000 by
# default): per-batch work (one COPY, one executemany, one compute call per column) is
# then noise, and a batch stays a few MB.
COLUMNAR_BATCH_FACTOR = 10


@dataclass
class ConnectorContext:
    source_id: str
    settings: Settings
    batch_size: int = 5000

    @property
    def columnar_batch_size(self) -> int:
        """Rows per Arrow batch: whole columns are cheap per row, so they batch larger."""
        return self.batch_size * COLUMNAR_BATCH_FACTOR


@dataclass
class ReadRequest:
    """What the engine wants from one read."""

    # The connector's own state after the last successful run (e.g. per-file markers).
    state: dict[str, Any] = field(default_factory=dict)
    # Where the records sit in a document or response (dot path), if not at the top.
    records_path: str | None = None
    # "full": the whole snapshot; "incremental": what changed since ``state``/``cursor_value``.
    strategy: str = "full"
    # Source path of the incremental cursor and the stored cursor value: a connector that
    # can filter at the source (SQL ``WHERE cursor >= :value``) should; the engine
    # filters again anyway, so a connector may also return everything.
    cursor_path: str | None = None
    cursor_value: Any = None
    # The engine takes Arrow record batches (``Batch.arrow``) for this read: a connector
    # that can produce them (CSV, NDJSON, databases) should, and may always yield rows.
    columnar: bool = False


@dataclass
class Batch:
    records: list[Any]
    # The connector state to store once this batch is committed (cumulative: the state
    # of the last batch of a run replaces the stored one). None: nothing to store.
    state: dict[str, Any] | None = None
    # Where the records came from (a file path, a page), for error messages.
    origin: str = ""
    # The document around the records, so the API can serve them in the source's own
    # shape: {"shape": "list" | "object" | "wrapped", "records_key": ..., "extra": {...}}.
    envelope: dict[str, Any] | None = None
    # True when batches arrive in cursor order (e.g. SQL ``ORDER BY cursor``): the engine
    # may then checkpoint the cursor after each batch instead of only at the end.
    cursor_ordered: bool = False
    # The records as one Arrow record batch instead of ``records`` (columnar reads only).
    arrow: Any = None
    # Source records the connector could not parse (a ragged CSV line …): each is
    # (raw record, [reasons]); the engine quarantines and counts them as rejected.
    rejected: list[tuple[Any, list[str]]] = field(default_factory=list)
    # The connector already chose these records as new or changed (e.g. files that
    # arrived since the last run): the engine does not filter them by the cursor again.
    prefiltered: bool = False


@dataclass
class CheckResult:
    ok: bool
    message: str
    latency_ms: float


@dataclass
class FieldInfo:
    name: str
    kind: str | None
    samples: list[Any]
    nullable: bool = False
    # Timestamps without a time zone: read in the connection's ``timezone``.
    naive: bool = False


class Connector(ABC):
    """Base of every connection type."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    # Whether read() yields Arrow batches when ReadRequest.columnar asks for them.
    columnar: ClassVar[bool] = False

    def __init__(self, config: BaseModel, auth: dict[str, Any], context: ConnectorContext):
        self.config = config
        self.auth = auth
        self.context = context

    @property
    def timezone(self) -> str:
        """The IANA zone naive timestamps of this connection are read in: its
        ``connection_config.timezone``, else UTC (the plant zone is for display only)."""
        return getattr(self.config, "timezone", None) or "UTC"

    def check(self) -> CheckResult:
        started = time.perf_counter()
        message = self._check()
        return CheckResult(True, message, (time.perf_counter() - started) * 1000)

    @abstractmethod
    def _check(self) -> str:
        """Raise a ConnectorError when the source cannot be used; return a short summary."""

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        records: list[Any] = []
        for batch in self.read(ReadRequest(records_path=records_path)):
            records.extend(batch.records[: limit - len(records)])
            if len(records) >= limit:
                break
        return describe_records(records)

    @abstractmethod
    def read(self, request: ReadRequest) -> Iterator[Batch]:
        """Yield record batches for ``request``."""


def describe_records(records: list[Any]) -> list[FieldInfo]:
    """Fields of some sample records: kind, up to 3 sample values, whether ever empty."""
    from factorysync.store.targets import infer_kind, merge_kinds

    fields: dict[str, FieldInfo] = {}
    for seen, record in enumerate(records):
        if not isinstance(record, dict):
            record = {"value": record}
        for name, value in record.items():
            info = fields.setdefault(name, FieldInfo(name, None, [], nullable=seen > 0))
            info.kind = merge_kinds(info.kind, infer_kind(value))
            if value is None:
                info.nullable = True
            elif len(info.samples) < 3 and value not in info.samples:
                info.samples.append(value)
        for name, info in fields.items():
            if name not in record:
                info.nullable = True
    return list(fields.values())
