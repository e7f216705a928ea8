"""Source declarations as they enter: checked against the connection types that exist.

``apply`` (a sources file), the API and the console validate a declaration here: its
size first, then the models of :mod:`factorysync.config` with the connector registry's
types (:data:`REGISTERED_TYPES`), then each ``connection_config`` against its type.
Every problem in a file is reported at once, each naming the source and the field,
e.g.::

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

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from factorysync.config import SourceDecl, SourcesFile
from factorysync.config.sites import SiteDecl
from factorysync.connectors.registry import (
    capability_of,
    check_connection_type,
    check_source_type,
    default_connection_type,
    format_validation_error,
    validate_connection_config,
)
from factorysync.errors import ConfigError, Problem
from factorysync.yamlsafe import load as load_yaml

# A sources file: 500 sources with 40 mapped fields each take about 1 MB.
SOURCES_FILE_MAX_BYTES = 8 * 1024 * 1024
# The free-form JSON of one source (connection, authentication and mapping configs
# together), as compact JSON; a mapping of 200 fields takes about 10 KiB.
CONFIG_MAX_BYTES = 256 * 1024
# Nesting levels within one of those configs (a mapping's field spec sits 3 levels down).
CONFIG_MAX_DEPTH = 32


class RegisteredTypes:
    """The connector registry's types (built-in and plugin), as declarations are
    validated against them (:class:`factorysync.config.ConnectionTypes`): a name it does
    not know is refused as a Literal would refuse it, read again at each use."""

    def check_source_type(self, value: str) -> str:
        return check_source_type(value)

    def check_connection_type(self, value: str) -> str:
        return check_connection_type(value)

    def default_connection_type(self, source_type: str) -> str:
        found = default_connection_type(source_type)
        if found is None:
            raise KeyError(source_type)
        return found

    def scheduled(self, connection_type: str | None) -> bool:
        if connection_type is None:
            return True
        return not (
            capability_of(connection_type, "streams") or capability_of(connection_type, "pushes")
        )


REGISTERED_TYPES = RegisteredTypes()


def declaration(raw: Any, *, stored: bool = False) -> SourceDecl:
    """``raw`` validated as a source declaration against the registered types; raises
    pydantic's ValidationError. ``stored``: read back from the registry, taken as it is
    (its cadence is not checked again)."""
    context: dict[str, Any] = {"types": REGISTERED_TYPES}
    if stored:
        context["stored"] = True
    return SourceDecl.model_validate(raw, context=context)


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


def check_config_budget(raw: Any) -> list[Problem]:
    """Problems with the size of a raw source declaration's free-form configs (see the
    module docstring); empty when it is within the budget."""
    problems = []
    total = 0
    for where, value in _configs(raw):
        size, depth = _json_size(value, CONFIG_MAX_BYTES - total)
        if depth > CONFIG_MAX_DEPTH:
            problems.append(
                Problem(
                    where,
                    f"nested more than {CONFIG_MAX_DEPTH} levels deep",
                    "fs.config_too_deep",
                    {"levels": str(CONFIG_MAX_DEPTH)},
                )
            )
        total += size
        if total > CONFIG_MAX_BYTES:
            problems.append(
                Problem(
                    where,
                    "too large: the connection, authentication and mapping configs of one "
                    f"source may take at most {CONFIG_MAX_BYTES // 1024} KiB as JSON together",
                    "fs.config_too_large",
                    {"kib": str(CONFIG_MAX_BYTES // 1024)},
                )
            )
            break
    return problems


def parse_source(raw: Any, where: str = "source") -> tuple[SourceDecl | None, list[str]]:
    """Validate one source declaration; returns (source or None, problems).

    The size budget is checked first, so that an oversized declaration costs no more
    than looking at its first :data:`CONFIG_MAX_BYTES` bytes."""
    too_big = check_config_budget(raw)
    if too_big:
        return None, [p.within(where, ": ") for p in too_big]
    try:
        decl = declaration(raw)
    except ValidationError as exc:
        return None, [format_validation_error(e).within(where, ": ") for e in exc.errors()]
    problems: list[str] = []
    for i, conn in enumerate(decl.connections):
        assert conn.connection_type is not None
        for p in validate_connection_config(conn.connection_type, conn.connection_config):
            problems.append(p.within(f"{where}: connections[{i}].connection_config"))
    return decl, problems


@dataclass
class Declarations:
    """What a sources file declares: its sources and its sites, in order."""

    sources: list[SourceDecl] = field(default_factory=list)
    sites: list[SiteDecl] = field(default_factory=list)


def _parse_sites(raws: list[dict[str, Any]]) -> tuple[list[SiteDecl], list[str]]:
    sites: list[SiteDecl] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raws):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"sites[{index}]" + (f" (name {name!r})" if isinstance(name, str) else "")
        try:
            sites.append(SiteDecl.model_validate(raw))
        except ValidationError as exc:
            problems += [format_validation_error(e).within(where, ": ") for e in exc.errors()]
        if isinstance(name, str):
            if name in seen:
                problems.append(f"{where}: name repeats sites[{seen[name]}]")
            seen.setdefault(name, index)
    return sites, problems


def parse_sources(document: Any, origin: str = "config") -> list[SourceDecl]:
    """Validate a whole document's sources; raises ConfigError listing every problem."""
    return parse_declarations(document, origin).sources


def parse_declarations(document: Any, origin: str = "config") -> Declarations:
    """Validate a whole document (sources and sites); raises ConfigError listing every
    problem."""
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
    sites, problems = _parse_sites(top.sites)
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
    return Declarations(decls, sites)


def load_sources_file(path: Path) -> list[SourceDecl]:
    """The sources declared in a YAML file (see :func:`load_declarations`)."""
    return load_declarations(path).sources


def load_declarations(path: Path) -> Declarations:
    """The sources and sites declared in a YAML file; raises ConfigError naming the file
    (and the line, where there is one) for every kind of problem."""
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
    return parse_declarations(load_yaml(text, str(path)), str(path))
