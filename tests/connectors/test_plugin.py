"""A connection type from outside factorysync: a tiny distribution, made here on sys.path,
whose entry points (group ``factorysync.connectors``) name a polled type and a streaming
one. With no factorysync file changed, ``apply`` accepts their sources, ``source
templates`` lists the template the polled one declares, the console's form offers both,
a sync of the polled one writes rows, the polled one passes the conformance suite, and the
realtime service subscribes the streaming one and writes what it hands over. A broken plugin (a missing module, an entry point
that is no Connector class) is refused by name with the reason and stops nothing else."""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient

from factorysync import services
from factorysync.api import create_app
from factorysync.config import ConnectionDecl, SourceDecl
from factorysync.connectors import registry
from factorysync.engine.runner import Runner
from factorysync.errors import ConfigError
from factorysync.realtime import PUSH_CONNECTION_TYPES, REALTIME_CONNECTION_TYPES
from factorysync.realtime.service import RealtimeService, shared
from factorysync.store.registry import get_source
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from factorysync.testing.conformance import Medium, Sample, check_conformance
from tests.conftest import run_cli
from tests.waiting import wait_until
from tests.web.conftest import add_users
from tests.web.test_pages import log_in

MODULE = "fs_test_plugin"
PLUGIN = '''
"""Two connection types, as a plugin author writes them."""

import threading
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from factorysync.connectors.base import Batch, Connector, ReadRequest, Sink, SourceKind
from factorysync.errors import ConnectorFatal, ConnectorRetriable


class CounterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    machine: str = Field(description="Machine id stamped on every row")
    rows: int = Field(default=3, ge=1, le=1000, description="Rows one read returns")


class CounterConnector(Connector):
    """Polled: every read returns ``rows`` numbered rows."""

    type_name = "counter"
    config_model = CounterConfig
    source_types = (SourceKind("counter", "Counter", "CNT", "cyan"),)
    templates = [
        {
            "template_name": "counter_line",
            "display_name": "Counter of a line",
            "description": "Numbered rows of one machine",
            "source_type": "counter",
            "connection_config": {"machine": "M-1", "rows": 3},
            "authentication_config": {},
            "mapping_config": {"primary_key": ["machine", "n"]},
        }
    ]

    def _check(self) -> str:
        return f"counter of {self.config.machine} ready"

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        yield Batch([{"machine": self.config.machine, "n": i} for i in range(self.config.rows)])


class TickerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    machine: str = Field(description="Machine id stamped on every message")
    ticks: int = Field(default=5, ge=1, description="Messages sent once subscribed")
    # "once": the first subscription fails as a transient error; "always": as a fatal one.
    fail: Literal["never", "once", "always"] = "never"


class TickerConnector(Connector):
    """Streaming: once subscribed, hands over ``ticks`` messages, then waits for stop."""

    type_name = "ticker"
    config_model = TickerConfig
    polls = False
    streams = True
    attempts: dict[str, int] = {}  # subscriptions so far, by machine

    def _check(self) -> str:
        return "ticker ready"

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        raise NotImplementedError("a stream")

    def subscribe(self, sink: Sink, stop: threading.Event) -> None:
        machine = self.config.machine
        TickerConnector.attempts[machine] = TickerConnector.attempts.get(machine, 0) + 1
        if self.config.fail == "always":
            raise ConnectorFatal(f"ticker of {machine} refused the login")
        if self.config.fail == "once" and TickerConnector.attempts[machine] == 1:
            raise ConnectorRetriable(f"ticker of {self.config.machine} is restarting")
        sink.status(None, subscribed=f"ticker of {self.config.machine}")
        for seq in range(self.config.ticks):
            sink.put([{"machine": self.config.machine, "seq": seq}])
        stop.wait()
'''
SOURCES = {
    "sources": [
        {
            "source_id": "line_counter",
            "name": "Line counter",
            "source_type": "counter",
            "connections": [{"connection_config": {"machine": "M-7", "rows": 4}}],
            "mappings": [
                {
                    "target_table": "counter_rows",
                    "mapping_config": {"primary_key": ["machine", "n"]},
                }
            ],
        },
        {
            "source_id": "line_ticker",
            "name": "Line ticker",
            "source_type": "ticker",
            "connections": [{"connection_config": {"machine": "M-8", "ticks": 6}}],
            "mappings": [
                {
                    "target_table": "ticker_rows",
                    "sync_strategy": "realtime",
                    "mapping_config": {"primary_key": ["machine", "seq"]},
                }
            ],
        },
    ]
}


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder holding an installed distribution of the plugin, put on sys.path (and on
    PYTHONPATH, for the command line in a subprocess)."""
    site = tmp_path / "site"
    package = site / MODULE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "fs_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fs-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[factorysync.connectors]\n"
        f"counter = {MODULE}:CounterConnector\n"
        f"ticker = {MODULE}:TickerConnector\n"
    )
    monkeypatch.syspath_prepend(str(site))
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    yield site
    sys.modules.pop(MODULE, None)


def install(site: Path, name: str, entry_points: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution with only metadata and ``entry_points`` in ``site``, put on the paths."""
    site.mkdir(parents=True, exist_ok=True)
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[factorysync.connectors]\n{entry_points}")
    monkeypatch.syspath_prepend(str(site))
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


MISSING = "missing = fs_no_such_module:MissingConnector"
NOT_A_CLASS = "getcwd = os:getcwd"


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution whose entry points name a module that is not installed and a
    function that is no Connector class."""
    site = tmp_path / "broken_site"
    install(site, "fs_broken_plugin", f"{MISSING}\n{NOT_A_CLASS}\n", monkeypatch)
    return site


def test_a_plugin_type_is_a_type_like_any_other(plugin: Path, store: Store, tmp_path: Path) -> None:
    assert registry.connector_class("counter").__module__ == MODULE
    assert "ticker" in REALTIME_CONNECTION_TYPES and "counter" not in REALTIME_CONNECTION_TYPES
    assert "ticker" not in PUSH_CONNECTION_TYPES
    assert registry.DEFAULT_CONNECTION_TYPE["ticker"] == "ticker"

    sources = tmp_path / "sources.yaml"
    sources.write_text(yaml.safe_dump(SOURCES))
    applied = run_cli("apply", str(sources))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "line_counter" in applied.stdout and "line_ticker" in applied.stdout

    listed = run_cli("source", "templates", "--json", check=True)
    by_name = {t["template_name"]: t for t in orjson.loads(listed.stdout)}
    assert by_name["counter_line"]["connection_type"] == "counter"

    result = Runner(store).sync("line_counter")
    assert result.sync_status == "success", result.error_message
    with store.connect() as conn:
        rows = read_rows(conn, "counter_rows")
    assert sorted((r["machine"], r["n"]) for r in rows) == [("M-7", n) for n in range(4)]

    service = RealtimeService(store, file_watch=False)
    try:
        service.reconcile()
        assert "line_ticker" in service.workers, service.failed

        def landed() -> list[tuple[str, int]]:
            with store.connect() as conn:
                try:
                    found = read_rows(conn, "ticker_rows")
                except Exception:  # no flush yet: the table does not exist
                    return []
            return sorted((r["machine"], r["seq"]) for r in found)

        wait_until(lambda: len(landed()) == 6, what="the ticker's records written", state=landed)
        assert landed() == [("M-8", seq) for seq in range(6)]
    finally:
        service.stop()


def test_a_plugin_type_passes_the_conformance_suite(plugin: Path) -> None:
    # The counter's rows are numbered 0 … rows - 1: its config is its medium.
    config: dict[str, Any] = {"machine": "M-7", "rows": 1}

    def write(rows: list[dict[str, Any]]) -> None:
        config["rows"] = rows[-1]["n"] + 1

    medium = Medium("counter", config, write, resumes=False)  # every read returns every row
    sample = Sample(row=lambda n: {"machine": "M-7", "n": n}, first=0, size=4, key="n", cursor="n")
    # One batch per read, of at most 1000 rows (the config's limit).
    steps = check_conformance(medium, sample=sample, batch_size=1000)
    assert steps == ["bad config", "check", "discover", "full read", "incremental resume"]


def test_the_console_offers_a_plugin_type(plugin: Path, store: Store) -> None:
    add_users(store)
    with TestClient(create_app(store)) as client:
        log_in(client, "admin")
        picker = client.get("/sources/new").text
        assert 'data-kind="counter"' in picker and 'data-kind="ticker"' in picker
        assert "tone-cyan" in picker and ">CNT<" in picker and "Counter" in picker
        form = client.get("/sources/new?type=counter").text
        # The inputs come from the config model, with its descriptions as help.
        assert 'name="cfg.machine"' in form and 'name="cfg.rows"' in form
        assert "Machine id stamped on every row" in form
        assert 'name="connection_type" value="counter"' in form


def test_an_unknown_type_is_still_refused_by_name(store: Store, tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(yaml.safe_dump(SOURCES))
    refused = run_cli("apply", str(sources))
    assert refused.returncode != 0
    assert "source_type: Input should be 'json', 'csv'" in refused.stdout + refused.stderr


def ticker(source_id: str, fail: str) -> dict[str, object]:
    source = orjson.loads(orjson.dumps(SOURCES["sources"][1]))
    source["source_id"] = source_id
    source["connections"][0]["connection_config"] |= {"machine": source_id, "fail": fail}
    source["mappings"][0]["target_table"] = f"{source_id}_rows"
    return source


def test_a_stream_is_subscribed_again_after_a_transient_error_and_stopped_by_a_fatal_one(
    plugin: Path, store: Store
) -> None:
    services.create_source(store, ticker("flaky_ticker", "once"))
    services.create_source(store, ticker("refused_ticker", "always"))
    service = RealtimeService(store, file_watch=False)
    try:
        service.reconcile()
        assert {"flaky_ticker", "refused_ticker"} <= set(service.workers), service.failed

        def rows_of(table: str) -> int:
            with store.connect() as conn:
                try:
                    return len(read_rows(conn, table))
                except Exception:  # no flush yet: the table does not exist
                    return 0

        wait_until(lambda: rows_of("flaky_ticker_rows") == 6, what="rows after the retry")
        assert registry.connector_class("ticker").attempts["flaky_ticker"] == 2  # type: ignore[attr-defined]

        def refused() -> str | None:
            with store.connect() as conn:
                return services.public_source(store, get_source(conn, "refused_ticker"))[
                    "last_error"
                ]

        wait_until(lambda: "refused the login" in (refused() or ""), what="the fatal error")
        service.reconcile()
        assert "refused_ticker" in service.failed and "refused_ticker" not in service.workers
        assert "flaky_ticker" in service.workers
    finally:
        service.stop()


CSV_SOURCE = {
    "source_id": "line_csv",
    "name": "Line CSV",
    "source_type": "csv",
    "connections": [{"connection_config": {"file_path": "line.csv"}}],
    "mappings": [
        {
            "target_table": "line_rows",
            "sync_strategy": "full",
            "mapping_config": {"primary_key": ["id"]},
        }
    ],
}
MISSING_REASON = (
    "connection type 'missing' (plugin fs_no_such_module:MissingConnector) cannot be loaded: "
    "No module named 'fs_no_such_module'"
)
NOT_A_CLASS_REASON = "connection type 'getcwd' (plugin os:getcwd) cannot be loaded: "


def test_a_broken_plugin_is_refused_by_name_and_stops_nothing_else(
    broken: Path,
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="factorysync.connectors")
    monkeypatch.setattr(registry, "_warned", set())  # as in a new process
    with pytest.raises(ConfigError, match="No module named 'fs_no_such_module'") as missing:
        registry.connector_class("missing")
    assert str(missing.value) == MISSING_REASON
    with pytest.raises(ConfigError, match="is not a Connector class") as not_a_class:
        registry.connector_class("getcwd")
    assert str(not_a_class.value).startswith(NOT_A_CLASS_REASON)
    assert registry.validate_connection_config("missing", {}) == [MISSING_REASON]

    # Every list of types leaves them out, and logs each once however often it is read.
    for elsewhere in ("one", "two"):
        monkeypatch.syspath_prepend(str(tmp_path / elsewhere))  # the lists are worked out again
        assert {"missing", "getcwd"}.isdisjoint(registry.connection_types())
        assert "csv" in registry.source_kinds() and "missing" not in registry.source_kinds()
        assert "mqtt" in registry.types_with("streams") and "file" in registry.types_with("polls")
        assert "missing" not in REALTIME_CONNECTION_TYPES
        assert {t["connection_type"] for t in registry.declared_templates()} <= set(
            registry.connection_types()
        )
    warned = [r.getMessage() for r in caplog.records]
    assert warned.count(MISSING_REASON) == 1, warned
    assert len([w for w in warned if w.startswith(NOT_A_CLASS_REASON)]) == 1, warned

    sources = tmp_path / "sources.yaml"
    sources.write_text(yaml.safe_dump({"sources": [CSV_SOURCE]}))
    applied = run_cli("apply", str(sources))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "line_csv" in applied.stdout
    listed = run_cli("source", "templates", "--json", check=True)
    assert orjson.loads(listed.stdout)

    for declared, reason in [
        ({"source_type": "missing"}, MISSING_REASON),
        ({"source_type": "csv", "connection_type": "missing"}, MISSING_REASON),
        ({"source_type": "csv", "connection_type": "getcwd"}, NOT_A_CLASS_REASON),
    ]:
        sources.write_text(yaml.safe_dump({"sources": [CSV_SOURCE | declared]}))
        refused = run_cli("apply", str(sources))
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0 and reason in output, output
        assert "Traceback" not in output, output


def test_the_realtime_service_runs_beside_a_broken_plugin(
    plugin: Path, broken: Path, store: Store
) -> None:
    services.create_source(store, ticker("good_ticker", "never"))
    stored_as_broken = SourceDecl.model_construct(
        connections=[
            ConnectionDecl.model_construct(
                connection_type="missing", connection_config={}, is_primary=True
            )
        ]
    )
    assert not shared(stored_as_broken)
    service = RealtimeService(store, file_watch=False)
    try:
        service.reconcile()
        assert "good_ticker" in service.workers, service.failed
    finally:
        service.stop()
