"""The ``connection_config`` of command and artisan sources (see
:mod:`factorysync.connectors.command` for how the command is run)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from factorysync.connectors.command_env import (
    name_problem,
    value_problem,
)
from factorysync.connectors.file import FileOptions
from factorysync.connectors.file.csv import CsvOptions
from factorysync.settings import Settings, get_settings

ARTISAN_COMMAND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.-]*$")
Scalar = str | int | float | bool


def _settings(info: ValidationInfo) -> Settings:
    """The settings a config is validated against: those of the connector being built,
    else the process's own."""
    given = (info.context or {}).get("settings")
    return given if isinstance(given, Settings) else get_settings()


def _env_name(name: str, info: ValidationInfo) -> str:
    problem = name_problem(name, _settings(info))
    if problem is not None:
        raise ValueError(problem)
    return name


def _env_value(value: str, info: ValidationInfo) -> str:
    problem = value_problem(value, _settings(info))
    if problem is not None:
        raise ValueError(problem)
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
EnvValue = Annotated[str, AfterValidator(_env_value)]


class CommandConfig(BaseModel):
    """``connection_config`` of a command source."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(
        title="Command",
        examples=["mes-export"],
        json_schema_extra={"group": "connection"},
        min_length=1,
        description="The program to run: a name on the standard PATH or an absolute path, "
        "e.g. /opt/mes/bin/export-shift; it must be on FACTORYSYNC_COMMAND_ALLOWLIST and "
        "runs without a shell. For artisan sources, the artisan command, e.g. "
        "report:daily.",
    )
    # A list is passed as it is; a mapping becomes options: {since: x} → --since=x,
    # {force: true} → --force, false/null → left out, a list → the option repeated.
    parameters: list[Scalar] | dict[str, Scalar | list[Scalar] | None] = Field(
        title="Parameters",
        json_schema_extra={"group": "connection"},
        default_factory=list,
        description="Arguments after the command. A list is passed as it is: [--line, A]. "
        "A mapping becomes options: {since: 2026-01-01} gives --since=2026-01-01, "
        "{force: true} gives --force, false or null leaves the option out, a list repeats "
        "it. Shell metacharacters are refused; no quoting is needed.",
    )
    working_directory: str | None = Field(
        title="Working directory",
        default=None,
        description="Absolute path of the folder the command runs in. Default: the "
        "service's own working directory.",
    )
    timeout: float = Field(
        title="Timeout (s)",
        examples=[60],
        default=300.0,
        gt=0,
        le=86400,
        description="Seconds the command may run; then its whole process group is killed "
        "and the run fails (as transient: it is tried again).",
    )
    output_format: Literal["json", "ndjson", "csv", "none"] = Field(
        title="Output format",
        json_schema_extra={"group": "connection"},
        default="json",
        description="How standard output is read: json (one document), ndjson (one "
        "record per line), csv, or none for trigger-only jobs (nothing is read; success "
        "is the exit status 0).",
    )
    encoding: str = Field(
        default="utf-8",
        description="Text encoding of the output: a Python codec name, e.g. utf-8, "
        "cp1252, latin-1.",
    )
    records_path: str | None = Field(
        default=None,
        description="Dot path to the list of records in JSON output, e.g. data.rows; a "
        "mapping's records_path wins over this one.",
    )
    csv: CsvOptions | None = Field(
        default=None,
        description="How CSV output is parsed (output_format csv): delimiter, has_header, "
        "date_formats and the other keys of CSV files. Default: comma-separated, with a "
        "header row, types inferred.",
    )
    # Zone of timestamps the command prints without an offset (an IANA name; default
    # UTC); also the command's TZ, so that its local time is that zone.
    timezone: str | None = Field(
        default=None,
        description="IANA time zone, e.g. Asia/Jakarta, of timestamps the command prints "
        "without a UTC offset; also the command's TZ, so that its local time is that zone. "
        "Default: csv.timezone, else the time zone of the source's site, else UTC.",
    )
    environment: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        description="Variables for the command: locale, time zone, APP_*, DB_* and the "
        "names on FACTORYSYNC_COMMAND_ENV_ALLOWLIST; never loader or interpreter hooks. "
        "The command starts from a minimal environment (PATH, LANG, TZ, HOME); secrets "
        "go in authentication_config.environment.",
    )
    max_output_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Most bytes of standard output taken (default 256 MiB); more stops "
        "the command and fails the run.",
    )

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        return FileOptions(encoding=v).encoding

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return FileOptions(timezone=v).timezone

    @model_validator(mode="after")
    def _one_zone(self) -> CommandConfig:
        inner = self.csv.timezone if self.csv is not None else None
        if inner is not None and self.timezone is not None and inner != self.timezone:
            raise ValueError(
                f"csv.timezone {inner!r} and timezone {self.timezone!r} differ: set timezone only"
            )
        return self

    @field_validator("working_directory")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).expanduser().is_absolute():
            raise ValueError(f"working_directory {v!r} must be an absolute path")
        return v


class ArtisanConfig(CommandConfig):
    """``connection_config`` of an artisan source: ``command`` is the artisan command."""

    working_directory: str = Field(  # the Laravel project (where the artisan script is)
        description="Absolute path of the Laravel project, the folder holding the artisan "
        "script, e.g. /var/www/mes; the command runs there."
    )
    php: str = Field(
        default="php",
        description="The PHP executable that runs artisan: a name on the standard PATH or "
        "an absolute path, e.g. /usr/bin/php8.2; it must be on "
        "FACTORYSYNC_COMMAND_ALLOWLIST.",
    )
    artisan: str = Field(
        default="artisan",
        description="The artisan script, relative to working_directory (or absolute).",
    )

    @field_validator("command")
    @classmethod
    def _artisan_name(cls, v: str) -> str:
        if not ARTISAN_COMMAND.match(v):
            raise ValueError(f"artisan command {v!r} is not a command name like 'report:daily'")
        return v
