"""The ``connection_config`` of an API source, and how a cursor goes into a request.

Placeholders ``{{name}}`` in the URL, headers, params, JSON body and auth block are filled
from the decrypted ``authentication_config``. ``{{cursor}}`` (params, headers and body
only) is the incremental cursor of the last run, minus the mapping's lookback.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.config.names import parse_path
from factorysync.connectors.api.auth import HEADER_NAME, AuthConfig
from factorysync.connectors.api.client import check_url
from factorysync.connectors.api.pagination import Pagination
from factorysync.connectors.base import NaiveZone, naive_zone_field

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
CURSOR = "cursor"
Scalar = str | int | float | bool


def placeholders(text: str) -> set[str]:
    """The names of the placeholders in ``text``."""
    return set(PLACEHOLDER.findall(text))


class ApiConfig(BaseModel):
    """``connection_config`` of an API source."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str | None = Field(
        title="URL",
        examples=["https://mes.plant.local/api/v1/production"],
        json_schema_extra={"group": "connection"},
        default=None,
        description="The whole URL to request, e.g. https://mes.plant.local/api/v1/"
        "production; or give base_url and endpoint instead. {{name}} placeholders are "
        "filled from authentication_config.",
    )
    base_url: str | None = Field(
        title="Base URL",
        examples=["https://mes.plant.local/api"],
        default=None,
        description="The API's root URL, e.g. https://mes.plant.local/api, with endpoint "
        "appended to it. Give url or base_url.",
    )
    endpoint: str = Field(
        title="Endpoint path",
        examples=["/v1/production"],
        default="",
        description="Path under base_url, e.g. /v1/production (only with base_url).",
    )
    method: Literal["GET", "POST", "PUT", "PATCH"] = Field(
        title="HTTP method",
        default="GET",
        description="HTTP method of every request: GET, POST, PUT or PATCH.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers, e.g. {Accept: application/json}. Values may hold "
        "{{name}} placeholders (secrets from authentication_config) and {{cursor}}.",
    )
    params: dict[str, Scalar | list[Scalar] | None] = Field(
        default_factory=dict,
        description="Query parameters, e.g. {line: A, since: '{{cursor}}'}; a list "
        "repeats the parameter, null leaves it out. A value that uses {{cursor}} is left "
        "out while there is no cursor (the first run, and full syncs).",
    )
    body: Any = Field(
        default=None,
        alias="json",
        description="JSON request body (for POST, PUT or PATCH); its texts may hold "
        "{{name}} placeholders and {{cursor}}.",
    )
    auth: AuthConfig | None = Field(
        title="Authentication",
        examples=[{"type": "bearer"}, {"type": "basic"}, {"type": "api_key", "name": "X-Api-Key"}],
        json_schema_extra={"group": "connection"},
        default=None,
        description="How requests authenticate: an object whose type is none, bearer, "
        "basic, api_key or oauth2_client_credentials; secrets it leaves out come from "
        "authentication_config. Left out: authentication_config, when it has a type, is "
        "the block; else no authentication.",
    )
    records_path: str | None = Field(
        title="Records path",
        examples=["data.items"],
        default=None,
        description="Dot path to the list of records in each response, e.g. data or "
        "result.items (default: the response is the list). A mapping's records_path wins "
        "over this one. Needed with pagination when responses are objects.",
    )
    pagination: Pagination | None = Field(
        title="Pagination",
        default=None,
        description="How the following pages are requested: an object whose type is "
        "offset, page, cursor, next_url or link_header. Left out: one request per read.",
    )
    # How a date/time cursor is written into {{cursor}}.
    cursor_format: Literal["iso", "epoch", "epoch_ms"] = Field(
        default="iso",
        description="How a date or time cursor is written into {{cursor}}: iso (ISO 8601 "
        "text), epoch (seconds since 1970) or epoch_ms (milliseconds since 1970).",
    )
    timeout: float = Field(
        title="Timeout (s)",
        examples=[30],
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds to wait for the server: to connect, and for each part of "
        "the response.",
    )
    max_response_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        description="Largest response body taken, in bytes (default 50 MiB); a larger "
        "one fails the read.",
    )
    retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Further tries of a request after a timeout, a connection error, or "
        "HTTP 408, 429 or 5xx: each after the server's Retry-After, else after a growing "
        "back-off (FACTORYSYNC_RETRY_BACKOFF_S, doubling, with jitter). 0: no retry.",
    )
    retry_max_wait_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="Longest wait between two tries, in seconds: it caps the back-off, "
        "and a Retry-After longer than this fails the read at once (as transient).",
    )
    max_redirects: int = Field(
        default=5,
        ge=0,
        le=20,
        description="Redirects followed per request; a redirect to another scheme, host "
        "or port carries no credentials.",
    )
    rate_limit: float | None = Field(
        default=None,
        gt=0,
        description="Most requests per minute, spaced evenly (60 / rate_limit seconds "
        "apart), shared by the reads of this process with the same rate_limit_key. "
        "Default: no limit.",
    )
    rate_limit_key: str | None = Field(
        default=None,
        min_length=1,
        description="Name of the rate limit this source shares. Default: the URL's "
        "scheme://host:port, so every source of this process on one API server shares "
        "one limit.",
    )
    verify: bool | str = Field(
        default=True,
        description="TLS certificate check: true checks against the system's and "
        "certifi's CAs; the path of a PEM CA bundle (a file or folder) trusts a private "
        "CA; false checks nothing.",
    )
    # Zone of timestamps the API sends without an offset (an IANA name; default UTC):
    # a mapping field of type datetime reads them in it.
    timezone: NaiveZone = naive_zone_field(
        "timestamps the API sends without a UTC offset, read so where a mapping field "
        "types them as datetime"
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("headers")
    @classmethod
    def _header_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [name for name in v if not re.match(HEADER_NAME, name)]
        if bad:
            raise ValueError(f"not a header name: {', '.join(map(repr, bad))}")
        return v

    @field_validator("records_path")
    @classmethod
    def _records_path(cls, v: str | None) -> str | None:
        if v is not None:
            parse_path(v)
        return v

    @field_validator("verify", mode="before")
    @classmethod
    def _verify(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        if isinstance(v, str) and not v.strip():
            raise ValueError("give true, false or the path of a CA bundle")
        return v

    @model_validator(mode="after")
    def _target(self) -> ApiConfig:
        if (self.url is None) == (self.base_url is None):
            raise ValueError("give url (the whole URL), or base_url with endpoint")
        if self.url is not None and self.endpoint:
            raise ValueError("endpoint goes with base_url; with url, give the whole URL")
        if "://" in self.endpoint:
            raise ValueError("endpoint is a path under base_url, not a URL")
        target = self.target()
        check_url(target, "url" if self.url is not None else "base_url")
        if CURSOR in placeholders(target):
            raise ValueError("{{cursor}} goes in params, headers or json, not in the URL")
        return self

    def target(self) -> str:
        if self.url is not None:
            return self.url
        assert self.base_url is not None
        if not self.endpoint:
            return self.base_url
        return self.base_url.rstrip("/") + "/" + self.endpoint.lstrip("/")


def cursor_text(value: Any, fmt: str) -> Any:
    """The cursor as it goes into a request (ISO 8601, or seconds/milliseconds since 1970)."""
    if isinstance(value, date) and not isinstance(value, datetime) and fmt != "iso":
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if fmt == "epoch":
            return int(moment.timestamp())
        if fmt == "epoch_ms":
            return int(moment.timestamp() * 1000)
        return value.isoformat()
    if isinstance(value, date | Decimal):
        return str(value)
    return value
