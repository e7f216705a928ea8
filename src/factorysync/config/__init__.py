"""Source declarations: the YAML shape of DESIGN §3, as models.

Field names are the registry's own. The models check what a declaration says by itself
(names, slugs, one cadence: :mod:`factorysync.config.cadence`; mapping configs:
:mod:`factorysync.config.mapping`). Which source and connection types exist, the
connection type a source type gets by default and which types the scheduler runs are the
connector registry's: a declaration is validated with them in its validation context
(``context={"types": ...}``, a :class:`ConnectionTypes`), which
:mod:`factorysync.intake` supplies, together with the size budget and the check of each
``connection_config`` against its type. A declaration read back from the registry is
validated with ``context={"stored": True}`` as well, and taken as it is stored.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from factorysync.config.cadence import (
    DEFAULT_INTERVAL_S,
    cadence_problems,
    check_cron,
    frequency_of,
    interval_for,
)
from factorysync.config.mapping import MappingConfig
from factorysync.config.names import check_identifier
from factorysync.config.sites import check_site_name

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
# The registry's own tables (factorysync.store.schema defines them): no target table
# may take one of these names.
REGISTRY_TABLES = frozenset(
    {
        "alerts",
        "api_tokens",
        "central_sites",
        "data_source_connections",
        "data_source_mappings",
        "data_source_quarantine",
        "data_source_registry",
        "data_source_sync_history",
        "data_source_sync_state",
        "data_source_templates",
        "forward_outbox",
        "infolog",
        "sites",
        "users",
        "workers",
    }
)


class ConnectionTypes(Protocol):
    """The connection types a declaration is validated against (the connector
    registry's: :data:`factorysync.intake.REGISTERED_TYPES`)."""

    def check_source_type(self, value: str) -> str:
        """``value``, when a connection type serves it; else a pydantic error."""

    def check_connection_type(self, value: str) -> str:
        """``value``, when it names a connection type; else a pydantic error."""

    def default_connection_type(self, source_type: str) -> str:
        """The connection type of a (known) source type that declares none."""

    def scheduled(self, connection_type: str | None) -> bool:
        """Whether the scheduler runs sources of ``connection_type``."""


def connection_types(info: ValidationInfo) -> ConnectionTypes:
    """The connection types in a validation's context."""
    types = (info.context or {}).get("types")
    if types is None:
        raise TypeError(
            "a source declaration is validated against the connection types: "
            "validate it with factorysync.intake (context={'types': ...})"
        )
    return types  # type: ignore[no-any-return]


def naive_zone(own: object, site_zone: str | None) -> str:
    """The IANA zone naive timestamps of a connection are read in: its own ``timezone``
    (``connection_config.timezone``), else its site's zone, else UTC (the plant zone,
    FACTORYSYNC_TIMEZONE, is for display only). The one rule: batch syncs (through
    ``Connector.timezone``), realtime writers and quarantine replays all apply it."""
    return own if isinstance(own, str) and own else site_zone or "UTC"


class ConnectionDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection_name: str = Field(default="primary", min_length=1, max_length=100)
    connection_type: str | None = None
    connection_config: dict[str, Any] = Field(default_factory=dict)
    authentication_config: dict[str, Any] = Field(default_factory=dict)
    is_primary: bool = False
    is_backup: bool = False
    status: Literal["active", "inactive"] = "active"
    # The zone of the source's site, set on a declaration read from the registry: naive
    # timestamps are read in it when connection_config names no timezone of its own.
    _site_zone: str | None = PrivateAttr(default=None)

    @property
    def naive_zone(self) -> str:
        """The IANA zone naive timestamps of this connection are read in (see
        :func:`naive_zone`), told from the declaration alone: a realtime writer may have
        no connector."""
        return naive_zone(self.connection_config.get("timezone"), self._site_zone)

    @property
    def site_zone(self) -> str | None:
        return self._site_zone

    def in_site_zone(self, zone: str | None) -> ConnectionDecl:
        """This connection, its site's zone set (see :attr:`naive_zone`)."""
        self._site_zone = zone
        return self

    @field_validator("connection_type")
    @classmethod
    def _known_type(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else connection_types(info).check_connection_type(v)


class MappingDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_table: str
    mapping_config: MappingConfig = Field(default_factory=MappingConfig)
    sync_strategy: Literal["full", "incremental", "realtime"] = "incremental"
    sync_frequency: Literal["realtime", "minute", "hourly", "daily"] | None = "hourly"
    data_retention_days: int | None = Field(default=365, ge=1)
    is_active: bool = True

    @field_validator("target_table")
    @classmethod
    def _table(cls, v: str) -> str:
        check_identifier(v, "target_table")
        if v in REGISTRY_TABLES or v.startswith(("_fs_", "alembic", "sqlite_")):
            raise PydanticCustomError(
                "fs.reserved_table",
                "target_table {table} is reserved by factorysync",
                {"table": repr(v)},
            )
        return v

    @model_validator(mode="after")
    def _incremental_needs_cursor(self, info: ValidationInfo) -> MappingDecl:
        """The design's default strategy, ``incremental``, needs a cursor: a mapping that
        leaves the strategy out (or a stored one, e.g. inserted by plain SQL) without a
        ``cursor_field`` loads in full (left out of ``model_fields_set``, so that
        ``apply`` can say it chose). Declared explicitly, it is an error."""
        if self.sync_strategy == "incremental" and not self.mapping_config.cursor_field:
            declared = "sync_strategy" in self.model_fields_set
            if declared and not (info.context or {}).get("stored"):
                raise PydanticCustomError(
                    "fs.incremental_cursor",
                    "sync_strategy 'incremental' needs mapping_config.cursor_field",
                )
            self.sync_strategy = "full"
            self.model_fields_set.discard("sync_strategy")
        return self


class SourceDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_id: str
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    source_type: str
    connection_type: str | None = None
    status: Literal["active", "inactive", "error", "maintenance"] = "active"
    priority: int = Field(default=1, ge=1, le=3)
    refresh_interval: int = Field(
        default=DEFAULT_INTERVAL_S,
        ge=1,
        description="Seconds between runs. Left out, the mappings' sync_frequency sets it "
        "(realtime 5, minute 60, hourly 3600, daily 86400), else 300. Declared together with "
        "a sync_frequency, both must give the same cadence.",
    )
    schedule: str | None = Field(
        default=None,
        description="Cron (five fields, plant time zone); replaces refresh_interval and "
        "sync_frequency, which may then not be declared.",
    )
    category: str | None = None
    site: str | None = Field(
        default=None,
        description="The site (plant) of the source; left out: the process's site "
        "(FACTORYSYNC_SITE) for a new source, the stored one for an existing source.",
    )
    legacy_id: str | None = None
    created_by: str | None = None
    connections: list[ConnectionDecl] = Field(min_length=1)
    mappings: list[MappingDecl] = Field(min_length=1)

    @field_validator("source_id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SOURCE_ID.match(v):
            raise PydanticCustomError(
                "fs.bad_source_id",
                "source_id {source_id} must be a slug: lower-case letters, digits, '_', '-', "
                "'.', starting with a letter or digit, at most 100 characters",
                {"source_id": repr(v)},
            )
        return v

    @field_validator("site", mode="before")
    @classmethod
    def _site(cls, v: Any) -> Any:
        return None if v is None else check_site_name(v)

    @field_validator("source_type")
    @classmethod
    def _known_source_type(cls, v: str, info: ValidationInfo) -> str:
        return connection_types(info).check_source_type(v)

    @field_validator("connection_type")
    @classmethod
    def _known_connection_type(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else connection_types(info).check_connection_type(v)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        return check_cron(v) if v else None

    @field_validator("legacy_id", mode="before")
    @classmethod
    def _legacy_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> SourceDecl:
        default_type = self.connection_type or connection_types(info).default_connection_type(
            self.source_type
        )
        names = [c.connection_name for c in self.connections]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"connection_name repeated: {', '.join(dup)}")
        tables = [m.target_table for m in self.mappings]
        dup = sorted({t for t in tables if tables.count(t) > 1})
        if dup:
            raise ValueError(f"target_table repeated: {', '.join(dup)}")
        primaries = [c for c in self.connections if c.is_primary]
        if len(primaries) > 1:
            raise ValueError("more than one connection has is_primary: true")
        if not primaries:
            first = next((c for c in self.connections if not c.is_backup), self.connections[0])
            first.is_primary = True
        for conn in self.connections:
            if conn.connection_type is None:
                conn.connection_type = default_type
            if conn.is_primary and conn.is_backup:
                raise ValueError(f"connection {conn.connection_name!r} is both primary and backup")
        if self.connection_type is None:
            self.connection_type = next(c for c in self.connections if c.is_primary).connection_type
        return self

    @model_validator(mode="before")
    @classmethod
    def _interval_left_out(cls, data: Any) -> Any:
        # A null refresh_interval (an empty form field, a PATCH clearing it) is one not
        # declared: the cadence comes from sync_frequency or the default.
        if isinstance(data, dict) and data.get("refresh_interval", 0) is None:
            return {k: v for k, v in data.items() if k != "refresh_interval"}
        return data

    @model_validator(mode="after")
    def _one_cadence(self, info: ValidationInfo) -> SourceDecl:
        """One cadence per source (factorysync.config.cadence): conflicting declarations
        are refused; a refresh_interval left out becomes the one in effect. A stored
        source (``context={"stored": True}``) is taken as it is."""
        declared = self.refresh_interval_declared
        self._default_frequencies()
        if not (info.context or {}).get("stored"):
            problems = cadence_problems(
                refresh_interval=self.refresh_interval if declared else None,
                schedule=self.schedule,
                mappings=self.mappings,
                scheduled=connection_types(info).scheduled(self.primary().connection_type),
            )
            if problems:
                raise ValueError("; ".join(problems))
        if not declared:
            self.refresh_interval = interval_for(None, self.mappings)
            self.model_fields_set.discard("refresh_interval")
        return self

    def _default_frequencies(self) -> None:
        """A mapping that leaves ``sync_frequency`` out takes the declared cadence: none
        when the source declares a refresh_interval or a schedule, else the frequency its
        other mappings declare, else the design's default ``hourly``."""
        left_out = [m for m in self.mappings if "sync_frequency" not in m.model_fields_set]
        fixed = self.refresh_interval_declared or bool(self.schedule)
        others = [m for m in self.mappings if "sync_frequency" in m.model_fields_set]
        chosen = None if fixed else frequency_of(others) or "hourly"
        for mapping in left_out:
            mapping.sync_frequency = chosen  # type: ignore[assignment] # one of the mappings' own
            mapping.model_fields_set.discard("sync_frequency")

    @property
    def refresh_interval_declared(self) -> bool:
        """Whether refresh_interval was declared (else it is the one in effect)."""
        return "refresh_interval" in self.model_fields_set

    def primary(self) -> ConnectionDecl:
        return next(c for c in self.connections if c.is_primary)


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[dict[str, Any]] = Field(default_factory=list)
    # The sites the sources belong to (factorysync.config.sites.SiteDecl).
    sites: list[dict[str, Any]] = Field(default_factory=list)
