"""Source declarations: the YAML shape of DESIGN §3, validated at the edge.

Field names are the registry's own. Every problem in a file is reported at once, each
naming the source and the field, e.g.::

    sources[2] (source_id 'oee_line_a'): mappings[0].mapping_config.primary_key: ...
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from factorysync.connectors.registry import format_validation_error, validate_connection_config
from factorysync.engine.mapping import MappingConfig, check_identifier
from factorysync.errors import ConfigError
from factorysync.store.schema import REGISTRY_TABLES

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
SourceType = Literal[
    "json", "csv", "excel", "database", "api", "artisan", "command", "mqtt", "opcua", "push"
]
ConnectionType = Literal["file", "database", "api", "artisan", "command", "mqtt", "opcua", "push"]
# The connection type a source type usually uses (when the YAML leaves it out).
DEFAULT_CONNECTION_TYPE = {
    "json": "file",
    "csv": "file",
    "excel": "file",
    "database": "database",
    "api": "api",
    "artisan": "artisan",
    "command": "command",
    "mqtt": "mqtt",
    "opcua": "opcua",
    "push": "push",
}


class ConnectionDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection_name: str = Field(default="primary", min_length=1, max_length=100)
    connection_type: ConnectionType | None = None
    connection_config: dict[str, Any] = Field(default_factory=dict)
    authentication_config: dict[str, Any] = Field(default_factory=dict)
    is_primary: bool = False
    is_backup: bool = False
    status: Literal["active", "inactive"] = "active"


class MappingDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_table: str
    mapping_config: MappingConfig = Field(default_factory=MappingConfig)
    sync_strategy: Literal["full", "incremental", "realtime"] = "full"
    sync_frequency: Literal["realtime", "minute", "hourly", "daily"] | None = None
    data_retention_days: int | None = Field(default=None, ge=1)
    is_active: bool = True

    @field_validator("target_table")
    @classmethod
    def _table(cls, v: str) -> str:
        check_identifier(v, "target_table")
        if v in REGISTRY_TABLES or v.startswith(("_fs_", "alembic", "sqlite_")):
            raise ValueError(f"target_table {v!r} is reserved by factorysync")
        return v

    @model_validator(mode="after")
    def _incremental_needs_cursor(self) -> MappingDecl:
        if self.sync_strategy == "incremental" and not self.mapping_config.cursor_field:
            raise ValueError("sync_strategy 'incremental' needs mapping_config.cursor_field")
        return self


class SourceDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_id: str
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    source_type: SourceType
    connection_type: ConnectionType | None = None
    status: Literal["active", "inactive", "error", "maintenance"] = "active"
    priority: int = Field(default=2, ge=1, le=3)
    refresh_interval: int = Field(default=300, ge=1)
    schedule: str | None = None
    category: str | None = None
    legacy_id: str | None = None
    created_by: str | None = None
    connections: list[ConnectionDecl] = Field(min_length=1)
    mappings: list[MappingDecl] = Field(min_length=1)

    @field_validator("source_id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SOURCE_ID.match(v):
            raise ValueError(
                f"source_id {v!r} must be a slug: lower-case letters, digits, '_', '-', '.', "
                "starting with a letter or digit, at most 100 characters"
            )
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        from factorysync.engine.schedule import check_cron

        return check_cron(v) if v else None

    @field_validator("legacy_id", mode="before")
    @classmethod
    def _legacy_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @model_validator(mode="after")
    def _consistent(self) -> SourceDecl:
        default_type = self.connection_type or DEFAULT_CONNECTION_TYPE[self.source_type]
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

    def primary(self) -> ConnectionDecl:
        return next(c for c in self.connections if c.is_primary)


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[dict[str, Any]] = Field(default_factory=list)


def _where(index: int, raw: Any) -> str:
    sid = raw.get("source_id") if isinstance(raw, dict) else None
    return f"sources[{index}]" + (f" (source_id {sid!r})" if sid else "")


def parse_source(raw: Any, where: str = "source") -> tuple[SourceDecl | None, list[str]]:
    """Validate one source declaration; returns (source or None, problems)."""
    try:
        decl = SourceDecl.model_validate(raw)
    except ValidationError as exc:
        return None, [f"{where}: {format_validation_error(e)}" for e in exc.errors()]
    problems = []
    for i, conn in enumerate(decl.connections):
        assert conn.connection_type is not None
        for p in validate_connection_config(conn.connection_type, conn.connection_config):
            problems.append(f"{where}: connections[{i}].connection_config.{p}")
    return decl, problems


def parse_sources(document: Any, origin: str = "config") -> list[SourceDecl]:
    """Validate a whole document; raises ConfigError listing every problem."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{origin}: expected a mapping with a 'sources' list at the top")
    try:
        top = SourcesFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(
            f"{origin}: invalid", [format_validation_error(e) for e in exc.errors()]
        ) from None
    problems: list[str] = []
    decls: list[SourceDecl] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(top.sources):
        where = _where(index, raw)
        decl, found = parse_source(raw, where)
        problems += found
        sid = raw.get("source_id") if isinstance(raw, dict) else None
        if isinstance(sid, str):
            if sid in seen:
                problems.append(f"{where}: source_id repeats sources[{seen[sid]}]")
            seen.setdefault(sid, index)
        if decl is not None:
            decls.append(decl)
    if problems:
        raise ConfigError(f"{origin}: {len(problems)} problem(s)", problems)
    return decls


def load_sources_file(path: Path) -> list[SourceDecl]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_sources(document, str(path))
