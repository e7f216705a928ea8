"""Registry, history, state and log tables. Column names follow the product design (DESIGN §2).

Target tables (``production_data`` …) are not declared here: they are created and evolved
from each mapping by :mod:`factorysync.store.targets`.
"""

from __future__ import annotations

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
    text,
)

from factorysync.store.types import JSONType, UTCDateTime, utcnow

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

SOURCE_TYPES = (
    "json", "csv", "excel", "database", "api", "artisan", "command", "mqtt", "opcua", "push"
)  # fmt: skip
CONNECTION_TYPES = ("file", "database", "api", "artisan", "command", "mqtt", "opcua", "push")
SOURCE_STATUSES = ("active", "inactive", "error", "maintenance")
SYNC_STRATEGIES = ("full", "incremental", "realtime")
SYNC_FREQUENCIES = ("realtime", "minute", "hourly", "daily")
RUN_STATUSES = ("running", "success", "failed", "partial")
ROLES = ("admin", "operator", "viewer")


def _timestamps() -> list[Column]:
    return [
        Column("created_at", UTCDateTime, nullable=False, default=utcnow),
        Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    ]


data_source_registry = Table(
    "data_source_registry",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source_id", String(100), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("source_type", String(32), nullable=False),
    Column("connection_type", String(32), nullable=False),
    Column("status", String(16), nullable=False, default="active"),
    Column("priority", Integer, nullable=False, default=2),
    Column("refresh_interval", Integer, nullable=False, default=300),
    # Cron expression in the plant's time zone; when set it replaces refresh_interval.
    Column("schedule", String(100)),
    Column("last_sync", UTCDateTime),
    Column("next_sync", UTCDateTime),
    Column("error_count", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_by", String(100)),
    Column("category", String(64)),
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
    Column(
        "source_id",
        String(100),
        ForeignKey("data_source_registry.source_id", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    ),
    Column("connection_name", String(100), nullable=False),
    Column("connection_type", String(32), nullable=False),
    Column("connection_config", JSONType, nullable=False, default=dict),
    # Every value encrypted on its own (factorysync.security.secrets); keys stay readable.
    Column("authentication_config", JSONType, nullable=False, default=dict),
    Column("is_primary", Boolean, nullable=False, default=False),
    Column("is_backup", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False, default="active"),
    Column("position", Integer, nullable=False, default=0),
    *_timestamps(),
    UniqueConstraint("source_id", "connection_name", name="uq_connection_source_name"),
)

data_source_mappings = Table(
    "data_source_mappings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "source_id",
        String(100),
        ForeignKey("data_source_registry.source_id", ondelete="CASCADE", onupdate="CASCADE"),
        nullable=False,
    ),
    Column("target_table", String(63), nullable=False),
    Column("mapping_config", JSONType, nullable=False, default=dict),
    Column("sync_strategy", String(16), nullable=False, default="full"),
    Column("sync_frequency", String(16)),
    Column("data_retention_days", Integer),
    Column("is_active", Boolean, nullable=False, default=True),
    *_timestamps(),
    UniqueConstraint("source_id", "target_table", name="uq_mapping_source_target"),
)

data_source_sync_history = Table(
    "data_source_sync_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    # No foreign key: history outlives a removed source.
    Column("source_id", String(100), nullable=False),
    Column("sync_type", String(16), nullable=False),
    Column("sync_status", String(16), nullable=False, default="running"),
    Column("trigger", String(32)),
    Column("connection_name", String(100)),
    Column("records_processed", BigInteger, nullable=False, default=0),
    Column("records_inserted", BigInteger, nullable=False, default=0),
    Column("records_updated", BigInteger, nullable=False, default=0),
    Column("records_deleted", BigInteger, nullable=False, default=0),
    Column("records_rejected", BigInteger, nullable=False, default=0),
    Column("sync_duration_ms", BigInteger),
    Column("error_message", Text),
    Column("sync_started_at", UTCDateTime, nullable=False, default=utcnow),
    Column("sync_completed_at", UTCDateTime),
    Column("worker", String(255)),
    Column("details", JSONType),
    Index("ix_sync_history_source_started", "source_id", "sync_started_at"),
    Index("ix_sync_history_status", "sync_status"),
)

data_source_templates = Table(
    "data_source_templates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("template_name", String(100), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False),
    Column("description", Text),
    Column("source_type", String(32), nullable=False),
    Column("connection_type", String(32), nullable=False),
    Column("connection_config", JSONType, nullable=False, default=dict),
    Column("authentication_config", JSONType, nullable=False, default=dict),
    Column("mapping_config", JSONType, nullable=False, default=dict),
    Column("is_predefined", Boolean, nullable=False, default=False),
    Column("created_by", String(100)),
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
    *_timestamps(),
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

REGISTRY_TABLES = frozenset(metadata.tables)
