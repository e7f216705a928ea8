"""``factorysync source sync ID…`` of file sources that have not changed, without loading
the engine.

When a source's files, configuration and state are what its last run (a complete
success) saw — its marker says so (:mod:`factorysync.store.unchanged`) — a full run
would change nothing. This records that run as the engine would (history row, registry,
state entries, event log) in one transaction, and prints the same table or JSON. Any
doubt, and the normal command runs instead: another argument, a setting not read here,
a store on another schema revision, a source that is not an active file source whose
last run is the marked one, a file whose content, size or set differs.

``FACTORYSYNC_FAST_PATH=off`` turns it off; ``trace`` says on stderr which way each
command went. Imports: the standard library, the store's driver (rich for a terminal).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from factorysync.store import unchanged

TYPE_CHECKING = False  # typing is not imported (a few ms of the command's start)
if TYPE_CHECKING:
    from typing import Any

SWITCH = "FACTORYSYNC_FAST_PATH"
# Every setting of factorysync.settings.Settings (a test keeps the two lists equal): one
# of them set but not read here sends the command the normal way. Other FACTORYSYNC_*
# variables are not settings (Settings ignores them) and are ignored here too.
SETTINGS = frozenset(
    """alert_check_s alert_email_from alert_email_to alert_failures alert_rejected_rate
    alert_silence_s alert_smtp_host alert_smtp_password alert_smtp_port
    alert_smtp_starttls alert_smtp_username alert_stale_factor alert_webhook_timeout_s
    alert_webhook_url api_allowed_hosts api_cache_s api_host api_max_body_bytes api_port
    batch_size central_url command_allowlist command_env_allowlist console_language
    console_refresh_s console_secure_cookie cors_origins data_roots database_url
    docs_public env file_watch_debounce_ms forward_stream forward_tables forward_url
    ingest_max_bytes ingest_timeout_s lease_s log_level login_address_max_failures
    login_backoff_max_s login_backoff_s login_max_failures login_token_ttl_s
    login_window_s max_concurrent_syncs metrics_public outage_token_trust_s parser_cpu_s
    parser_max_mb realtime_rescan_s realtime_window_s retention_interval_s
    retry_attempts retry_backoff_s retry_max_delay_s scheduler_tick_s secret_key
    secret_key_file site spool_dir spool_max_mb timezone trusted_proxies""".split()  # noqa: SIM905
)
# The settings read here.
KNOWN = {
    "env",
    "database_url",
    "data_roots",
    "timezone",
    "site",
    "secret_key_file",
    "secret_key",
    "fast_path",
}
DEFAULTS = {
    "env": "dev",
    "database_url": "sqlite:///./factorysync.db",
    "data_roots": "./data",
    "timezone": "Asia/Jakarta",
    "site": "main",
    "secret_key_file": "./factorysync.key",
    "secret_key": "",
}
_PLAIN_VALUE = re.compile(r"""[^'"#$\\`]*""")
_SITE = re.compile(r"[a-z0-9_-]{1,32}")


class NotHere(Exception):
    """The normal command must run (the message says why, for the trace)."""


def try_sync(argv: list[str]) -> int | None:
    """Run ``source sync`` here when every source named is unchanged: the exit status,
    or None when the normal command must run (nothing was written then)."""
    parsed = _arguments(argv)
    if parsed is None:
        return None
    mode = os.environ.get(SWITCH, "on").strip().lower()
    if mode in ("off", "0", "no", "false"):
        return None
    try:
        ids, as_json = parsed
        results = _sync(_settings(), ids)
    except NotHere as exc:
        if mode == "trace":
            sys.stderr.write(f"fast path not taken: {exc}\n")
        return None
    except Exception as exc:  # any surprise: the normal command decides
        if mode == "trace":
            sys.stderr.write(f"fast path not taken: {type(exc).__name__}: {exc}\n")
        return None
    if mode == "trace":
        sys.stderr.write(f"fast path: {', '.join(ids)} unchanged\n")
    _print(results, as_json)
    return 0


def _arguments(argv: list[str]) -> tuple[list[str], bool] | None:
    """(source ids, --json) when argv is exactly ``source sync ID… [--json]``."""
    if len(argv) < 3 or argv[:2] != ["source", "sync"]:
        return None
    ids = [a for a in argv[2:] if a != "--json"]
    if not ids or any(a.startswith("-") or not a for a in ids):
        return None
    return ids, len(ids) < len(argv) - 2


# -- settings -------------------------------------------------------------------------
def _dotenv() -> dict[str, str]:
    """FACTORYSYNC_* entries of ./.env, when every line is one this reads as the
    settings do (plain ``NAME=value``, optionally quoted); NotHere otherwise."""
    path = Path(".env")
    if not path.is_file():
        return {}
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if not sep or not _PLAIN_VALUE.fullmatch(value):
            raise NotHere(".env has a line this does not read")
        found[name.strip().lower()] = value
    return found


def _settings() -> dict[str, str]:
    """The settings (lower-case names, no prefix): defaults, .env, then the environment."""
    values = dict(DEFAULTS)
    given = {k: v for k, v in _dotenv().items() if k.startswith("factorysync_")}
    given.update(
        {k.lower(): v for k, v in os.environ.items() if k.lower().startswith("factorysync_")}
    )
    for name, value in given.items():
        short = name.removeprefix("factorysync_")
        if short in KNOWN:
            values[short] = value
        elif short in SETTINGS:
            raise NotHere(f"setting FACTORYSYNC_{short.upper()} is not read here")
    # The time zone and the site are compared with the marker's, which the settings
    # checked: an unknown zone or a bad site name never matches.
    if values["env"] not in ("dev", "prod") or not _SITE.fullmatch(values["site"]):
        raise NotHere("a setting the normal command would refuse")
    return values


def _facts(values: dict[str, str], store_file: Path | None) -> tuple[dict[str, Any], list[Path]]:
    """The settings facts the marker compares, and the data roots (resolved)."""
    roots = [Path(p).expanduser().resolve() for p in values["data_roots"].split(os.pathsep) if p]
    key = Path(values["secret_key_file"]).expanduser()
    key_set = bool(values["secret_key"].strip())
    own = [p for p in (store_file,) if p is not None]
    if not key_set or key.exists():
        own.append(key.resolve())
    if not roots or any(p == r or p.is_relative_to(r) for r in roots for p in own):
        raise NotHere("the data roots")
    return unchanged.settings_facts(
        roots, values["timezone"], values["site"], key.resolve(), key_set
    ), roots


# -- the store ------------------------------------------------------------------------
def _head_revision() -> str:
    versions = Path(unchanged.__file__).parent / "migrations" / "versions"
    return max(n[:4] for n in os.listdir(versions) if re.fullmatch(r"\d{4}_\w+\.py", n))


class _Store:
    """A plain connection to the store, in one write transaction."""

    def __init__(self, url: str) -> None:
        self.file = unchanged.sqlite_file(url)
        self.pg = self.file is None
        if self.pg:
            self.conn = self._postgresql(url)
        else:
            assert self.file is not None
            if not self.file.is_file():
                raise NotHere("no store file")
            self.file = self.file.resolve()
            import sqlite3

            self.conn = sqlite3.connect(self.file, timeout=30, isolation_level=None)
            # As the store's engine sets them (store/db.py): WAL commits without a sync.
            self.conn.execute("PRAGMA busy_timeout=30000")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("BEGIN IMMEDIATE")

    @staticmethod
    def _postgresql(url: str) -> Any:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise NotHere(f"store scheme {scheme!r}")
        import psycopg

        return psycopg.connect(f"postgresql://{rest}", connect_timeout=10)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql.replace("?", "%s") if self.pg else sql, params)
        if cur.description is None:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def stamp(self, value: datetime) -> Any:
        """A UTC time as the store keeps it (naive text on SQLite)."""
        if self.pg:
            return value
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")

    def json(self, value: Any) -> str:
        """JSON text as the engine writes it (the standard library's default form)."""
        return json.dumps(value)

    def finish(self, commit: bool) -> None:
        try:
            if commit:
                self.conn.execute("COMMIT") if not self.pg else self.conn.commit()
        finally:
            if not commit:
                self.conn.execute("ROLLBACK") if not self.pg else self.conn.rollback()
            self.conn.close()


# -- the runs -------------------------------------------------------------------------
def _sync(values: dict[str, str], ids: list[str]) -> list[dict[str, Any]]:
    store = _Store(values["database_url"])
    done = False
    try:
        facts, roots = _facts(values, store.file)
        found = store.query("SELECT version_num FROM alembic_version")
        if [r["version_num"] for r in found] != [_head_revision()]:
            raise NotHere("the store's schema revision")
        if store.pg:
            for sid in ids:
                store.query(
                    "SELECT id FROM data_source_registry WHERE source_id = ? FOR UPDATE", (sid,)
                )
        plans = [_plan(store, facts, roots, sid) for sid in ids]
        results = [_record(store, plan) for plan in plans]
        store.finish(commit=True)
        done = True
        return results
    finally:
        if not done:
            store.finish(commit=False)


def _plan(store: _Store, facts: dict[str, Any], roots: list[Path], sid: str) -> dict[str, Any]:
    """What the source's run would be, or NotHere."""
    started = datetime.now(UTC)
    clock = time.perf_counter()
    rows = unchanged.source_rows(store.query, sid)
    if rows is None:
        raise NotHere(f"no source {sid!r}")
    registry = rows["registry"]
    if (reason := unchanged.why_not(rows)) is not None:
        raise NotHere(f"{sid}: {reason}")
    if registry["status"] != "active" or registry["lease_owner"] is not None:
        raise NotHere(f"{sid}: status {registry['status']} or leased")
    found = store.query(
        "SELECT state FROM data_source_sync_state WHERE source_id = ? AND mapping_id = ? "
        "AND state_key = ?",
        (sid, unchanged.MARKER_MAPPING, unchanged.MARKER_KEY),
    )
    if not found:
        raise NotHere(f"{sid}: no marker")
    marker = unchanged._plain(found[0]["state"])
    last = store.query(
        "SELECT id, sync_status FROM data_source_sync_history WHERE source_key = ? "
        "ORDER BY id DESC LIMIT 1",
        (sid,),
    )
    if not last or last[0]["id"] != marker["run_id"] or last[0]["sync_status"] != "success":
        raise NotHere(f"{sid}: the marked run is not the last one")
    if registry["data_version"] != marker["data_version"]:
        raise NotHere(f"{sid}: target rows changed")
    if unchanged.config_digest(rows, facts) != marker["config"]:
        raise NotHere(f"{sid}: configuration changed")
    if unchanged.state_digest(store.query, sid) != marker["state"]:
        raise NotHere(f"{sid}: cursor or connector state changed")
    if unchanged.target_counts(store.query, rows) != marker.get("targets"):
        raise NotHere(f"{sid}: the target tables' row counts changed outside factorysync")
    pattern = unchanged.file_pattern(rows)
    if pattern is None or pattern != marker["pattern"]:
        raise NotHere(f"{sid}: file path")
    paths = _files(pattern, roots)
    if [str(p) for p in paths] != [f[0] for f in marker["files"]]:
        raise NotHere(f"{sid}: the set of files changed")
    if unchanged.file_entries(paths) != marker["files"]:
        raise NotHere(f"{sid}: a file changed")
    return {
        "sid": sid,
        "registry": registry,
        "marker": marker,
        "started": started,
        "clock": clock,
    }


def _files(pattern: str, roots: list[Path]) -> list[Path]:
    """The files ``pattern`` names under the data roots, as the file connection finds them."""
    import glob

    base = Path(pattern).expanduser()
    if glob.has_magic(pattern):
        patterns = [str(base)] if base.is_absolute() else [str(r / base) for r in roots]
        found = sorted({Path(p) for pat in patterns for p in glob.glob(pat, recursive=True)})
        return [p.resolve() for p in found if p.is_file()]
    candidates = [base] if base.is_absolute() else [r / base for r in roots]
    chosen = next((c for c in candidates if c.exists()), candidates[0]).resolve()
    if not chosen.is_file():
        raise NotHere(f"not a file: {chosen}")
    return [chosen]


def _record(store: _Store, plan: dict[str, Any]) -> dict[str, Any]:
    """Write the unchanged run: history row, registry, state entries, event log."""
    sid, registry, marker = plan["sid"], plan["registry"], plan["marker"]
    started: datetime = plan["started"]
    now = datetime.now(UTC)
    duration = int((now - started).total_seconds() * 1000)
    name, kind, processed = (
        marker["connection_name"],
        marker["sync_type"],
        marker["records_processed"],
    )
    insert = (
        "INSERT INTO data_source_sync_history (source_id, source_key, sync_type, sync_status, "
        "trigger, connection_name, records_processed, records_inserted, records_updated, "
        "records_deleted, records_rejected, sync_duration_ms, sync_started_at, "
        "sync_completed_at, worker, created_at) "
        "VALUES (?, ?, ?, 'success', 'manual', ?, ?, 0, 0, 0, 0, ?, ?, ?, ?, ?)"
    )
    params = (
        registry["id"],
        sid,
        kind,
        name,
        processed,
        duration,
        store.stamp(started),
        store.stamp(now),
        f"{os.uname().nodename}:{os.getpid()}",
        store.stamp(started),
    )
    if store.pg:
        run_id = store.query(insert + " RETURNING id", params)[0]["id"]
    else:
        run_id = store.conn.execute(insert, params).lastrowid
    store.query(
        "UPDATE data_source_registry SET last_sync = ?, next_sync = ?, error_count = 0, "
        "last_error = NULL, updated_at = ? WHERE id = ?",
        (
            store.stamp(now),
            store.stamp(started + timedelta(seconds=float(marker["interval_s"]))),
            store.stamp(now),
            registry["id"],
        ),
    )
    # The entries the marked run wrote (its records' shape), as a run writes them again.
    store.query(
        "UPDATE data_source_sync_state SET run_id = ?, updated_at = ? WHERE source_id = ? "
        "AND run_id = ? AND NOT (mapping_id = ? AND state_key = ?)",
        (
            run_id,
            store.stamp(now),
            sid,
            marker["run_id"],
            unchanged.MARKER_MAPPING,
            unchanged.MARKER_KEY,
        ),
    )
    cast = "::jsonb" if store.pg else ""
    store.query(
        f"UPDATE data_source_sync_state SET state = ?{cast}, run_id = ?, updated_at = ? "
        "WHERE source_id = ? AND mapping_id = ? AND state_key = ?",
        (
            store.json({**marker, "run_id": run_id}),
            run_id,
            store.stamp(now),
            sid,
            unchanged.MARKER_MAPPING,
            unchanged.MARKER_KEY,
        ),
    )
    message = (
        f"sync {kind} succeeded: {processed} processed, 0 inserted, 0 updated, 0 deleted, "
        "0 rejected"
    )
    store.query(
        f"INSERT INTO infolog (created_at, level, source_id, run_id, event, message, details) "
        f"VALUES (?, 'info', ?, ?, 'sync.success', ?, ?{cast})",
        (store.stamp(now), sid, run_id, message, store.json({"connection": name})),
    )
    return {
        "run_id": run_id,
        "source_id": sid,
        "sync_type": kind,
        "sync_status": "success",
        "records_processed": processed,
        "records_inserted": 0,
        "records_updated": 0,
        "records_deleted": 0,
        "records_rejected": 0,
        "sync_duration_ms": int((time.perf_counter() - plan["clock"]) * 1000),
        "error_message": None,
        "connection_name": name,
        "details": {},
    }


def _print(results: list[dict[str, Any]], as_json: bool) -> None:
    """The table (or JSON) ``source sync`` prints."""
    if as_json:
        # The form of the normal command's orjson output (2-space indent, UTF-8 text).
        text = json.dumps(results, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write(text + "\n")
        return
    columns = ("processed", "inserted", "updated", "deleted", "rejected")
    header = ["source_id", "status", *columns, "ms"]
    rows = [
        [
            r["source_id"],
            "success",
            *(str(r[f"records_{c}"]) for c in columns),
            str(r["sync_duration_ms"]),
        ]
        for r in results
    ]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [
        "".join(f" {cell.ljust(w)} " for cell, w in zip(line, widths, strict=True))
        for line in [header, *rows]
    ]
    if _plain_output(max(len(line) for line in lines)):
        sys.stdout.write("".join(line + "\n" for line in lines))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*header, box=None)
    for row in rows:
        table.add_row(row[0], f"[green]{row[1]}[/]", *row[2:])
    Console().print(table)


def _plain_output(width: int) -> bool:
    """Whether the table goes out as plain text, as rich would print it: not to a
    terminal, no colours forced, and narrower than the width rich would wrap at."""
    if sys.stdout.isatty() or os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE"):
        return False
    columns = os.environ.get("COLUMNS", "")
    return width <= (int(columns) if columns.isdigit() else 80)
