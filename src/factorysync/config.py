"""Source declarations: the YAML shape of DESIGN §3, validated at the edge.

Field names are the registry's own. Every problem in a file is reported at once, each
naming the source and the field, e.g.::

    sources[2] (source_id 'oee_line_a'): mappings[0].mapping_config.primary_key: ...

Input is bounded before it is validated, so that a small document cannot stand for a huge
one and a huge one is refused outright: a sources file is at most
:data:`SOURCES_FILE_MAX_BYTES`, plain YAML without anchors or aliases
(:mod:`factorysync.yamlsafe`), and the free-form JSON of one source (every
``connection_config``, ``authentication_config`` and ``mapping_config``) is at most
:data:`CONFIG_MAX_BYTES` as JSON, nested at most :data:`CONFIG_MAX_DEPTH` levels. The
budget is checked in :func:`parse_source`, which ``apply``, the API and the console share.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from factorysync.connectors.registry import DEFAULT_CONNECTION_TYPE as registry_defaults
from factorysync.connectors.registry import (
    check_connection_type,
    check_source_type,
    format_validation_error,
    validate_connection_config,
)
from factorysync.engine.mapping import MappingConfig, check_identifier
from factorysync.engine.schedule import (
    DEFAULT_INTERVAL_S,
    cadence_problems,
    frequency_of,
    interval_for,
)
from factorysync.errors import ConfigError
from factorysync.store.schema import REGISTRY_TABLES
from factorysync.yamlsafe import load as load_yaml

# A sources file: 500 sources with 40 mapped fields each take about 1 MB.
SOURCES_FILE_MAX_BYTES = 8 * 1024 * 1024
# The free-form JSON of one source (connection, authentication and mapping configs
# together), as compact JSON; a mapping of 200 fields takes about 10 KiB.
CONFIG_MAX_BYTES = 256 * 1024
# Nesting levels within one of those configs (a mapping's field spec sits 3 levels down).
CONFIG_MAX_DEPTH = 32
SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
# Source and connection types are the registry's (built-in and plugin connection types):
# a name it does not know is refused as a Literal would refuse it.
SourceType = Annotated[str, AfterValidator(check_source_type)]
ConnectionType = Annotated[str, AfterValidator(check_connection_type)]
# The connection type a source type usually uses (when the YAML leaves it out).
DEFAULT_CONNECTION_TYPE = registry_defaults


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
    sync_strategy: Literal["full", "incremental", "realtime"] = "incremental"
    sync_frequency: Literal["realtime", "minute", "hourly", "daily"] | None = "hourly"
    data_retention_days: int | None = Field(default=365, ge=1)
    is_active: bool = True

    @field_validator("target_table")
    @classmethod
    def _table(cls, v: str) -> str:
        check_identifier(v, "target_table")
        if v in REGISTRY_TABLES or v.startswith(("_fs_", "alembic", "sqlite_")):
            raise ValueError(f"target_table {v!r} is reserved by factorysync")
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
                raise ValueError("sync_strategy 'incremental' needs mapping_config.cursor_field")
            self.sync_strategy = "full"
            self.model_fields_set.discard("sync_strategy")
        return self


class SourceDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_id: str
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    source_type: SourceType
    connection_type: ConnectionType | None = None
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
        """One cadence per source (factorysync.engine.schedule): conflicting declarations
        are refused; a refresh_interval left out becomes the one in effect. A stored
        source (``context={"stored": True}``) is taken as it is."""
        declared = self.refresh_interval_declared
        self._default_frequencies()
        if not (info.context or {}).get("stored"):
            problems = cadence_problems(
                refresh_interval=self.refresh_interval if declared else None,
                schedule=self.schedule,
                mappings=self.mappings,
                connection_type=self.primary().connection_type,
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


def _where(index: int, raw: Any) -> str:
    sid = raw.get("source_id") if isinstance(raw, dict) else None
    return f"sources[{index}]" + (f" (source_id {sid!r})" if sid else "")


def _configs(raw: Any) -> Iterator[tuple[str, Any]]:
    """(location, value) of each free-form config in a raw source declaration."""
    if not isinstance(raw, dict):
        return
    for part, key in (
        ("connections", "connection_config"),
        ("connections", "authentication_config"),
        ("mappings", "mapping_config"),
    ):
        items = raw.get(part)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and key in item:
                yield f"{part}[{i}].{key}", item[key]


def _json_size(value: Any, limit: int) -> tuple[int, int]:
    """(bytes as compact JSON, nesting depth) of ``value``; walks iteratively and stops
    once past ``limit`` bytes or :data:`CONFIG_MAX_DEPTH` levels, so the cost of looking
    is bounded by the budget, whatever the value. Sizes of numbers are close estimates."""
    size = deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending and size <= limit and deepest <= CONFIG_MAX_DEPTH:
        item, depth = pending.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth + 1)
            size += 1 + 2 * max(len(item), 1)  # braces, colons and commas
            for key, inner in item.items():
                size += len(str(key).encode("utf-8", "surrogatepass")) + 2
                pending.append((inner, depth + 1))
                if size > limit:
                    break
        elif isinstance(item, list | tuple | set):
            deepest = max(deepest, depth + 1)
            size += 1 + max(len(item), 1)  # brackets and commas
            if size <= limit:
                pending.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            size += len(item.encode("utf-8", "surrogatepass")) + 2
        elif isinstance(item, bytes):
            size += len(item) * 4 // 3 + 2
        elif isinstance(item, int) and not isinstance(item, bool):
            size += item.bit_length() * 3 // 10 + 2  # decimal digits, and a sign
        else:  # floats, booleans, null, dates
            size += len(orjson.dumps(item, default=str))
    return size, deepest


def check_config_budget(raw: Any) -> list[str]:
    """Problems with the size of a raw source declaration's free-form configs (see the
    module docstring); empty when it is within the budget."""
    problems = []
    total = 0
    for where, value in _configs(raw):
        size, depth = _json_size(value, CONFIG_MAX_BYTES - total)
        if depth > CONFIG_MAX_DEPTH:
            problems.append(f"{where}: nested more than {CONFIG_MAX_DEPTH} levels deep")
        total += size
        if total > CONFIG_MAX_BYTES:
            problems.append(
                f"{where}: too large: the connection, authentication and mapping configs "
                f"of one source may take at most {CONFIG_MAX_BYTES // 1024} KiB as JSON together"
            )
            break
    return problems


def parse_source(raw: Any, where: str = "source") -> tuple[SourceDecl | None, list[str]]:
    """Validate one source declaration; returns (source or None, problems).

    The size budget is checked first, so that an oversized declaration costs no more
    than looking at its first :data:`CONFIG_MAX_BYTES` bytes."""
    too_big = check_config_budget(raw)
    if too_big:
        return None, [f"{where}: {p}" for p in too_big]
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
    """The sources declared in a YAML file; raises ConfigError naming the file (and the
    line, where there is one) for every kind of problem."""
    try:
        with path.open("rb") as fh:
            data = fh.read(SOURCES_FILE_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > SOURCES_FILE_MAX_BYTES:
        raise ConfigError(
            f"{path}: larger than {SOURCES_FILE_MAX_BYTES // (1024 * 1024)} MiB, the limit "
            "for a sources file; split it into several files"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path} line {line}: not UTF-8 text (byte {exc.start})") from None
    return parse_sources(load_yaml(text, str(path)), str(path))
