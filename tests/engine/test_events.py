"""Run-finished events: published once the run's outcome is committed, by batch runs and
realtime windows alike; subscribers cannot fail a run; the engine names none of them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from factorysync.engine import events
from factorysync.engine.runner import Runner
from factorysync.realtime.writer import Incoming, MicroBatchWriter
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from tests.conftest import write_json
from tests.engine.test_runner import json_source, register
from tests.realtime.conftest import mqtt_source
from tests.realtime.conftest import register as register_realtime


@pytest.fixture
def heard() -> Iterator[list[tuple[events.RunFinished, str | None]]]:
    """Every event, with the run's history status as another connection sees it then."""
    seen: list[tuple[events.RunFinished, str | None]] = []

    def listen(event: events.RunFinished) -> None:
        with event.store.connect() as conn:
            status = conn.execute(
                select(hist_t.c.sync_status).where(hist_t.c.id == event.result.run_id)
            ).scalar_one_or_none()
        seen.append((event, status))

    events.subscribe(listen)
    yield seen
    events.unsubscribe(listen)


def test_a_run_is_published_after_its_commit(
    store: Store, data_dir: Path, heard: list[tuple[events.RunFinished, str | None]]
) -> None:
    path = write_json(data_dir / "lines.json", [{"id": 1}, {"id": 2}])
    register(store, json_source("lines", path, primary_key="id"))
    runner = Runner(store)
    ok = runner.sync("lines")
    path.write_text("[{", encoding="utf-8")
    failed = runner.sync("lines")
    assert [(e.result.run_id, status) for e, status in heard] == [
        (ok.run_id, "success"),
        (failed.run_id, "failed"),
    ]
    first, second = (e for e, _ in heard)
    assert first.store is store and first.error is None and not first.streamed
    assert second.result is failed and second.error is not None


def test_a_failing_subscriber_never_fails_the_run_nor_the_others(
    store: Store, data_dir: Path, heard: list[tuple[events.RunFinished, str | None]]
) -> None:
    def broken(event: events.RunFinished) -> None:
        raise RuntimeError("subscriber bug")

    path = write_json(data_dir / "lines.json", [{"id": 1}])
    register(store, json_source("lines", path, primary_key="id"))
    events.subscribe(broken)
    try:
        assert Runner(store).sync("lines").sync_status == "success"
    finally:
        events.unsubscribe(broken)
    assert [status for _, status in heard] == ["success"]


def test_a_closed_realtime_window_is_published_as_streamed(
    store: Store, heard: list[tuple[events.RunFinished, str | None]]
) -> None:
    register_realtime(
        store,
        mqtt_source(
            "press-line",
            "127.0.0.1",
            1883,
            ["plant/+/status"],
            table="machine_state",
            mapping={"primary_key": ["machine_id"]},
        ),
    )
    writer = MicroBatchWriter(store, "press-line", window_s=3600)
    writer.open()
    try:
        writer.flush([Incoming([{"machine_id": "M1", "speed": 10}])])
        assert heard == []  # the window is still open
    finally:
        writer.stop()  # closes the window
    [(event, status)] = heard
    assert status == "success" and event.streamed
    assert (event.result.sync_type, event.result.records_inserted) == ("realtime", 1)


def test_the_engine_imports_no_layer_above_it() -> None:
    code = (
        "import sys\n"
        "import factorysync.engine.runner, factorysync.engine.scheduler\n"
        "import factorysync.engine.quality, factorysync.engine.retention\n"
        "above = ('alerts', 'realtime', 'api', 'web', 'services', 'cli', 'commands')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[1:2] and "
        "m.split('.')[0] == 'factorysync' and m.split('.')[1] in above))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"
