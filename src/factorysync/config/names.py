"""Names and paths of declarations: column identifiers, source field paths, time zones,
and finding a value in a record by its path."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic_core import PydanticCustomError

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_CAMEL_1 = re.compile(r"(.)([A-Z][a-z]+)")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_PATH_INDEX = re.compile(r"\[(\d+)\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_SOURCE_PATH = 1_000  # characters of a source path or field name


def snake_case(name: str) -> str:
    """Column name for a source field: ``machineId`` → ``machine_id``, ``Temp (C)`` → ``temp_c``."""
    text = _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", str(name)))
    text = _NON_WORD.sub("_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text) or "field"
    if text[0].isdigit():
        text = "c_" + text
    return text[:63]


def check_identifier(name: str, what: str) -> str:
    """A target-side name (table or column): it ends up in SQL, so only a plain
    identifier is accepted, whatever the dialect quotes."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        # A keyed error (a ValueError): the console says it in the user's language.
        raise PydanticCustomError(
            "fs.bad_identifier",
            "{what} {name} is not a valid name: use lower-case letters, digits and "
            "underscores, starting with a letter or underscore, at most 63 characters",
            {"what": what, "name": shown},
        )
    return name


def check_source_name(name: str, what: str) -> str:
    """A source-side name or path: anything a document or a CSV header may hold (spaces,
    capitals, accents), but bounded and without control characters."""
    if len(name) > MAX_SOURCE_PATH:
        raise ValueError(f"{what} is {len(name)} characters long: the limit is {MAX_SOURCE_PATH}")
    if _CONTROL.search(name):
        raise ValueError(f"{what} {name[:80]!r} holds a control character")
    return name


def check_source_path(path: str, what: str) -> str:
    check_source_name(path, what)
    parse_path(path)
    return path


def check_zone(name: str | None) -> str | None:
    """A time zone setting, refused with a clear message unless it is a known IANA name."""
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r} (use an IANA name like Asia/Jakarta or UTC)"
            ) from None
    return name


def parse_path(path: str) -> tuple[str | int, ...]:
    """``a.b[0].c`` or ``a.b.0.c`` → ``("a", "b", 0, "c")``."""
    parts: list[str | int] = []
    for part in _PATH_INDEX.sub(r".\1", path).split("."):
        if part == "":
            raise ValueError(f"path {path!r} has an empty segment")
        parts.append(int(part) if part.isdigit() else part)
    return tuple(parts)


MISSING = object()  # what get_path finds where a path leads nowhere


def get_path(record: Any, path: tuple[str | int, ...]) -> Any:
    value = record
    for part in path:
        if isinstance(value, dict):
            value = value.get(part if isinstance(part, str) else str(part), MISSING)
        elif isinstance(value, list) and isinstance(part, int):
            value = value[part] if part < len(value) else MISSING
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value
