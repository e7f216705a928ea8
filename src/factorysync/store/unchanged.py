"""The unchanged-source marker: what the last complete run of a file source read, and
under which configuration.

A run of a file source that ends ``success`` stores a marker (a state entry of mapping 0,
key :data:`MARKER_KEY`): the run's id and counts, each file it read (path, size and
content hash) and digests of everything else that decides the run's result — the
source's registry row, its connections and mappings, its site, the settings that place
and read files, and its cursor and connector state. While all of these are what they
were, a full run would read the same records into the same rows and change nothing;
``factorysync source sync`` then records that run without reading
(:mod:`factorysync.cli.fast_sync`). Any other run removes the marker.

Both sides compute the digests here, from rows as the database driver returns them
(``query``: SQL with ``?`` placeholders → a list of dicts), so they agree whichever of
them asks. Only the standard library is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported: the command this serves starts in ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Query = Callable[[str, tuple[Any, ...]], list[dict[str, Any]]]

MARKER_KEY = "unchanged"
MARKER_MAPPING = 0
# Files larger than this together are never vouched for: hashing them is no longer free.
MAX_FILE_BYTES = 64 * 1024 * 1024
# Nor target tables of more rows: counting them is no longer free (a count stops here).
MAX_TARGET_ROWS = 1_000_000
# State that says where the next read starts: a change of it changes the next run.
READ_STATE_KEYS = ("cursor", "connector")

# Registry columns a run itself writes, or that are checked on their own.
_RUN_COLUMNS = frozenset(
    {
        "status",
        "last_sync",
        "next_sync",
        "error_count",
        "last_error",
        "created_at",
        "updated_at",
        "lease_owner",
        "lease_expires_at",
        "data_version",
    }
)
_STAMPS = frozenset({"created_at", "updated_at"})


def _plain(value: Any) -> Any:
    """The value as JSON holds it, however the driver returned it (JSON as text or as
    objects, booleans as integers or not)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return _plain(json.loads(value))
        except ValueError:
            return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def digest(value: Any) -> str:
    text = json.dumps(_plain(value), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _without(row: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}


def source_rows(query: Query, source_id: str) -> dict[str, Any] | None:
    """The registry row, connections, mappings and site of a source (None: no source)."""
    found = query("SELECT * FROM data_source_registry WHERE source_id = ?", (source_id,))
    if not found:
        return None
    registry = found[0]
    key = (registry["id"],)
    return {
        "registry": registry,
        "connections": query(
            "SELECT * FROM data_source_connections WHERE source_id = ? ORDER BY position, id",
            key,
        ),
        "mappings": query(
            "SELECT * FROM data_source_mappings WHERE source_id = ? ORDER BY id", key
        ),
        "site": query("SELECT * FROM sites WHERE name = ?", (registry["site"],)),
    }


def target_counts(query: Query, rows: dict[str, Any]) -> dict[str, int]:
    """The row count of each target table of the source's active mappings, counted up to
    one past :data:`MAX_TARGET_ROWS`. Rows deleted or added outside the source's runs (by
    hand, or by another source writing the table) change it; an UPDATE that keeps the
    count does not (``FACTORYSYNC_FAST_PATH=off`` runs the engine then). A missing table
    raises."""
    tables = sorted({str(m["target_table"]) for m in rows["mappings"] if _plain(m["is_active"])})
    counts = {}
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        sql = f"SELECT count(*) AS n FROM (SELECT 1 FROM {quoted} LIMIT ?) AS c"
        counts[table] = int(query(sql, (MAX_TARGET_ROWS + 1,))[0]["n"])
    return counts


def config_digest(rows: dict[str, Any], facts: dict[str, Any]) -> str:
    """Digest of what decides a run's result besides the files: the source's rows (not
    the columns runs write) and ``facts``, the settings that place and read files."""
    return digest(
        {
            "registry": _without(rows["registry"], _RUN_COLUMNS),
            "connections": [_without(r, _STAMPS) for r in rows["connections"]],
            "mappings": [_without(r, _STAMPS) for r in rows["mappings"]],
            "site": [_without(r, _STAMPS) for r in rows["site"]],
            "settings": facts,
        }
    )


def state_digest(query: Query, source_id: str) -> str:
    """Digest of the source's cursors and connector state."""
    rows = query(
        "SELECT mapping_id, state_key, state FROM data_source_sync_state "
        "WHERE source_id = ? AND state_key IN (?, ?) ORDER BY mapping_id, state_key",
        (source_id, *READ_STATE_KEYS),
    )
    return digest([[r["mapping_id"], r["state_key"], r["state"]] for r in rows])


def settings_facts(
    data_roots: list[Path], timezone: str, site: str, key_file: Path, key_set: bool
) -> dict[str, Any]:
    """The settings a file source's run depends on, as the marker compares them."""
    return {
        "data_roots": [str(p) for p in data_roots],
        "timezone": timezone,
        "site": site,
        "key_file": str(key_file),
        "key_set": key_set,
    }


def why_not(rows: dict[str, Any]) -> str | None:
    """Why a run of this source is never vouched for (None: it may be): anything but an
    active file source whose mappings are full or incremental, runs on an interval, and
    whose result could depend on the environment or the clock."""
    registry = rows["registry"]
    if registry["connection_type"] != "file":
        return "not a file source"
    if registry.get("schedule"):
        return "a cron schedule"
    primary = [c for c in rows["connections"] if _plain(c["is_primary"])]
    if len(primary) != 1 or primary[0]["connection_type"] != "file":
        return "no single primary file connection"
    for c in rows["connections"]:
        if _plain(c["authentication_config"]):
            return "an authentication config"
        if "${" in json.dumps(_plain(c["connection_config"])):
            return "a reference in the connection config"
    active = [m for m in rows["mappings"] if _plain(m["is_active"])]
    if not active:
        return "no active mapping"
    for m in active:
        if m["sync_strategy"] not in ("full", "incremental"):
            return f"sync strategy {m['sync_strategy']}"
        config = _plain(m["mapping_config"]) or {}
        if config.get("detect_deletes"):
            return "detect_deletes"
    return None


def file_pattern(rows: dict[str, Any]) -> str | None:
    """The primary connection's ``file_path``."""
    for c in rows["connections"]:
        if _plain(c["is_primary"]):
            pattern = (_plain(c["connection_config"]) or {}).get("file_path")
            return pattern if isinstance(pattern, str) and pattern else None
    return None


def file_entries(paths: list[Path]) -> list[list[Any]] | None:
    """[path, size, content hash] of each file (None: together they are larger than
    :data:`MAX_FILE_BYTES`, or one cannot be read)."""
    try:
        sizes = [path.stat().st_size for path in paths]
        if sum(sizes) > MAX_FILE_BYTES:
            return None
        found: list[list[Any]] = []
        for path, size in zip(paths, sizes, strict=True):
            with path.open("rb") as fh:
                found.append([str(path), size, hashlib.file_digest(fh, "sha256").hexdigest()])
    except OSError:
        return None
    return found


def sqlite_file(url: str) -> Path | None:
    """The database file of a plain ``sqlite:///path`` URL (None for anything else)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    name = url[len(prefix) :]
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(os.path.expanduser(name))
