"""Import of a dashboard front end's ``default_source_data`` list.

Reads a ``constant.js`` (``export const default_source_data = [ ... ];`` in JavaScript
object-literal syntax: comments, trailing commas, bare or quoted keys) or a JSON list, and
turns each ``{id, name, type, fileName, filePath}`` entry into a JSON file source.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import json5
import orjson

from factorysync.config import SourceDecl, parse_source
from factorysync.engine.mapping import snake_case
from factorysync.errors import ConfigError

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


def declarations(
    entries: list[dict[str, Any]], root: Path, existing: dict[str, str] | None = None
) -> tuple[list[SourceDecl], list[str]]:
    """Source declarations for legacy entries; notes say what was inferred.

    ``existing`` maps legacy ids already in the registry to their source_id, so a second
    import updates those sources instead of creating new ones.
    """
    existing = existing or {}
    decls: list[SourceDecl] = []
    notes: list[str] = []
    problems: list[str] = []
    taken = set(existing.values())
    for i, entry in enumerate(entries):
        # A front end's filePath is a URL path under its public folder, so "/data/x.json"
        # and "data/x.json" both live under --root.
        file_path = str(entry["filePath"]).lstrip("/")
        full = (root / file_path).resolve()
        source_id = existing.get(str(entry["id"])) or slug(
            entry.get("fileName") or file_path, taken
        )
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
            decls.append(decl)
    if problems:
        raise ConfigError("cannot import", problems)
    return decls, notes
