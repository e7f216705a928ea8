"""The spool file itself: order, values kept as they were, sequence numbers never reused,
the size bound (the leading messages that fit), the alert level, and one file per process."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from factorysync.alerts import monitor
from factorysync.engine import events
from factorysync.realtime.spool import Spool
from factorysync.realtime.spools import (
    ProcessSpool,
    close_process_spools,
    local_spools,
    spooled_by_source,
)
from factorysync.settings import Settings


@dataclass
class Msg:
    records: list[Any]
    raw: Any = None
    error: str | None = None
    state: dict[str, Any] | None = None
    received_at: float = field(default_factory=time.time)


def seq_msgs(first: int, last: int, **extra: Any) -> list[Msg]:
    return [Msg([{"seq": i, **extra}]) for i in range(first, last + 1)]


@pytest.fixture(autouse=True)
def _closed() -> Iterator[None]:
    yield
    close_process_spools()
    monitor.forget_spools()


def test_messages_come_back_in_order_per_source_with_their_values(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", 10 * 2**20)
    when = datetime(2026, 3, 2, 6, 0, 1, 250_000, tzinfo=UTC)
    typed = {"ts": when, "day": date(2026, 3, 2), "qty": Decimal("1.50"), "blob": b"\x00\x01"}
    assert spool.append("a", seq_msgs(1, 3)) == 3
    assert spool.append("b", [Msg([typed], state={"at": when})]) == 1
    assert spool.append("a", [Msg([], raw={"text": "no json"}, error="not JSON")]) == 1
    assert spool.sources() == {"a": 4, "b": 1}

    got = spool.read("a", 10)
    assert [m.records for m in got[:3]] == [[{"seq": 1}], [{"seq": 2}], [{"seq": 3}]]
    assert (got[3].error, got[3].raw) == ("not JSON", {"text": "no json"})
    assert [m.seq for m in got] == sorted(m.seq for m in got)
    (b,) = spool.read("b", 10)
    assert b.records == [typed] and b.state == {"at": when}
    assert spool.latest_state("b") == {"at": when} and spool.latest_state("a") is None
    # Raw is kept only where it stands for a message without records.
    assert spool.append("a", [Msg([{"seq": 9}], raw={"big": "x" * 1000})]) == 1
    assert spool.read("a", 10)[-1].raw is None


def test_sequence_numbers_are_never_reused_and_the_file_keeps_its_id(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    spool = Spool(path, 10 * 2**20)
    spool.append("a", seq_msgs(1, 5))
    last = spool.read("a", 10)[-1].seq
    assert spool.remove_through("a", last) == 5 and spool.depth() == 0
    spool_id = spool.spool_id
    spool.close()

    again = Spool(path, 10 * 2**20)  # after a restart
    assert again.spool_id == spool_id
    again.append("a", seq_msgs(6, 6))
    assert again.read("a", 1)[0].seq > last
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    again.close()


def test_an_append_keeps_the_leading_messages_that_fit(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", 256 * 1024)
    big = "x" * 4000
    kept = spool.append("a", seq_msgs(1, 200, pad=big))
    assert 0 < kept < 200
    assert [m.records[0]["seq"] for m in spool.read("a", 500)] == list(range(1, kept + 1))
    assert spool.append("a", seq_msgs(1000, 1000, pad=big)) == 0  # full
    assert spool.used_bytes <= spool.max_bytes * 1.1
    # Taking messages out makes room again, and an emptied spool gives its pages back.
    spool.remove_through("a", spool.read("a", 500)[-1].seq)
    assert spool.depth() == 0 and spool.fill < 0.2  # the schema's pages
    assert spool.append("a", seq_msgs(1000, 1002, pad=big)) == 3


def test_crossing_the_alert_level_is_reported_both_ways(tmp_path: Path) -> None:
    seen: list[bool] = []
    spool = Spool(tmp_path / "s.sqlite", 256 * 1024, on_level=lambda _s, up: seen.append(up))
    while spool.fill < 0.8:
        assert spool.append("a", seq_msgs(1, 5, pad="y" * 4000)) > 0
    assert seen == [True]
    spool.remove_through("a", spool.read("a", 1000)[-1].seq)
    assert seen == [True, False]


def test_each_process_takes_a_free_slot_and_finds_its_own_file_again(tmp_path: Path) -> None:
    first = ProcessSpool(tmp_path / "spool", 2**20, name="line-a")
    assert first.get(create=False) is None  # nothing left by a previous run, nothing made
    assert not (tmp_path / "spool").exists()
    spool = first.get(create=True)
    assert spool is not None and spool.path.name == "spool-line-a.sqlite"
    spool.append("a", seq_msgs(1, 2))
    # A second process on the same folder under the same name: the next slot.
    second = ProcessSpool(tmp_path / "spool", 2**20, name="line-a")
    other = second.get(create=True)
    assert other is not None and other.path.name == "spool-line-a-2.sqlite"
    second.close()
    first.close()
    # The restarted process takes its file back, with what it holds.
    restarted = ProcessSpool(tmp_path / "spool", 2**20, name="line-a")
    found = restarted.get(create=False)
    assert found is not None and found.path == spool.path and found.depth("a") == 2
    assert restarted.leftovers() == ["a"]
    restarted.close()


def test_hosts_spools_are_read_without_taking_them(tmp_path: Path) -> None:
    settings = Settings(spool_dir=tmp_path / "spool")
    held = ProcessSpool(tmp_path / "spool", 2**20)
    spool = held.get(create=True)
    assert spool is not None
    now = time.time()
    spool.append("a", [Msg([{"n": 1}], received_at=now - 300), Msg([{"n": 2}], received_at=now)])
    spool.append("b", [Msg([{"n": 3}], received_at=now - 5)])
    got = spooled_by_source(settings, now)
    assert (got["a"].messages, got["a"].last_minute, got["a"].newest) == (2, 1, now)
    assert (got["b"].messages, got["b"].last_minute) == (1, 1)
    (found,) = local_spools(settings, now)
    assert found.path == spool.path and found.used_bytes > 0
    held.close()
    assert spooled_by_source(Settings(spool_dir=tmp_path / "none")) == {}


def test_a_process_spool_publishes_its_level(tmp_path: Path) -> None:
    got: list[events.SpoolLevel] = []
    events.subscribe_spool(got.append)
    held = ProcessSpool(tmp_path / "spool", 256 * 1024)
    try:
        spool = held.get(create=True)
        assert spool is not None
        while spool.fill < 0.8:
            spool.append("a", seq_msgs(1, 5, pad="z" * 4000))
    finally:
        held.close()
        events.unsubscribe_spool(got.append)
    mine = [e for e in got if e.spool == str(spool.path)]
    assert len(mine) == 1 and mine[0].filling and mine[0].messages["a"] > 0
    assert os.path.basename(mine[0].spool) == "spool.sqlite"
