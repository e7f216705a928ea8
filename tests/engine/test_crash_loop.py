"""No crash loops: a source whose runs end in a crash twice in a row — the process running
them died, or its parser child was stopped by a limit — goes to status 'error' and is not
run again automatically; a success or an ordinary failure breaks the streak."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select, update

from factorysync.engine import history
from factorysync.engine.runner import Runner, recover_interrupted
from factorysync.engine.scheduler import Scheduler
from factorysync.store.processes import PROCESS_STARTED
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.schema import infolog
from factorysync.store.store import Store
from factorysync.store.types import utcnow
from tests.api.conftest import Server, start_server
from tests.connectors.test_excel_isolation import (
    csv_source,
    excel_source,
    far_cell_workbook,
    write_counts,
)
from tests.engine.test_runner import register

# A command that stays 'in progress' until the process that started it is gone.
HANG = """\
import os, sys, time
parent = os.getppid()
with open(sys.argv[1], "a") as marker:
    marker.write(f"{os.getpid()}\\n")
deadline = time.monotonic() + 600
while os.getppid() == parent and time.monotonic() < deadline:
    time.sleep(0.1)
print("[]")
"""


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def source_row(store: Store, source_id: str) -> Any:
    with store.connect() as conn:
        return conn.execute(select(reg_t).where(reg_t.c.source_id == source_id)).one()


def runs(store: Store, source_id: str) -> list[Any]:
    with store.connect() as conn:
        return conn.execute(
            select(hist_t).where(hist_t.c.source_id == source_id).order_by(hist_t.c.id)
        ).all()


def events(store: Store, source_id: str, event: str) -> list[Any]:
    with store.connect() as conn:
        return conn.execute(
            select(infolog).where(infolog.c.source_id == source_id, infolog.c.event == event)
        ).all()


def successes(store: Store, source_id: str) -> int:
    return sum(r.sync_status == "success" for r in runs(store, source_id))


def good_workbook(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["machine", "qty"])
    sheet.append(["M-01", 5])
    book.save(path)
    return path


# -- parser children stopped by a limit ---------------------------------------------------------
def test_parser_stopped_twice_in_a_row_stops_the_schedule(store: Store, data_dir: Path) -> None:
    path = far_cell_workbook(data_dir / "line.xlsx")
    register(store, excel_source("line", path, refresh_interval=1))
    runner = Runner(store)

    assert runner.sync("line").sync_status == "failed"
    first = source_row(store, "line")
    assert (first.status, first.next_sync is not None) == ("active", True)
    assert runs(store, "line")[-1].details["crash"] == "parser"

    assert runner.sync("line").sync_status == "failed"
    stopped = source_row(store, "line")
    assert stopped.status == "error"
    assert stopped.next_sync is None
    assert f"{path}: the workbook reader was stopped: it needed more than" in stopped.last_error
    assert "2 runs in a row ended in a crash" in stopped.last_error
    [event] = events(store, "line", "sync.crash_loop")
    assert event.level == "error" and event.details["crashed_runs"] == 2
    assert "line" not in [sid for sid, _ in Scheduler(store).due()]

    # The operator fixes the file and runs the source by hand: it is back on schedule.
    good_workbook(path)
    assert runner.sync("line").sync_status == "success"
    back = source_row(store, "line")
    assert (back.status, back.last_error, back.error_count) == ("active", None, 0)
    assert back.next_sync is not None


def test_a_success_or_an_ordinary_failure_breaks_the_streak(store: Store, data_dir: Path) -> None:
    path = data_dir / "line.xlsx"
    register(store, excel_source("line", far_cell_workbook(path)))
    runner = Runner(store)
    assert runner.sync("line").sync_status == "failed"  # crash 1
    good_workbook(path)
    assert runner.sync("line").sync_status == "success"  # resets
    far_cell_workbook(path)
    assert runner.sync("line").sync_status == "failed"  # crash 1
    path.unlink()
    missing = runner.sync("line")  # an ordinary failure
    assert missing.sync_status == "failed" and "file not found" in (missing.error_message or "")
    far_cell_workbook(path)
    assert runner.sync("line").sync_status == "failed"  # crash 1 again
    row = source_row(store, "line")
    assert (row.status, row.next_sync is not None) == ("active", True)
    assert events(store, "line", "sync.crash_loop") == []


# -- runs interrupted by the death of their process ---------------------------------------------
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def leave_running(store: Store, source_id: str, worker: str, sync_type: str = "full") -> int:
    """A 'running' history row as a process that died would leave it."""
    with store.begin() as conn:
        run_id = history.start_run(
            conn, source_id, sync_type, "schedule", utcnow(), None, alongside=True
        )
        conn.execute(update(hist_t).where(hist_t.c.id == run_id).values(worker=worker))
    return run_id


@pytest.mark.parametrize("form", ["host:pid", "host:pid:name"])
def test_interrupted_twice_in_a_row(store: Store, data_dir: Path, form: str) -> None:
    register(store, csv_source("counts", write_counts(data_dir / "counts.csv")))
    host = socket.gethostname()

    def worker() -> str:
        # ``factorysync run`` on SQLite writes host:pid; a leasing scheduler host:pid:name.
        return f"{host}:{dead_pid()}" + (":line-a-1" if form == "host:pid:name" else "")

    leave_running(store, "counts", worker())
    assert recover_interrupted(store) == ["counts"]
    row = source_row(store, "counts")
    assert (row.status, row.next_sync is not None) == ("active", True)
    assert len(events(store, "counts", "sync.interrupted")) == 1

    leave_running(store, "counts", worker())
    assert recover_interrupted(store) == []
    row = source_row(store, "counts")
    assert (row.status, row.next_sync) == ("error", None)
    assert row.last_error.startswith(history.INTERRUPTED)
    assert "2 runs in a row ended in a crash" in row.last_error
    [event] = events(store, "counts", "sync.crash_loop")
    assert event.details == {"crashed_runs": 2, "cause": history.INTERRUPTED}
    assert [r.sync_status for r in runs(store, "counts")] == ["failed", "failed"]


def test_realtime_windows_do_not_count(store: Store, data_dir: Path) -> None:
    # A window is open whenever the service runs: its interruption says nothing about
    # the source.
    register(store, csv_source("counts", write_counts(data_dir / "counts.csv")))
    host = socket.gethostname()
    for _ in range(3):
        leave_running(store, "counts", f"{host}:{dead_pid()}", sync_type="realtime")
        assert recover_interrupted(store) == ["counts"]
    assert source_row(store, "counts").status == "active"


def test_a_live_process_keeps_its_runs(store: Store, data_dir: Path) -> None:
    register(store, csv_source("counts", write_counts(data_dir / "counts.csv")))
    run_id = leave_running(store, "counts", f"{socket.gethostname()}:{os.getpid()}:w1")
    assert recover_interrupted(store) == []
    assert [(r.id, r.sync_status) for r in runs(store, "counts")] == [(run_id, "running")]


def test_a_previous_process_with_the_same_id(store: Store, data_dir: Path) -> None:
    # After a reboot the service often gets the process id it had before the power cut:
    # a run of "this" process that began before it started was the old one's.
    register(store, csv_source("counts", write_counts(data_dir / "counts.csv")))
    run_id = leave_running(store, "counts", history.WORKER)
    with store.begin() as conn:
        before = PROCESS_STARTED - timedelta(minutes=5)
        conn.execute(update(hist_t).where(hist_t.c.id == run_id).values(sync_started_at=before))
    assert recover_interrupted(store) == ["counts"]
    assert runs(store, "counts")[0].error_message == history.INTERRUPTED
    assert Runner(store).sync("counts").sync_status == "success"


# -- the real process, killed -------------------------------------------------------------------
def run_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        **env,
        "FACTORYSYNC_COMMAND_ALLOWLIST": sys.executable,
        # PostgreSQL: a dead worker's claims expire quickly.
        "FACTORYSYNC_LEASE_S": "2",
        **extra,
    }


@contextmanager
def serving(env: dict[str, str], stop: int = signal.SIGTERM) -> Iterator[Server]:
    """``factorysync run`` for the block; stopped with ``stop`` (SIGTERM: cleanly).
    Its log is printed when the block fails, so the test report shows it."""
    server = start_server("run", env=env)
    try:
        yield server
    except BaseException:
        _, out, err = server.stop(stop)
        print(f"factorysync run output:\n{out[-4000:]}\n{err[-20000:]}")
        raise
    code, _, err = server.stop(stop)
    if stop == signal.SIGTERM:
        assert code == 0, err


def test_killed_twice_during_a_run(
    store: Store, env: dict[str, str], data_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    marker = tmp_path / "started.txt"
    register(
        store,
        {
            "source_id": "hang",
            "name": "Hang",
            "source_type": "command",
            "refresh_interval": 1,
            "connections": [
                {
                    "connection_type": "command",
                    "connection_config": {
                        "command": sys.executable,
                        "parameters": [str(script), str(marker)],
                        "timeout": 600,
                    },
                }
            ],
            "mappings": [{"target_table": "hang", "mapping_config": {"primary_key": "id"}}],
        },
    )

    def started() -> int:
        return len(marker.read_text().splitlines()) if marker.exists() else 0

    def in_progress(n: int) -> bool:
        return started() == n and any(r.sync_status == "running" for r in runs(store, "hang"))

    child_env = run_env(env)
    for attempt in (1, 2):
        with serving(child_env, stop=signal.SIGKILL):
            wait_for(f"run {attempt} of 'hang' in progress", lambda n=attempt: in_progress(n))

    # A source added now shows the scheduler at work. (One that had been in progress at
    # both deaths would have been stopped as well: the rule cannot tell it from the cause.)
    register(store, csv_source("tick", write_counts(data_dir / "tick.csv"), refresh_interval=1))
    with serving(child_env) as server:
        stopped = wait_for(
            "'hang' stopped by the crash-loop rule",
            lambda: (row := source_row(store, "hang")).status == "error" and row,
        )
        assert stopped.next_sync is None
        assert stopped.last_error.startswith(history.INTERRUPTED)
        assert "2 runs in a row ended in a crash" in stopped.last_error
        assert len(events(store, "hang", "sync.crash_loop")) == 1
        # The scheduler goes on: 'tick' runs again and again, 'hang' never.
        seen = successes(store, "tick")
        wait_for("three more runs of 'tick'", lambda: successes(store, "tick") >= seen + 3)
        assert [r.sync_status for r in runs(store, "hang")] == ["failed", "failed"]
        assert started() == 2
        assert server.process.poll() is None


@pytest.mark.slow
# Five minutes on one store: the parser's isolation does not depend on which store.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_soak_a_scheduled_far_cell_workbook(
    store: Store, env: dict[str, str], data_dir: Path
) -> None:
    soak_s = float(os.environ.get("FACTORYSYNC_TEST_SOAK_S", "300"))
    far = far_cell_workbook(data_dir / "far.xlsx")
    register(
        store,
        excel_source("far", far, refresh_interval=2),
        csv_source("counts", write_counts(data_dir / "counts.csv"), refresh_interval=2),
    )
    with serving(run_env(env)) as server:
        begin = time.monotonic()
        halfway: int | None = None
        answers = 0
        with httpx2.Client(base_url=server.url, timeout=30) as client:
            while time.monotonic() - begin < soak_s:
                assert server.process.poll() is None, "factorysync run died"
                assert client.get("/api/health").status_code == 200
                answers += 1
                if halfway is None and time.monotonic() - begin >= soak_s / 2:
                    halfway = successes(store, "counts")
                time.sleep(0.5)
        row = wait_for(
            "'far' stopped", lambda: (r := source_row(store, "far")).status == "error" and r
        )
        assert row.next_sync is None
        assert f"{far}: the workbook reader was stopped" in row.last_error
        far_runs = runs(store, "far")
        assert [r.sync_status for r in far_runs] == ["failed", "failed"]
        assert all("the workbook reader was stopped" in r.error_message for r in far_runs)
        assert halfway is not None and halfway > 0
        assert successes(store, "counts") > halfway
        assert answers > 0
