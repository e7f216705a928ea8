"""Request and response models: Create / Update / Public per resource.

A source is created and changed with the YAML declaration's own shape (``SourceDecl``,
published in the OpenAPI document as ``SourceCreate`` and, all fields optional,
``SourceUpdate``); :func:`factorysync.intake.parse_source` validates it, so the API, the
CLI's ``apply`` and the console report the same problems.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    """Rows of our tables: columns added later pass through."""

    model_config = ConfigDict(extra="allow")


class Problem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorPublic(BaseModel):
    detail: str | list[Problem]


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    store: Literal["ok", "unreachable"]


# -- sources -------------------------------------------------------------------------
class CadencePublic(BaseModel):
    kind: Literal["interval", "cron", "subscription", "push"] = Field(
        description="interval and cron: run by the scheduler; subscription (MQTT, OPC UA): "
        "continuous; push: written when records are posted"
    )
    seconds: float | None = Field(description="Seconds between runs (interval only)")
    set_by: str = Field(
        description="What in the declaration sets it, e.g. 'sync_frequency daily', "
        "'refresh_interval', 'schedule', 'default'"
    )
    text: str = Field(description="e.g. 'every 24 h (sync_frequency daily)'")
    schedule: str | None = Field(default=None, description="The cron expression (cron only)")


class LivePublic(BaseModel):
    """What a subscription or push source is doing (it has no next run)."""

    state: Literal["receiving", "quiet", "waiting", "error", "stopped"] = Field(
        description="receiving: data within the last minute; quiet: none since; waiting: "
        "none ever; error: the connection or the store failed (see last_error); stopped: "
        "inactive or in maintenance"
    )
    last_message_at: datetime | None = Field(
        description="When its latest data was committed, or arrived in the local spool"
    )
    last_message_age_s: float | None
    records_last_minute: int = Field(
        description="Records in the last minute (from the history windows: an estimate)"
    )
    messages_per_minute: int = Field(
        default=0,
        description="Messages in the last minute: records_last_minute plus the messages "
        "that went to the local spool meanwhile",
    )
    spool_depth: int = Field(
        default=0,
        description="Messages waiting in the local spools (of the host serving this) for "
        "the store to take them",
    )
    subscribed_since: datetime | None = Field(
        default=None,
        description="When the subscription (MQTT broker, OPC UA server) last came up; "
        "none for push sources and while it is down",
    )


class SourceSummary(Open):
    id: int
    source_id: str
    name: str
    description: str | None = None
    source_type: str
    connection_type: str
    status: str
    priority: int
    refresh_interval: int
    last_sync: datetime | None = None
    next_sync: datetime | None = None
    error_count: int
    last_error: str | None = None
    created_by: str | None = None
    category: str | None = None
    site: str = Field(description="The site (plant) the source belongs to")
    legacy_id: str | None = None
    created_at: datetime
    updated_at: datetime
    cadence: CadencePublic = Field(description="When the source runs, and why")
    failing: bool = Field(
        description="Active, and its last run failed (the circuit opens, status 'error', "
        "after 5 failures in a row)"
    )
    consecutive_failures: int = Field(description="Failed runs in a row (error_count)")
    live: LivePublic | None = Field(
        default=None, description="Subscription and push sources: their live state"
    )


class ConnectionPublic(Open):
    id: int
    connection_name: str
    connection_type: str
    connection_config: dict[str, Any]
    authentication_config: dict[str, str] = Field(
        description='Write-only: every value is shown as "***".'
    )
    is_primary: bool
    is_backup: bool
    status: str


class MappingPublic(Open):
    id: int
    target_table: str
    mapping_config: dict[str, Any]
    sync_strategy: str
    sync_frequency: str | None = None
    data_retention_days: int | None = None
    is_active: bool


class SourcePublic(SourceSummary):
    connections: list[ConnectionPublic]
    mappings: list[MappingPublic]


class ConnectionCheck(BaseModel):
    connection_name: str
    ok: bool
    message: str
    latency_ms: float


class TestPublic(BaseModel):
    source_id: str
    ok: bool
    connections: list[ConnectionCheck]


class SyncAccepted(BaseModel):
    run_id: int
    source_id: str
    sync_status: Literal["running"] = "running"
    url: str = Field(description="Where the run's progress and outcome can be read.")


class MappingReset(BaseModel):
    cursor: Any = Field(
        description="The cursor removed (as stored: ISO text for a time), null if none."
    )
    connector_state: bool = Field(description="Whether connector state was removed.")


class ResetPublic(BaseModel):
    source_id: str
    reset_by: str
    mappings: dict[str, MappingReset] = Field(
        description="Per target table of the source: what the reset removed."
    )
    stream: MappingReset | None = Field(None, description="A streaming source's position")


# -- source lifecycle: delete with its rows, duplicate ----------------------------------
class TableDropped(BaseModel):
    rows_deleted: int = Field(description="Rows of the source removed from the table.")
    table_dropped: bool = Field(
        description="Whether the table was dropped (no other source maps to it, no row left)."
    )


class DeletePublic(BaseModel):
    source_id: str
    deleted_by: str
    drop_data: bool
    rows_deleted: int
    tables: dict[str, TableDropped] = Field(
        description="Per target table of the source: its rows removed (drop_data only)."
    )
    quarantine_removed: int
    alerts_resolved: int


class SourceDuplicate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_id: str = Field(min_length=1, max_length=100, description="The copy's source_id.")
    name: str | None = Field(
        default=None, max_length=255, description='The copy\'s name (default: "<name> (copy)").'
    )


class RunPublic(Open):
    id: int
    source_id: str
    sync_type: str
    sync_status: str
    trigger: str | None = None
    connection_name: str | None = None
    records_processed: int
    records_inserted: int
    records_updated: int
    records_deleted: int
    records_rejected: int
    sync_duration_ms: int | None = None
    error_message: str | None = None
    sync_started_at: datetime
    sync_completed_at: datetime | None = None
    worker: str | None = None
    details: dict[str, Any] | None = None


class TemplatePublic(Open):
    id: int
    template_name: str
    display_name: str
    description: str | None = None
    source_type: str
    connection_type: str
    connection_config: dict[str, Any]
    authentication_config: dict[str, str]
    mapping_config: dict[str, Any]
    is_predefined: bool


class WorkerPublic(Open):
    worker_id: str = Field(description="host:pid:name")
    host: str
    status: Literal["alive", "stopped", "dead"] = Field(
        description="dead: no heartbeat for a lease (FACTORYSYNC_LEASE_S)"
    )
    running: int = Field(description="Runs in progress")
    max_concurrent: int
    leases: int = Field(description="Sources leased (runs and realtime subscriptions)")
    heartbeat_at: datetime


class ForwardedTablePublic(Open):
    table: str
    lag_messages: int = Field(description="Messages of this site and table waiting on the stream")
    lag_seconds: float
    last_seq: int | None = Field(description="The last applied stream sequence")
    last_published_at: datetime | None = Field(
        description="When the plant published the last applied message"
    )
    rows_applied: int
    messages_applied: int
    messages_rejected: int = Field(description="Messages that could not be applied")
    last_error: str | None = Field(description="Why the last rejected message was rejected")


class ForwardLagPublic(Open):
    site: str
    lag_messages: int = Field(
        description="Messages of the site on the stream not applied yet (as of checked_at)"
    )
    lag_seconds: float = Field(
        description="While messages wait: seconds since the last applied message was "
        "published; 0 when none waits"
    )
    last_published_at: datetime | None
    checked_at: datetime | None = Field(description="When the central ingest counted them")
    rows_applied: int
    messages_rejected: int
    tables: list[ForwardedTablePublic]


class FailingPublic(BaseModel):
    source_id: str
    consecutive_failures: int
    last_error: str | None
    last_sync: datetime | None = Field(description="The last successful sync")


class RealtimePublic(LivePublic):
    source_id: str
    connection_type: str


class ForwardingPublic(BaseModel):
    enabled: bool = Field(description="FACTORYSYNC_FORWARD_URL is set")
    url: str | None = Field(description="The plant's NATS server, credentials masked")
    stream: str
    tables: str = Field(description="Forwarded target tables (`*`: all)")
    site: str
    outbox_depth: int = Field(description="Outbox entries not yet acknowledged by the stream")
    oldest_entry_age_s: float = Field(description="Age of the oldest entry (0: none waits)")
    publisher_running: bool = Field(description="A publisher saved its state in the last 20 s")
    publisher: str | None = Field(None, description="The process holding the outbox lease")
    connected: bool
    last_error: str | None
    last_error_at: str | None
    last_published_at: str | None


class StatusPublic(Open):
    store: str
    site: str | None = Field(default=None, description="The site asked for (?site=), if any")
    sources: int
    by_status: dict[str, int]
    by_site: dict[str, int] = Field(
        default_factory=dict, description="Sources per site (every site, whatever ?site= says)"
    )
    failing: int = Field(description="Active sources whose last run failed")
    failing_sources: list[FailingPublic]
    runs_in_progress: int
    scheduler_lag_s: float = Field(
        description="How late the most overdue polled source is (subscription and push "
        "sources have no schedule; sources being run do not count)"
    )
    realtime: list[RealtimePublic] = Field(
        description="Subscription and push sources (active or error) and their live state"
    )
    runs_last_24h: dict[str, int]
    workers: list[WorkerPublic] = Field(
        default_factory=list,
        description="Schedulers seen within the last hour, alive or not (PostgreSQL)",
    )
    forward_lag: list[ForwardLagPublic] = Field(
        default_factory=list,
        description="Central store: how far behind each site's forwarded changes are",
    )
    forwarding: ForwardingPublic | None = Field(
        default=None,
        description="Plant: changes waiting in the outbox and the publisher (None: off)",
    )


class ShiftPublic(BaseModel):
    name: str
    start: str = Field(description="HH:MM in the site's time zone")
    end: str = Field(description="HH:MM; before start: the shift ends the next day")
    days: list[str] | None = Field(default=None, description="Weekdays it starts on; all if null")


class SitePublic(BaseModel):
    name: str
    time_zone: str | None = Field(
        description="IANA zone: default for its sources' naive timestamps; null: UTC"
    )
    description: str | None = None
    shifts: list[ShiftPublic]
    sources: int = Field(description="Sources of the site")
    created_at: datetime | None = None
    updated_at: datetime | None = None
    forward_lag: ForwardLagPublic | None = Field(
        default=None,
        description="Central store: how far behind the site's forwarded changes are",
    )


class ShiftAtPublic(BaseModel):
    site: str
    time_zone: str | None
    at: datetime = Field(description="The instant asked about, in UTC")
    local_time: str = Field(description="The instant as the site's wall-clock time (ISO)")
    shift: ShiftPublic | None = Field(description="The shift running then; null between shifts")
    started_at: str | None = Field(description="When that run of the shift began (site time)")


# -- data ----------------------------------------------------------------------------
class IngestAnswer(BaseModel):
    source_id: str
    received: int = Field(description="Records in the request")
    stored: int = Field(description="Records written (new or changed rows, or unchanged)")
    rejected: int = Field(description="Records refused by the mapping or validation rules")
    reasons: list[str] = Field(description="Why records were refused (the first 20)")
    run_id: int | None = Field(description="The history window the records were counted in")
    spooled: int = Field(
        default=0,
        description="Records kept in the local spool because the store is unreachable: "
        "they are written (mapped, validated, counted) once it is back",
    )


class DataPage(BaseModel):
    table: str
    items: list[dict[str, Any]]
    limit: int
    offset: int
    has_more: bool
    next_after: str | None = Field(
        description="Pass as 'after' for the next page (keyset pagination); null on the last."
    )


class LegacyEntry(BaseModel):
    """One entry of the front end's ``default_source_data``, plus where its data is now."""

    id: int | str
    name: str
    type: str
    fileName: str | None  # the front end's own key names
    filePath: str | None
    url: str
