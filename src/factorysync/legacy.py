"""Import of a dashboard front end's ``default_source_data`` list.

Reads a ``constant.js`` (``export const default_source_data = [ ... ];`` in JavaScript
object-literal syntax: comments, trailing commas, bare or quoted keys) or a JSON list, and
turns each ``{id, name, type, fileName, filePath}`` entry into a JSON file source.

An entry whose source exists already (the registry's ``legacy_id`` is the entry's id, or
a source of the entry's slug has no legacy id yet) is merged, not replaced: the import
sets only what the list owns — ``name``, ``legacy_id``, ``category`` (when the entry has
one) and, on a JSON file connection, ``file_path``, ``file_name`` and ``legacy_path`` —
and never touches the source's mappings, target tables, schedule, validation or other
connection settings, which an engineer may have configured by hand since.
"""

from __future__ import annotations

import fnmatch
import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5
import orjson

from factorysync.config import SourceDecl
from factorysync.connectors.file import file_type_of
from factorysync.engine.mapping import snake_case
from factorysync.errors import ConfigError
from factorysync.intake import parse_source

_EXPORT = re.compile(r"\bdefault_source_data\s*=\s*\[")
CANDIDATE_KEY = re.compile(r"(^id$|_id$|Id$|_code$|Code$|^code$|^date$|_date$|^ts$|^timestamp$)")


def _array_text(text: str, start: int) -> str:
    """The text of the JS array starting at ``start`` (a '['), honouring strings/comments."""
    depth, i, n = 0, start, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'`":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            i = j
        elif text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                break
        elif text.startswith("/*", i):
            i = text.find("*/", i) + 1
            if i <= 0:
                break
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1
    raise ConfigError("default_source_data: the array is not closed (missing ']')")


def parse_legacy(text: str, origin: str = "legacy file") -> list[dict[str, Any]]:
    """The entries of a constant.js or JSON list, as dicts."""
    stripped = text.lstrip("\ufeff").lstrip()
    if stripped.startswith("["):
        try:
            entries = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            entries = _json5(stripped, origin)
    else:
        match = _EXPORT.search(text)
        if match is None:
            raise ConfigError(f"{origin}: no 'default_source_data = [...]' found")
        line = text.count("\n", 0, match.start()) + 1
        entries = _json5(_array_text(text, match.end() - 1), f"{origin} (array at line {line})")
    if not isinstance(entries, list):
        raise ConfigError(f"{origin}: expected a list of sources")
    problems = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"entry {i}: not an object")
            continue
        for key in ("id", "name", "filePath"):
            if entry.get(key) in (None, ""):
                problems.append(f"entry {i} ({entry.get('name', '?')!r}): missing {key!r}")
        if entry.get("type", "json") not in ("json", "ndjson"):
            problems.append(
                f"entry {i} ({entry.get('name', '?')!r}): type {entry.get('type')!r} "
                "is not a JSON file source"
            )
    if problems:
        raise ConfigError(f"{origin}: {len(problems)} problem(s)", problems)
    return entries


def _json5(text: str, origin: str) -> Any:
    try:
        return json5.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{origin}: not valid JavaScript object literals: {exc}") from None


def _document_shape(path: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """Where the records sit in a JSON file (records_path), and the records."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None, []
    if isinstance(document, list):
        return None, [r for r in document if isinstance(r, dict)]
    if isinstance(document, dict):
        lists = [
            k
            for k, v in document.items()
            if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)
        ]
        if len(lists) == 1:
            return lists[0], document[lists[0]]
        return None, [document]
    return None, []


def infer_primary_key(records: list[dict[str, Any]]) -> list[str]:
    """A key from the data: an identifying field (or pair) that is unique and never empty."""
    if not records:
        return []
    fields = list(records[0])

    def usable(names: tuple[str, ...]) -> bool:
        seen = set()
        for r in records:
            values = tuple(r.get(n) for n in names)
            if any(v is None or v == "" or isinstance(v, dict | list) for v in values):
                return False
            if values in seen:
                return False
            seen.add(values)
        return True

    preferred = [f for f in fields if CANDIDATE_KEY.search(f)]
    for name in preferred:
        if usable((name,)):
            return [snake_case(name)]
    others = [f for f in fields if f not in preferred]
    for first in preferred:
        for second in preferred + others:
            if second != first and usable((first, second)):
                return [snake_case(first), snake_case(second)]
    return []


def slug(name: str, taken: set[str]) -> str:
    base = snake_case(Path(name).stem) or "source"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


@dataclass
class Create:
    """A new source for a legacy entry."""

    decl: SourceDecl
    details: list[str] = field(default_factory=list)


@dataclass
class Merge:
    """What an import changes on a source that exists: only what the legacy list owns."""

    source_id: str
    values: dict[str, Any] = field(default_factory=dict)  # registry columns to set
    connection_name: str | None = None  # the file connection whose config changes
    connection_config: dict[str, Any] | None = None  # its whole new config
    details: list[str] = field(default_factory=list)  # "field: old → new", one per change


@dataclass
class ImportPlan:
    items: list[Create | Merge]  # in the order of the entries
    notes: list[str]


def _same_file(stored: Any, full: Path, roots: list[Path]) -> bool:
    """Whether a stored ``file_path`` (absolute, relative to a data root, or a glob)
    already names ``full``: then the hand-written form is kept."""
    if not isinstance(stored, str) or not stored:
        return False
    raw = Path(stored).expanduser()
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    if glob.has_magic(stored):
        return any(fnmatch.fnmatchcase(str(full), str(c)) for c in candidates)
    return any(c.resolve() == full for c in candidates)


def _merge(
    source: dict[str, Any],
    entry: dict[str, Any],
    full: Path,
    roots: list[Path],
    notes: list[str],
) -> Merge:
    sid = source["source_id"]
    merge = Merge(sid)
    owned = {"name": str(entry["name"]), "legacy_id": str(entry["id"])}
    if entry.get("category") is not None:
        owned["category"] = str(entry["category"])
    for column, new in owned.items():
        if source.get(column) != new:
            merge.values[column] = new
            merge.details.append(f"{column}: {source.get(column)!r} → {new!r}")
    primary = next((c for c in source["connections"] if c["is_primary"]), None)
    config = dict(primary["connection_config"] or {}) if primary else {}
    file_type = file_type_of(config) if primary and primary["connection_type"] == "file" else None
    if file_type not in ("json", "ndjson"):
        kind = "no connection" if primary is None else f"a {primary['connection_type']}"
        if file_type is not None:
            kind = f"a {file_type} file"
        notes.append(
            f"{sid}: its primary connection is {kind}, not a JSON file: "
            f"filePath {entry['filePath']!r} is not applied"
        )
        return merge
    assert primary is not None  # a JSON file type comes from a primary connection
    wanted: dict[str, Any] = {
        "file_path": str(full),
        "file_name": entry.get("fileName"),
        "legacy_path": str(entry["filePath"]),
    }
    if _same_file(config.get("file_path"), full, roots):
        del wanted["file_path"]
    changed = {k: v for k, v in wanted.items() if config.get(k) != v}
    if changed:
        label = f"connections.{primary['connection_name']}.connection_config"
        for key, new in changed.items():
            merge.details.append(f"{label}.{key}: {config.get(key)!r} → {new!r}")
        merge.connection_name = primary["connection_name"]
        merge.connection_config = {**config, **changed}
        if "file_path" in changed and not full.exists():
            notes.append(f"{sid}: {full} does not exist yet")
    return merge


def plan_import(
    entries: list[dict[str, Any]],
    root: Path,
    stored: list[dict[str, Any]],
    roots: list[Path] | None = None,
) -> ImportPlan:
    """What importing ``entries`` does to a registry holding ``stored`` (each a registry
    row with its ``connections``): a :class:`Create` per new source, a :class:`Merge` per
    existing one. ``roots``: the data roots, which relative stored file paths start from.
    """
    roots = roots or []
    by_legacy = {str(s["legacy_id"]): s for s in stored if s.get("legacy_id") is not None}
    by_id = {s["source_id"]: s for s in stored}
    taken = set(by_id)
    linked: set[str] = set()
    items: list[Create | Merge] = []
    notes: list[str] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        # A front end's filePath is a URL path under its public folder, so "/data/x.json"
        # and "data/x.json" both live under --root.
        file_path = str(entry["filePath"]).lstrip("/")
        full = (root / file_path).resolve()
        name_of_file = entry.get("fileName") or file_path
        source = by_legacy.get(str(entry["id"]))
        if source is None:
            # A hand-made source of the id this entry would get: linked, not replaced
            # (and by one entry only).
            same_id = by_id.get(snake_case(Path(name_of_file).stem) or "source")
            if (
                same_id is not None
                and same_id.get("legacy_id") is None
                and same_id["source_id"] not in linked
            ):
                source = same_id
                linked.add(same_id["source_id"])
                notes.append(
                    f"{source['source_id']}: exists without a legacy id: linked to entry "
                    f"{entry['id']!r} ({entry['name']!r})"
                )
        if source is not None:
            items.append(_merge(source, entry, full, roots, notes))
            continue
        source_id = slug(name_of_file, taken)
        records_path, records = _document_shape(full)
        key = infer_primary_key(records)
        if not full.exists():
            notes.append(f"{source_id}: {full} does not exist yet")
        elif not key:
            notes.append(f"{source_id}: no unique key found; rows are matched by content")
        raw = {
            "source_id": source_id,
            "name": str(entry["name"]),
            "source_type": "json",
            "legacy_id": str(entry["id"]),
            "category": entry.get("category"),
            "created_by": "import-legacy",
            "connections": [
                {
                    "connection_name": "primary",
                    "connection_type": "file",
                    "connection_config": {
                        "file_path": str(full),
                        "file_type": "json",
                        "file_name": entry.get("fileName"),
                        "legacy_path": str(entry["filePath"]),
                    },
                }
            ],
            "mappings": [
                {
                    "target_table": source_id,
                    "mapping_config": {"records_path": records_path, "primary_key": key},
                }
            ],
        }
        decl, found = parse_source(raw, f"entry {i} ({entry['name']!r})")
        problems += found
        if decl is not None:
            details = [
                f"name: {decl.name!r}",
                f"file: {full}",
                f"target_table: {source_id} (primary_key: {key or 'none: rows by content'})",
            ]
            items.append(Create(decl, details))
    if problems:
        raise ConfigError("cannot import", problems)
    return ImportPlan(items, notes)
