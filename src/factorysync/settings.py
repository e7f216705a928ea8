"""Settings from ``FACTORYSYNC_*`` environment variables (and an optional ``.env`` file)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./factorysync.db"


class Settings(BaseSettings):
    """Process-wide settings. Every field is ``FACTORYSYNC_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="FACTORYSYNC_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["dev", "prod"] = "dev"
    database_url: str = DEFAULT_DATABASE_URL
    # Folders that file sources may read from, separated by os.pathsep (":" on Linux).
    data_roots: str = "."
    # Executables that command sources may run: names looked up on the standard PATH or
    # absolute paths, separated by os.pathsep or commas ("" = none may run).
    command_allowlist: str = ""
    # Hosts API sources may connect to, comma separated: names, *.domain wildcards, IP
    # addresses and networks ("" = any host but link-local and cloud-metadata addresses).
    api_allowed_hosts: str = ""
    # Fernet key (urlsafe base64, 32 bytes). When empty, the key file is used.
    secret_key: str = Field(default="", repr=False)
    secret_key_file: Path = Path("./factorysync.key")
    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    timezone: str = "Asia/Jakarta"
    max_concurrent_syncs: int = Field(default=32, ge=1, le=1024)
    scheduler_tick_s: float = Field(default=0.25, gt=0)
    # Attempts per connection for transient errors, and the first back-off (doubling).
    retry_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_s: float = Field(default=1.0, ge=0)
    # How often the scheduler purges rows past their mapping's data_retention_days.
    retention_interval_s: float = Field(default=3600, gt=0)
    # PostgreSQL store: how long a worker's claim on a source lasts without renewal
    # (renewed every third of it); a dead worker's sources move on after this.
    lease_s: float = Field(default=30.0, ge=2)
    log_level: str = "INFO"
    # HTTP API (`serve`, `run`, `demo`).
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    # Serve /metrics without a token (for a Prometheus inside a trusted network).
    metrics_public: bool = False
    # Origins allowed to call the API from a browser, comma separated ("" = none).
    cors_origins: str = ""
    # Failed logins allowed per user name and per client address within the window.
    login_max_failures: int = Field(default=5, ge=1)
    login_window_s: float = Field(default=300.0, gt=0)
    # Lifetime of the token that POST /api/auth/login hands out.
    login_token_ttl_s: int = Field(default=12 * 3600, ge=60)
    # How long the API may repeat a data answer, or trust a checked token, from memory
    # (0 = ask the store every time). See factorysync.api.cache.
    api_cache_s: float = Field(default=1.0, ge=0, le=60)
    # Realtime sources (MQTT, OPC UA): one history row per window of this many seconds,
    # and how often `run` looks for realtime sources added, changed or removed.
    realtime_window_s: float = Field(default=60.0, gt=0)
    realtime_rescan_s: float = Field(default=5.0, gt=0)
    # HTTP push (POST /api/ingest/{source_id}): largest body accepted, and how long a
    # request waits for its records to be committed before answering 503.
    ingest_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    ingest_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # File sources with auto_reload: changes within this many seconds make one sync.
    file_watch_debounce_ms: int = Field(default=200, ge=0, le=60_000)
    # Web console: the language of a user who has not chosen one, how often the sources
    # list refreshes itself, and whether the session cookie is sent over HTTPS only.
    console_language: Literal["en", "id"] = "en"
    console_refresh_s: float = Field(default=10.0, ge=1, le=3600)
    console_secure_cookie: bool = False
    # Alert rules: consecutive failed runs; no success within this many refresh
    # intervals; share of a run's records rejected; seconds without realtime data.
    alert_failures: int = Field(default=3, ge=1, le=1000)
    alert_stale_factor: float = Field(default=3.0, gt=1)
    alert_rejected_rate: float = Field(default=0.1, gt=0, le=1)
    alert_silence_s: float = Field(default=600.0, gt=0)
    # How often staleness and silence are checked and pending notifications sent.
    alert_check_s: float = Field(default=30.0, gt=0)
    # Alert channels ("" = off): a URL that receives a JSON POST per alert change, and
    # e-mail through an SMTP server to the addresses in alert_email_to (comma separated).
    alert_webhook_url: str = Field(default="", repr=False)
    alert_webhook_timeout_s: float = Field(default=5.0, gt=0, le=120)
    alert_smtp_host: str = ""
    alert_smtp_port: int = Field(default=25, ge=1, le=65535)
    alert_smtp_starttls: bool = False
    alert_smtp_username: str = ""
    alert_smtp_password: str = Field(default="", repr=False)
    alert_email_from: str = "factorysync@localhost"
    alert_email_to: str = ""

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError(
                f"unsupported store {scheme!r}: use sqlite:///path.db or postgresql://user@host/db"
            )
        if scheme == "postgres":
            value = "postgresql" + value[len("postgres") :]
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; the bare scheme would ask for psycopg2.
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Asia/Jakarta or UTC)"
            ) from None
        return value

    def data_root_paths(self) -> list[Path]:
        return [Path(p).expanduser().resolve() for p in self.data_roots.split(os.pathsep) if p]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI call this after changing the environment)."""
    get_settings.cache_clear()
