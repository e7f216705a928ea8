"""Which connection types poll, stream, push or relay is told from a table for the
built-in types, so that commands such as ``source list`` and ``status`` import no
driver's module; the table says what the classes themselves declare."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from factorysync.connectors import registry
from factorysync.connectors.base import Connector, ReadRequest, Sink


def test_the_table_says_what_each_built_in_class_declares() -> None:
    assert set(registry._BUILTIN_CAPABILITIES) == set(registry.BUILTIN.values())
    for name, ref in registry.BUILTIN.items():
        cls = registry.connector_class(name)
        declared = tuple(c for c in registry.CAPABILITIES if getattr(cls, c))
        assert registry._BUILTIN_CAPABILITIES[ref] == declared, name


def test_asking_imports_no_connector_module() -> None:
    script = (
        "import sys\n"
        "from factorysync.connectors import registry\n"
        "print(registry.types_with('streams'), registry.types_with('polls'),\n"
        "      registry.capability_of('push', 'pushes'), registry.capability_of('api', 'streams'))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('factorysync.connectors.')\n"
        "                and m.split('.')[2] not in ('base', 'registry'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    answers, loaded = done.stdout.strip().splitlines()
    assert answers == (
        "['mqtt', 'opcua', 'modbus', 's7'] ['file', 'database', 'api', 'artisan', 'command'] "
        "True False"
    )
    assert loaded == "[]"


class StreamingStandIn(Connector):
    """A built-in name bound to another class (as tests do): asked by its class."""

    type_name = "command"
    polls = False
    streams = True

    def _check(self) -> str:
        return "ready"

    def read(self, request: ReadRequest) -> None:  # type: ignore[override]
        raise NotImplementedError

    def subscribe(self, sink: Sink, stop: threading.Event) -> None:
        stop.wait()


def test_a_type_bound_to_another_class_is_asked_by_its_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry.BUILTIN, "command", f"{__name__}:StreamingStandIn")
    assert "command" in registry.types_with("streams")
    assert "command" not in registry.types_with("polls")
    assert registry.capability_of("command", "streams")
    monkeypatch.undo()
    assert "command" in registry.types_with("polls")
    assert not registry.capability_of("command", "streams")
