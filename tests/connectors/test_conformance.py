"""Every built-in connection type passes the conformance suite
(:mod:`factorysync.testing.conformance`) against a real medium (:mod:`tests.connectors.media`),
and the suite fails a reader that ignores its saved state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from factorysync.connectors.base import Batch, Connector, ReadRequest
from factorysync.settings import Settings
from factorysync.testing.conformance import (
    BAD_CONFIG,
    CHECK,
    COLUMNAR_READ,
    DISCOVER,
    FULL_READ,
    INCREMENTAL,
    PUSH,
    READ_REFUSED,
    SUBSCRIBE,
    ConformanceError,
    Medium,
    check_conformance,
)
from tests.connectors import media
from tests.realtime.conftest import broker, publisher, topic_root  # noqa: F401 - fixtures
from tests.waiting import PATIENCE

Build = Callable[[pytest.FixtureRequest, Path], Medium]


def _closing(request: pytest.FixtureRequest, made: tuple[Medium, Callable[[], None]]) -> Medium:
    medium, close = made
    request.addfinalizer(close)
    return medium


CASES: dict[str, Build] = {
    "json": lambda r, d: media.file_medium(d, "rows.json", media.json_document),
    "ndjson": lambda r, d: media.file_medium(d, "rows.ndjson", media.ndjson_lines),
    "csv": lambda r, d: media.file_medium(d, "rows.csv", media.csv_text, delimiter=";"),
    "excel": lambda r, d: media.file_medium(d, "rows.xlsx", media.xlsx_workbook(d / "rows.xlsx")),
    "sqlite": lambda r, d: media.database_medium(r.getfixturevalue("sqlite_source")),
    "postgresql": lambda r, d: media.database_medium(r.getfixturevalue("pg_source")),
    "mariadb": lambda r, d: media.database_medium(r.getfixturevalue("maria_source")),
    "command": lambda r, d: media.command_medium(d),
    "artisan": lambda r, d: media.artisan_medium(d),
    "api": lambda r, d: _closing(r, media.api_medium()),
    "mqtt": lambda r, d: _closing(
        r,
        media.mqtt_medium(
            r.getfixturevalue("broker"),
            r.getfixturevalue("publisher"),
            r.getfixturevalue("topic_root"),
        ),
    ),
    "opcua": lambda r, d: _closing(r, media.opcua_medium()),
    "push": lambda r, d: _closing(r, media.push_medium(r.getfixturevalue("store"))),
}
# What each case is checked for, by what its type does (see the suite's docstring).
POLLED = [BAD_CONFIG, CHECK, DISCOVER, FULL_READ, INCREMENTAL]
COLUMNAR = [*POLLED, COLUMNAR_READ]
STREAMED = [BAD_CONFIG, CHECK, READ_REFUSED, DISCOVER, SUBSCRIBE]
PUSHED = [BAD_CONFIG, CHECK, READ_REFUSED, PUSH]
STEPS = {
    "json": COLUMNAR,
    "ndjson": COLUMNAR,
    "csv": COLUMNAR,
    "excel": POLLED,
    "sqlite": POLLED,
    "postgresql": COLUMNAR,  # COPY into Arrow batches
    "mariadb": POLLED,
    "command": POLLED,
    "artisan": POLLED,
    "api": POLLED,
    "mqtt": STREAMED,
    "opcua": STREAMED,
    "push": PUSHED,
}
MARKS = {"postgresql": pytest.mark.postgres, "mariadb": pytest.mark.mariadb}


@pytest.fixture
def backend() -> str:
    """The store of the push case: SQLite (push itself is tested on both in tests/api)."""
    return "sqlite"


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, ())) for name in CASES])
def case(request: pytest.FixtureRequest, data_dir: Path) -> tuple[str, Medium]:
    if request.param == "opcua":
        pytest.importorskip("asyncua")
    return request.param, CASES[request.param](request, data_dir)


def test_every_built_in_type_conforms(case: tuple[str, Medium], settings: Settings) -> None:
    name, medium = case
    steps = check_conformance(medium, settings=settings, patience=PATIENCE)
    assert steps == STEPS[name]


# -- a reader that forgets -----------------------------------------------------------------
def forgetful(connector: Connector) -> Connector:
    """``connector``'s type, reading as if nothing had been read before."""

    class Forgetful(type(connector)):  # type: ignore[misc]
        def read(self, request: ReadRequest) -> Iterator[Batch]:
            forgotten = replace(request, state={}, cursor_value=None)
            return super().read(forgotten)  # type: ignore[no-any-return]

    return Forgetful(connector.config, connector.auth, connector.context)


@pytest.mark.parametrize("name", ["json", "sqlite", "api"])
def test_a_reader_that_ignores_its_state_fails(
    name: str, request: pytest.FixtureRequest, data_dir: Path, make: Any, settings: Settings
) -> None:
    """The type passes as it is (above); made to ignore ReadRequest.state and
    cursor_value, it fails the incremental step, which says why."""
    medium = CASES[name](request, data_dir)

    def build() -> Connector:
        return forgetful(make(medium.connection_type, medium.config, medium.auth, 7))

    with pytest.raises(ConformanceError) as failed:
        check_conformance(medium, settings=settings, make_connector=build)
    assert failed.value.connection_type == medium.connection_type
    assert failed.value.step == INCREMENTAL
    message = str(failed.value)
    assert message.startswith(f"connection type {medium.connection_type!r}, incremental resume:")
    assert "row(s) from before the cursor" in message and "ignores its saved state" in message
