"""The connector interface every connection type implements.

A connector is built from a validated ``connection_config`` model and the decrypted
``authentication_config``. It answers three questions:

* ``check()``: can the source be reached right now? (raises a ConnectorError if not)
* ``discover()``: which fields, of which kinds, with which sample values?
* ``read(request)``: the records, as batches; each batch carries the state to resume from.

A connection type also describes itself on its class, and :mod:`the registry
<factorysync.connectors.registry>` reads nothing else: the source types it serves (with
their console label, icon and colour), its config model (whose field descriptions are the
console's help texts), predefined templates, the optional-dependency extra it needs, and
its capabilities:

* ``polls``: runs read it (the scheduler, ``source sync``);
* ``streams``: the realtime service calls ``subscribe(sink, stop)``, which hands messages
  to the sink until ``stop`` is set;
* ``pushes``: its records arrive at ``POST /api/ingest/{source_id}``;
* ``relays``: it can hand a whole read to the store's bulk path (``relay``).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Protocol

from pydantic import AfterValidator, BaseModel, Field

from factorysync.config import naive_zone
from factorysync.config.names import check_zone
from factorysync.errors import ConnectorFatal
from factorysync.kinds import infer_kind, merge_kinds
from factorysync.settings import Settings

# Arrow batches on columnar reads hold this many times ``batch_size`` rows (50,000 by
# default): per-batch work (one COPY, one executemany, one compute call per column) is
# then noise, and a batch stays a few MB.
COLUMNAR_BATCH_FACTOR = 10


# The ``timezone`` key of a connection config whose records may carry timestamps without
# an offset: an IANA name, checked when the source is saved (:func:`naive_zone_field`).
NaiveZone = Annotated[str | None, AfterValidator(check_zone)]


def naive_zone_field(of: str, more: str = "") -> Any:
    """The ``timezone`` field of a connection config: the zone of ``of`` (timestamps
    without a UTC offset); ``more`` ends its help text."""
    return Field(
        title="Time zone of naive timestamps",
        examples=["Asia/Jakarta"],
        default=None,
        description=f"IANA time zone, e.g. Asia/Jakarta, of {of}. Default: the time zone "
        f"of the source's site, else UTC.{' ' + more if more else ''}",
    )


@dataclass
class ConnectorContext:
    source_id: str
    settings: Settings
    batch_size: int = 5000
    # This process's stable name among workers (``factorysync worker --name``), for
    # streams that split their messages between workers (MQTT shared subscriptions).
    worker: str | None = None
    # The zone of the source's site: naive timestamps are read in it when the
    # connection_config names no timezone of its own.
    site_zone: str | None = None

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
    """A passed check (a failed one raises): its summary and how long it took."""

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


@dataclass(frozen=True)
class SourceKind:
    """A ``source_type`` a connection type serves, as the console shows it.

    ``default``: this connection type is the one a source of this type gets when its
    declaration names none. A type that serves a source type of another (an SFTP type
    serving ``csv``) lists it with ``default=False``; label, icon and colour then come
    from the default one."""

    name: str
    label: str = ""
    icon: str = ""  # two to four characters on a coloured badge
    # The badge colour, from the console's palette (console.css ``.tone-*``): teal, green,
    # forest, blue, violet, slate, orange, amber, rose, cyan, indigo, brown or grey.
    tone: str = "grey"
    default: bool = True
    # The connection_config a source of this type starts from: it picks the config model
    # of types with one per config (``{"file_type": "csv"}`` for csv files).
    preset: dict[str, Any] = field(default_factory=dict, hash=False)
    # One sentence on the console's type card; none: the first line of the class docstring.
    summary: str = ""


class Sink(Protocol):
    """Where a streaming connection hands its messages: the realtime service's writer.

    ``put`` queues one message (its records, or ``error`` saying why it has none; ``raw``
    is what quarantine keeps of a refused message; ``ack`` is called once the records are
    committed: to the store, or to the local spool while the store is unreachable) and
    blocks while too many wait. ``status`` records the stream's health: an error (the
    server is gone, refused the login …) or, with ``subscribed``, that the subscription
    is up. ``drain`` writes and acknowledges every message put so far; a
    stream whose acknowledgements need the live connection calls it before closing.

    ``event`` records something an engineer should see in the source's event log (a
    device declared dead, a rebirth asked for); ``gap`` records a time range in which the
    source could not be read (a device that did not answer), in the event log and in the
    history row of the window its next data lands in.

    A stream that resumes where it left off keeps a state with its records: ``put``'s
    ``state`` is the stream's whole state as of that message (JSON data, cumulative like
    :attr:`Batch.state`; None leaves it as it was), stored in the transaction that writes
    the message's records, so that stored state and stored rows never disagree.
    ``state()`` is the state stored with the last committed message ({} before any; a
    message in the local spool counts as committed): what a stream starts from when it
    subscribes, in this process or, after a restart or a handover, in another one. A
    state may lag behind the rows (a message put without one) but is never ahead of
    them, so what a stream reads again from it must merge by key.
    Streams that every worker runs at once (``stream_shared``) share one state: they
    should keep none."""

    def put(
        self,
        records: list[Any],
        *,
        raw: Any = None,
        error: str | None = None,
        ack: Callable[[], None] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None: ...

    def state(self) -> dict[str, Any]: ...

    def status(self, error: str | None, *, subscribed: str | None = None) -> None: ...

    def drain(self) -> None: ...

    def event(
        self,
        event: str,
        message: str,
        *,
        level: str = "info",
        details: dict[str, Any] | None = None,
    ) -> None: ...

    def gap(self, start: datetime, end: datetime, reason: str) -> None: ...


class Connector(ABC):
    """Base of every connection type."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    # Whether read() yields Arrow batches when ReadRequest.columnar asks for them.
    columnar: ClassVar[bool] = False

    # -- what the registry, the console and the docs read ----------------------------
    # The source types this connection type serves; none listed: one of its own name.
    source_types: ClassVar[tuple[SourceKind, ...]] = ()
    # Predefined templates (``data_source_templates`` rows without connection_type).
    templates: ClassVar[list[dict[str, Any]]] = []
    # The optional-dependency extra holding its driver: ``pip install 'factorysync[x]'``.
    extra: ClassVar[str | None] = None
    # Capabilities (see the module docstring).
    polls: ClassVar[bool] = True
    streams: ClassVar[bool] = False
    pushes: ClassVar[bool] = False
    relays: ClassVar[bool] = False

    @classmethod
    def unpolled_reason(cls, source_id: str) -> str:
        """Why runs do not read a source of this type (one that does not poll)."""
        return (
            f"source {source_id!r} is a realtime {cls.type_name} source: its rows arrive "
            "while 'factorysync run' (or a worker) holds it, not by one-off syncs"
        )

    # The ``authentication_config`` keys it takes: the console shows one password input
    # per key (more keys may still be given as free rows).
    auth_keys: ClassVar[tuple[str, ...]] = ()
    # ``connection_config`` values a test or discovery from the console uses for keys
    # left empty (an OPC UA server is browsed before any node is chosen).
    probe_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: BaseModel, auth: dict[str, Any], context: ConnectorContext):
        self.config = config
        self.auth = auth
        self.context = context

    @property
    def timezone(self) -> str:
        """The IANA zone naive timestamps of this connection are read in (see
        :func:`~factorysync.config.naive_zone`)."""
        return naive_zone(getattr(self.config, "timezone", None), self.context.site_zone)

    def check(self) -> CheckResult:
        started = time.perf_counter()
        message = self._check()
        return CheckResult(message, (time.perf_counter() - started) * 1000)

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

    def subscribe(self, sink: Sink, stop: threading.Event) -> None:
        """Hand messages to ``sink`` until ``stop`` is set, then return (streams only).

        The realtime service runs it in a thread of its own and drains the sink after
        it returns. Raising ConnectorRetriable (or returning before ``stop``) has it
        called again after a back-off; any other error stops the source until its
        declaration changes, with the reason in ``last_error``."""
        raise ConnectorFatal(
            f"source {self.context.source_id!r}: connection_type {self.type_name!r} does not stream"
        )

    @contextmanager
    def relay(self, request: ReadRequest) -> Iterator[Any]:
        """The relay capability (types with ``relays``): the whole read as a source the
        store's bulk path takes (:mod:`factorysync.engine.relay`), or None when this read
        cannot be relayed; the engine then reads batches as usual."""
        yield None

    def name_hint(self) -> str | None:
        """What the source is called where it lives (a table, a file, a topic), for a
        suggested target table; None when it has no such name."""
        for key in ("table", "file_path", "path", "topic", "url", "endpoint"):
            value = getattr(self.config, key, None)
            if isinstance(value, str) and value:
                return value
        topics = getattr(self.config, "topics", None)
        if isinstance(topics, list) and topics and isinstance(topics[0], str):
            return topics[0]
        return None

    def key_hint(self) -> list[str] | None:
        """The columns that identify a record, where the source can tell (a table's
        primary key or a unique column); None when it cannot."""
        return None

    @classmethod
    def stream_shared(cls, config: dict[str, Any]) -> bool:
        """Whether every worker runs this stream at once (unleased), splitting its
        messages between them, as an MQTT shared subscription does."""
        return False


def describe_records(records: list[Any]) -> list[FieldInfo]:
    """Fields of some sample records: kind, up to 3 sample values, whether ever empty."""
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
