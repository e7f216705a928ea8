"""Registry, history, state and log tables. Column names follow the product design (DESIGN §2).

Target tables (``production_data`` …) are not declared here: they are created and evolved
from each mapping by :mod:`factorysync.store.targets`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    select,
    text,
    true,
)

from factorysync.config import REGISTRY_TABLES
from factorysync.store.types import JSONType, UTCDateTime, utcnow

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The original design's DDL (DESIGN §2) is the contract with the plant's other software
# (its Laravel back end, SQL reports, a DBA's scripts): its columns keep their names,
# types, nullability, defaults and keys, so a row it inserts with plain SQL is a valid
# source. Its defaults are database defaults (server_default) as well as ours.
#
# The child tables' ``source_id`` is the design's ``INTEGER REFERENCES
# data_source_registry(id)``. In Python that column is ``c.registry_id``: ``source_id`` in
# this package is the readable slug everywhere (the registry's own ``source_id``, and
# history's ``source_key`` column), so a comparison with a slug never meets an integer.
NOW = text("CURRENT_TIMESTAMP")


def _timestamps(*, updated: bool = True) -> list[Column[Any]]:
    found = [Column("created_at", UTCDateTime, default=utcnow, server_default=NOW)]
    if updated:
        found.append(
            Column("updated_at", UTCDateTime, default=utcnow, onupdate=utcnow, server_default=NOW)
        )
    return found


def _own_timestamps() -> list[Column[Any]]:
    """Timestamps of factorysync's own tables, always set."""
    return [
        Column("created_at", UTCDateTime, nullable=False, default=utcnow),
        Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    ]


def _registry_ref(ondelete: str) -> Column[Any]:
    return Column(
        "source_id",
        Integer,
        ForeignKey("data_source_registry.id", ondelete=ondelete),
        key="registry_id",
    )


def _created_by() -> Column[Any]:
    return Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL"))


def _registry_id_of_run(context: Any) -> int | None:
    """The registry id of the source a history row is written for (None once removed):
    every writer of history names the source by its slug."""
    slug = context.get_current_parameters().get("source_id")
    if slug is None:
        return None
    found = context.connection.execute(
        select(data_source_registry.c.id).where(data_source_registry.c.source_id == slug)
    ).scalar()
    return int(found) if found is not None else None


# A plant of the group (DESIGN §8): its name is used in NATS subject names
# (``factorysync.<site>.<table>``); its time zone is the default zone of its sources'
# naive timestamps and of the console's times; its shifts are a list of
# ``{name, start, end, days}`` (factorysync.config.sites).
sites = Table(
    "sites",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("time_zone", String(64)),
    Column("shifts", JSONType),
    Column("description", Text),
    *_timestamps(),
)

data_source_registry = Table(
    "data_source_registry",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", String(100), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("source_type", String(32), nullable=False),
    Column("connection_type", String(32), nullable=False),
    Column("status", String(16), default="active", server_default="active"),
    Column("priority", Integer, default=1, server_default="1"),
    Column("refresh_interval", Integer, default=300, server_default="300"),
    # Cron expression in the plant's time zone; when set it replaces refresh_interval.
    Column("schedule", String(100)),
    Column("last_sync", UTCDateTime),
    Column("next_sync", UTCDateTime),
    Column("error_count", Integer, default=0, server_default="0"),
    Column("last_error", Text),
    _created_by(),
    Column("category", String(64)),
    # The site (plant) the source belongs to; the database default names the site every
    # store has, for rows inserted with plain SQL.
    Column(
        "site",
        String(32),
        ForeignKey("sites.name", onupdate="CASCADE"),
        nullable=False,
        server_default="main",
        index=True,
    ),
    Column("legacy_id", String(64)),
    # Scale-out: the worker running this source and until when its claim holds.
    Column("lease_owner", String(255)),
    Column("lease_expires_at", UTCDateTime),
    # Grows in the same transaction as any change of the source's rows in its target
    # tables (runs, realtime flushes, retention): the API's cached pages compare it.
    Column("data_version", BigInteger, nullable=False, default=0, server_default="0"),
    *_timestamps(),
    Index("ix_data_source_registry_due", "status", "next_sync"),
)

data_source_connections = Table(
    "data_source_connections",
    metadata,
    Column("id", Integer, primary_key=True),
    _registry_ref("CASCADE"),
    Column("connection_name", String(100), nullable=False),
    Column("connection_type", String(32), nullable=False),
    Column("connection_config", JSONType, default=dict),
    # Every value encrypted on its own (factorysync.security.secrets); keys stay readable.
    Column("authentication_config", JSONType, default=dict),
    Column("is_primary", Boolean, default=False, server_default=false()),
    Column("is_backup", Boolean, default=False, server_default=false()),
    Column("status", String(16), default="active", server_default="active"),
    Column("position", Integer, nullable=False, default=0, server_default="0"),
    *_timestamps(),
    UniqueConstraint("registry_id", "connection_name", name="uq_connection_source_name"),
)

data_source_mappings = Table(
    "data_source_mappings",
    metadata,
    Column("id", Integer, primary_key=True),
    _registry_ref("CASCADE"),
    Column("target_table", String(63), nullable=False),
    Column("mapping_config", JSONType, default=dict),
    Column("sync_strategy", String(16), default="incremental", server_default="incremental"),
    Column("sync_frequency", String(16), default="hourly", server_default="hourly"),
    Column("data_retention_days", Integer, default=365, server_default="365"),
    Column("is_active", Boolean, default=True, server_default=true()),
    *_timestamps(),
    UniqueConstraint("registry_id", "target_table", name="uq_mapping_source_target"),
)

data_source_sync_history = Table(
    "data_source_sync_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    # History outlives a removed source: its registry id goes, its slug stays.
    Column(
        "source_id",
        Integer,
        ForeignKey("data_source_registry.id", ondelete="SET NULL"),
        key="registry_id",
        default=_registry_id_of_run,
    ),
    Column("source_key", String(100), key="source_id"),
    Column("sync_type", String(16), nullable=False),
    Column("sync_status", String(16), nullable=False, default="running"),
    Column("trigger", String(32)),
    Column("connection_name", String(100)),
    Column("records_processed", BigInteger, default=0, server_default="0"),
    Column("records_inserted", BigInteger, default=0, server_default="0"),
    Column("records_updated", BigInteger, default=0, server_default="0"),
    Column("records_deleted", BigInteger, default=0, server_default="0"),
    Column("records_rejected", BigInteger, nullable=False, default=0, server_default="0"),
    Column("sync_duration_ms", BigInteger),
    Column("error_message", Text),
    Column("sync_started_at", UTCDateTime, nullable=False, default=utcnow),
    Column("sync_completed_at", UTCDateTime),
    Column("worker", String(255)),
    Column("details", JSONType),
    *_timestamps(updated=False),
    Index("ix_sync_history_source_started", "source_id", "sync_started_at"),
    Index("ix_sync_history_status", "sync_status"),
    Index("ix_sync_history_started", "sync_started_at"),
    Index("ix_sync_history_registry", "registry_id"),
)

# A template: its connection type (template_type) and, in template_config, the source
# type and the connection, authentication and mapping configs a new source starts from
# (factorysync.store.templates).
data_source_templates = Table(
    "data_source_templates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("template_name", String(100), nullable=False, unique=True),
    Column("template_type", String(32), nullable=False),
    Column("template_config", JSONType),
    Column("is_predefined", Boolean, default=False, server_default=false()),
    _created_by(),
    Column("display_name", String(255)),
    Column("description", Text),
    *_timestamps(),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("email", String(255)),
    Column("full_name", String(255)),
    Column("role", String(16), nullable=False, default="viewer"),
    Column("password_hash", String(255)),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("language", String(8)),
    Column("last_login", UTCDateTime),
    *_own_timestamps(),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100)),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("token_prefix", String(16), nullable=False),
    Column("scopes", JSONType),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
)

infolog = Table(
    "infolog",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("level", String(8), nullable=False),
    Column("source_id", String(100)),
    Column("run_id", BigInteger),
    Column("event", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", JSONType),
    Index("ix_infolog_created", "created_at"),
    Index("ix_infolog_source", "source_id", "created_at"),
)

data_source_sync_state = Table(
    "data_source_sync_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", String(100), nullable=False),
    Column("mapping_id", Integer, nullable=False, default=0),
    Column("state_key", String(512), nullable=False),
    Column("state", JSONType, nullable=False),
    Column("run_id", BigInteger),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    UniqueConstraint("source_id", "mapping_id", "state_key", name="uq_sync_state_key"),
)

# One entry per bad record, source and target table (factorysync.engine.quality): a
# record refused again only counts up times_seen and moves last_seen, so the table grows
# with the distinct bad records, not with the runs that meet them.
data_source_quarantine = Table(
    "data_source_quarantine",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("source_id", String(100), nullable=False),
    Column("target_table", String(63), nullable=False, default="", server_default=""),
    # Hash of the record's content (its JSON with sorted keys).
    Column("content_hash", String(64), nullable=False),
    Column("record", JSONType, nullable=False),
    # What the record is: "unparsed" (the connector could not read it: no key known),
    # "source" (as read, refused before explode) or "record" (refused by mapping or rules).
    Column("stage", String(16), nullable=False, default="record", server_default="record"),
    # Why the latest run refused it.
    Column("reasons", JSONType, nullable=False),
    # The latest run (or realtime window) that refused it.
    Column("run_id", BigInteger),
    Column("first_seen", UTCDateTime, nullable=False, default=utcnow),
    Column("last_seen", UTCDateTime, nullable=False, default=utcnow),
    Column("times_seen", BigInteger, nullable=False, default=1, server_default="1"),
    # A full sync left the target's previous row of this record's key as it was.
    Column("kept_previous", Boolean, nullable=False, default=False, server_default=false()),
    UniqueConstraint("source_id", "target_table", "content_hash", name="uq_quarantine_record"),
    Index("ix_quarantine_last_seen", "source_id", "last_seen"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", String(100)),
    Column("rule", String(64), nullable=False),
    Column("severity", String(16), nullable=False, default="warning"),
    Column("state", String(16), nullable=False, default="open"),
    Column("message", Text, nullable=False),
    Column("occurrences", Integer, nullable=False, default=1),
    Column("opened_at", UTCDateTime, nullable=False, default=utcnow),
    Column("last_seen_at", UTCDateTime, nullable=False, default=utcnow),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_by", String(100)),
    Column("resolved_at", UTCDateTime),
    Column("details", JSONType),
    # The last state announced on the alert channels (open, resolved), for delivery.
    Column("notified_state", String(16)),
    Column("notified_at", UTCDateTime),
    Index("ix_alerts_state", "state", "source_id", "rule"),
    # At most one alert that is not resolved per source and rule (de-duplication).
    Index(
        "uq_alerts_active",
        "source_id",
        "rule",
        unique=True,
        sqlite_where=text("state != 'resolved'"),
        postgresql_where=text("state != 'resolved'"),
    ),
)

workers = Table(
    "workers",
    metadata,
    Column("worker_id", String(255), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("max_concurrent", Integer, nullable=False),
    Column("running", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False, default="alive"),
    Column("started_at", UTCDateTime, nullable=False, default=utcnow),
    Column("heartbeat_at", UTCDateTime, nullable=False, default=utcnow),
)

# Changes of forwarded target tables not yet published to the central store
# (factorysync.forward): written in the transaction of the change, deleted once the
# central stream acknowledged them. op "rows": the rows of (table_name, source_id) that
# carry run_id; op "delete": ``keys`` is a JSON list of deleted key-value lists.
forward_outbox = Table(
    "forward_outbox",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("table_name", String(63), nullable=False),
    Column("source_id", String(100), nullable=False),
    Column("run_id", BigInteger, nullable=False),
    Column("op", String(8), nullable=False),
    Column("keys", Text),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow, server_default=NOW),
    sqlite_autoincrement=True,
)

# What the central store applied of each site's forwarded tables (factorysync.forward
# central ingest): the last applied stream sequence and publication time, counters, and
# the messages still waiting on the stream as last counted.
central_sites = Table(
    "central_sites",
    metadata,
    Column("site", String(32), primary_key=True),
    Column("table_name", String(63), primary_key=True),
    Column("last_seq", BigInteger),
    Column("last_published_at", UTCDateTime),
    Column("rows_applied", BigInteger, nullable=False, default=0, server_default="0"),
    Column("messages_applied", BigInteger, nullable=False, default=0, server_default="0"),
    Column("messages_rejected", BigInteger, nullable=False, default=0, server_default="0"),
    Column("last_error", Text),
    Column("pending_messages", BigInteger, nullable=False, default=0, server_default="0"),
    Column("pending_checked_at", UTCDateTime),
    *_own_timestamps(),
)

# Declarations refuse these names as target tables (factorysync.config.REGISTRY_TABLES):
# the list there is this schema's.
if frozenset(metadata.tables) != REGISTRY_TABLES:
    raise RuntimeError(f"config.REGISTRY_TABLES differs from the schema: {sorted(metadata.tables)}")

# A history row as callers read it: the source named by its slug (``source_id``), the
# registry id left out (it is NULL once the source is removed).
HISTORY_ROW = tuple(
    c.label("source_id") if c.key == "source_id" else c
    for c in data_source_sync_history.c
    if c.key != "registry_id"
)
