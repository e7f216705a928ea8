"""YAML for configuration: plain data only, no anchors or aliases, bounded in size.

An alias lets a few hundred bytes of YAML stand for billions of values (the "billion
laughs" document): nine levels of nine aliases each expand to 387 million strings, and
every later step (validation, storing, encrypting, syncing) walks the expanded value.
Source declarations never need them, so :func:`load` refuses the first anchor or alias
and names its line. Nesting depth and the number of values are bounded as well, so that
a document without aliases cannot exhaust the stack or the memory either; the length of
the text is bounded by the caller (see :data:`factorysync.intake.SOURCES_FILE_MAX_BYTES`).

The checks run on the parser's event stream, which costs little and holds nothing,
before a single value is built.

This module sits below everything else: it imports only PyYAML and the error tree.
"""

from __future__ import annotations

from typing import Any

import yaml

from factorysync.errors import ConfigError


class InvalidYaml(ConfigError):
    """The text is not YAML at all (a syntax error), as opposed to YAML that is refused."""


# Nesting levels of mappings and sequences (a source's config sits about 7 levels down).
MAX_DEPTH = 64
# Scalars, mappings and sequences in one document: 500 sources of 400 values each fit,
# and building that many takes about 2 s and 150 MB.
MAX_NODES = 200_000

# libyaml's parser when PyYAML was built with it (about 10 times faster), else PyYAML's own.
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str, origin: str) -> Any:
    """The single YAML document in ``text`` as plain data (None when empty).

    ``origin`` names the text in errors (a file name, or e.g. ``--set port``). Every
    problem is a :class:`ConfigError` naming ``origin`` and, where known, the line
    (:class:`InvalidYaml` when the text does not parse).
    """
    try:
        _check_events(text, origin)
        return yaml.load(text, Loader=_Loader)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidYaml(f"{origin}: invalid YAML{where}: {problem}") from None
    except ValueError as exc:
        # A value PyYAML builds with Python itself, e.g. an integer of over 4,300 digits.
        raise ConfigError(f"{origin}: invalid YAML value: {str(exc).partition(';')[0]}") from None


def _check_events(text: str, origin: str) -> None:
    """Refuse anchors, aliases, deep nesting and too many values, at the first one."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            problem = "YAML anchors and aliases are not accepted (write each value out)"
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            continue
        elif isinstance(event, yaml.NodeEvent):
            nodes += 1
            depth += isinstance(event, yaml.CollectionStartEvent)
            if nodes > MAX_NODES:
                problem = f"more than {MAX_NODES:,} values in one document; split it into files"
            elif depth > MAX_DEPTH:
                problem = f"nested more than {MAX_DEPTH} levels deep"
            else:
                continue
        else:
            continue
        line = "" if event.start_mark is None else f" line {event.start_mark.line + 1}"
        raise ConfigError(f"{origin}{line}: {problem}")
