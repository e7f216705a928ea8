"""Settings from ``FACTORYSYNC_*`` environment variables (and an optional ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from factorysync.settings_files import (
    DEFAULT_DATA_ROOT,
    SQLITE_SIDE_FILES,
    OwnFiles,
    sqlite_path,
)
from factorysync.settings_sites import (
    DEFAULT_SITE,
    NATS_SCHEMES,
    SITE_NAME,
    SITE_NAME_RULE,
    forward_tables,
    nats_urls,
    site_name,
    stream_name,
)

DEFAULT_DATABASE_URL = "sqlite:///./factorysync.db"
# Runs at once on a SQLite store by default: its one writer serializes them anyway (500
# sources, 10 subscriptions: 289 MB peak and more runs done than with 32 at once, 364 MB).
SQLITE_CONCURRENT_SYNCS = 8

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_DATA_ROOT",
    "DEFAULT_SITE",
    "NATS_SCHEMES",
    "SITE_NAME",
    "SITE_NAME_RULE",
    "SQLITE_CONCURRENT_SYNCS",
    "SQLITE_SIDE_FILES",
    "Settings",
    "get_settings",
    "reset_settings",
    "sqlite_path",
]


class Settings(BaseSettings, OwnFiles):
    """Process-wide settings. Every field is ``FACTORYSYNC_<NAME>`` in the environment.

    Each field's ``description`` is its documentation: the settings tables of
    docs/configuration.md and README.md are generated from it
    (``python -m factorysync.settings_doc``), and a test fails when they differ."""

    model_config = SettingsConfigDict(
        env_prefix="FACTORYSYNC_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A refused value is not echoed: it may be a secret (a URL with its password).
        hide_input_in_errors=True,
    )

    env: Literal["dev", "prod"] = Field(
        default="dev",
        description="Deployment kind, `dev` or `prod` (informational: no default changes "
        "with it yet).",
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="The store: `sqlite:///path.db` or `postgresql://user:pass@host:5432/db` "
        "(psycopg 3). A new SQLite store is made in WAL mode with 32 KiB pages.",
    )
    data_roots: str = Field(
        default=DEFAULT_DATA_ROOT,
        description="Folders file sources may read, separated by `:` (os.pathsep). Paths "
        "are resolved (symlinks too) and refused outside every root; relative `file_path`s "
        "are looked up under each root in order. None may hold the store's SQLite file or "
        "the key file.",
    )
    command_allowlist: str = Field(
        default="",
        description="Executables command sources may run: names looked up on the standard "
        "PATH or absolute paths, separated by `:` or `,` (empty: none may run).",
    )
    command_env_allowlist: str = Field(
        default="",
        description="Environment variables command sources may pass to their commands, "
        "beyond the built-in safe list (locale, time zone, Laravel `APP_*`/`DB_*`): names "
        "or patterns with `*` (`MES_*`), comma or space separated. Loader and interpreter "
        "hooks (`LD_*`, `PYTHON*`, `PATH`, …) stay refused whatever this says.",
    )
    api_allowed_hosts: str = Field(
        default="",
        description="Hosts API sources may connect to, comma separated: names, `*.domain`, "
        "IP addresses, networks (`10.20.0.0/16`); empty: any host except link-local and "
        "cloud-metadata addresses.",
    )
    secret_key: str = Field(
        default="",
        repr=False,
        description="Fernet key(s) (urlsafe base64, 32 bytes), comma separated, newest "
        "first; empty: the key file is used.",
    )
    secret_key_file: Path = Field(
        default=Path("./factorysync.key"),
        description="Key file used when no key is set; `factorysync init` creates it (mode 0600).",
    )
    batch_size: int = Field(
        default=5000, ge=1, le=1_000_000, description="Records per batch read and staged."
    )
    timezone: str = Field(
        default="Asia/Jakarta",
        description="The plant's time zone (IANA name): cron schedules and displayed times.",
    )
    site: str = Field(
        default=DEFAULT_SITE,
        description="This process's site (plant): the site of sources whose declaration "
        "names none, created on demand. Part of NATS subject names "
        "(`factorysync.<site>.<table>`): 1 to 32 lower-case letters, digits, `-` or `_`.",
    )
    central_url: str = Field(
        default="",
        repr=False,
        description="`factorysync central`: the NATS server (the hub with JetStream) whose "
        "stream it applies to this store, e.g. `nats://user:password@hub:4222` (several "
        "comma separated). A secret: never logged or shown.",
    )
    forward_url: str = Field(
        default="",
        repr=False,
        description="NATS URL of the plant's own NATS server (a leaf node of the central "
        "hub) that forwarding publishes to, e.g. `nats://user:password@127.0.0.1:4222` "
        "(empty: forwarding off). Changes are captured only by processes that have it set: "
        "give every process writing the store the same value. A secret: never logged or "
        "shown.",
    )
    forward_tables: str = Field(
        default="*",
        description="Target tables forwarded when `FACTORYSYNC_FORWARD_URL` is set, comma "
        "separated, or `*` for every target table.",
    )
    forward_stream: str = Field(
        default="FACTORYSYNC",
        description="The JetStream stream forwarded changes go to (subjects "
        "`factorysync.>`); the publisher creates it when it is missing.",
    )
    max_concurrent_syncs: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Runs the scheduler of `run` (and each `worker`, unless "
        "`--concurrency`) starts at once. Empty: 8 on a SQLite store (one writer at a "
        "time: more runs at once only wait for it, holding what they read) and 32 on "
        "PostgreSQL.",
    )
    scheduler_tick_s: float = Field(
        default=0.25, gt=0, description="How often the scheduler looks for due sources."
    )
    retry_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Attempts per connection and run for transient errors (timeouts, refused "
        "connections, a locked store). A failure whose own retries were spent is not "
        "attempted again: an API request is tried `1 + retries` times in a run (4 by "
        "default), not multiplied by this.",
    )
    retry_backoff_s: float = Field(
        default=1.0,
        ge=0,
        description="First retry delay; doubles per attempt (at most `retry_max_delay_s`), "
        "with jitter. API sources wait the same way between their `retries`.",
    )
    retry_max_delay_s: float = Field(
        default=30.0,
        ge=0,
        description="Longest wait between two attempts of a run (before jitter).",
    )
    retention_interval_s: float = Field(
        default=3600,
        gt=0,
        description="How often the scheduler purges rows past their mapping's "
        "`data_retention_days`.",
    )
    lease_s: float = Field(
        default=30.0,
        ge=2,
        description="PostgreSQL store: how long a worker's claim on a source (a run, or a "
        "realtime subscription) lasts without renewal (renewed every third of it). A dead "
        "worker's sources move on after this, and it is marked `dead`.",
    )
    log_level: str = Field(default="INFO", description="Log level of long-running commands.")
    # HTTP API (`serve`, `run`, `demo`).
    api_host: str = Field(default="127.0.0.1", description="Where `serve` and `run` listen.")
    api_port: int = Field(
        default=8000, ge=0, le=65535, description="Port `serve` and `run` listen on."
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve `/metrics` without a token (for a Prometheus inside a trusted network).",
    )
    docs_public: bool = Field(
        default=False,
        description="Serve the API reference (`/docs`, `/redoc`, `/openapi.json`) without "
        "a token or console session. Off: the reference names every endpoint and field, "
        "a map for an attacker on the plant network.",
    )
    cors_origins: str = Field(
        default="",
        description="Origins allowed to call the API from a browser, comma separated "
        "(empty: none).",
    )
    # Login throttling (factorysync.security.throttle). Never per user name alone: the
    # right password from elsewhere gets in.
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins allowed per (user name, client address) before that "
        "pair waits `login_backoff_s`.",
    )
    login_address_max_failures: int = Field(
        default=20,
        ge=1,
        description="Failed logins allowed per client address across user names before it waits.",
    )
    login_backoff_s: float = Field(
        default=1.0,
        gt=0,
        description="First wait after too many failed logins; doubles with each further failure.",
    )
    login_backoff_max_s: float = Field(
        default=900.0, gt=0, description="Longest wait after failed logins."
    )
    login_window_s: float = Field(
        default=300.0,
        gt=0,
        description="Failed logins are forgotten this long after the last failure or wait.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Reverse proxies whose `X-Forwarded-For` names the client (addresses or "
        "networks, comma separated, e.g. `10.0.0.5, 192.168.10.0/24`); empty: the client "
        "is the connecting address, whatever forwarded headers say.",
    )
    login_token_ttl_s: int = Field(
        default=12 * 3600,
        ge=60,
        description="Lifetime of the token that `POST /api/auth/login` hands out.",
    )
    api_cache_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long the API may repeat a data answer, or trust a checked token, "
        "from memory (0: ask the store every time).",
    )
    realtime_window_s: float = Field(
        default=60.0,
        gt=0,
        description="Realtime and push sources: one history row (run) per window of this "
        "many seconds.",
    )
    realtime_rescan_s: float = Field(
        default=5.0,
        gt=0,
        description="How often `run` looks for realtime sources added, changed or removed.",
    )
    ingest_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest body `POST /api/ingest/{source_id}` accepts (413 above).",
    )
    api_max_body_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=16 * 1024,
        description="Largest request body any other endpoint reads (413 above): source "
        "declarations, logins, console forms.",
    )
    ingest_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="How long a push waits for its records to be committed before answering 503.",
    )
    spool_dir: Path = Field(
        default=Path("./spool"),
        description="Folder of the local spools (SQLite files, one per process) that hold "
        "what realtime and push sources received while the store could not take it; "
        "a restarted process takes its own file back and writes what it holds.",
    )
    spool_max_mb: int = Field(
        default=1024,
        ge=1,
        le=1_048_576,
        description="Largest size of one process's spool. An alert opens at 80 %; when "
        "full, nothing more is acknowledged: brokers keep what they sent, pushes get 503, "
        "polled and OPC UA values wait (a gap is recorded). Nothing acknowledged is dropped.",
    )
    outage_token_trust_s: float = Field(
        default=3600.0,
        ge=0,
        description="While the store is unreachable, an API token this process checked "
        "within this many seconds is still accepted (so pushes reach the spool); 0: every "
        "request whose token cannot be checked gets 503.",
    )
    file_watch_debounce_ms: int = Field(
        default=200,
        ge=0,
        le=60_000,
        description="File sources with `auto_reload`: changes within this many "
        "milliseconds make one sync.",
    )
    # Workbooks (Excel, ODS) are parsed by native code in a child process: a file that
    # needs more than these stops that process, not the service, and the run fails naming
    # the file and the limit.
    parser_max_mb: int = Field(
        default=1024,
        ge=64,
        le=1_048_576,
        description="Memory (address space, MB) the workbook parser process may use.",
    )
    parser_cpu_s: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="CPU seconds the workbook parser process may use per file.",
    )
    console_language: Literal["en", "id"] = Field(
        default="en",
        description="Web console language (`en` or `id`) of a user who has not chosen one.",
    )
    console_refresh_s: float = Field(
        default=10.0,
        ge=1,
        le=3600,
        description="How often the console's sources list refreshes itself.",
    )
    console_secure_cookie: bool = Field(
        default=False,
        description="Send the console's session cookie over HTTPS only (set it behind TLS).",
    )
    alert_failures: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Consecutive failed runs that open a `consecutive_failures` alert.",
    )
    alert_stale_factor: float = Field(
        default=3.0,
        gt=1,
        description="A source with no success within this many `refresh_interval`s gets a "
        "`stale` alert.",
    )
    alert_rejected_rate: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Share of a run's records rejected by validation that opens a "
        "`rejected_rows` alert.",
    )
    alert_silence_s: float = Field(
        default=600.0,
        gt=0,
        description="An MQTT / OPC UA source that wrote nothing for this long gets a "
        "`realtime_silence` alert.",
    )
    alert_check_s: float = Field(
        default=30.0,
        gt=0,
        description="How often staleness and silence are checked and pending notifications "
        "sent (notices of runs go out at once).",
    )
    # Alert channels (empty: off).
    alert_webhook_url: str = Field(
        default="",
        repr=False,
        description="Receives a JSON `POST` when an alert opens or resolves (empty: off).",
    )
    alert_webhook_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="Timeout of one webhook or SMTP attempt (3 attempts per notice).",
    )
    alert_smtp_host: str = Field(
        default="", description="SMTP server for alert e-mail (empty: no e-mail)."
    )
    alert_smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port.")
    alert_smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP connection with STARTTLS."
    )
    alert_smtp_username: str = Field(
        default="", description="SMTP login, when the server needs one."
    )
    alert_smtp_password: str = Field(
        default="", repr=False, description="SMTP password, when the server needs one."
    )
    alert_email_from: str = Field(
        default="factorysync@localhost", description="Sender of alert e-mail."
    )
    alert_email_to: str = Field(
        default="", description="Recipients of alert e-mail, comma separated."
    )

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

    @field_validator("max_concurrent_syncs", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

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

    @field_validator("site")
    @classmethod
    def _site(cls, value: str) -> str:
        return site_name(value)

    @field_validator("central_url", "forward_url")
    @classmethod
    def _nats(cls, value: str, info: ValidationInfo) -> str:
        return nats_urls(value, f"FACTORYSYNC_{str(info.field_name).upper()}")

    @field_validator("forward_tables")
    @classmethod
    def _forward_tables(cls, value: str) -> str:
        return forward_tables(value)

    @field_validator("forward_stream")
    @classmethod
    def _forward_stream(cls, value: str) -> str:
        return stream_name(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        import ipaddress

        entries = [p for p in value.replace(",", " ").split() if p]
        bad = []
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                bad.append(entry)
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: list proxies by IP address or network "
                "(e.g. 10.0.0.5 or 192.168.10.0/24)"
            )
        return ",".join(entries)

    @property
    def concurrent_syncs(self) -> int:
        """Runs started at once: ``max_concurrent_syncs``, or the store's default."""
        if self.max_concurrent_syncs is not None:
            return self.max_concurrent_syncs
        return SQLITE_CONCURRENT_SYNCS if self.database_url.startswith("sqlite") else 32

    def trusted_proxy_list(self) -> list[str]:
        return [p for p in self.trusted_proxies.split(",") if p]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI call this after changing the environment)."""
    get_settings.cache_clear()
