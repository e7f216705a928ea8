"""The demo plant model behind the data sets, and the import surface of factorysync.demo.datasets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from factorysync.demo import catalogue, datasets, generate_demo, plant, timeline
from factorysync.demo.sources import base

# SHA-256 over every generated file (relative path, NUL, bytes), for seed 42 at 0.5 MB.
# The demo is meant to be byte-stable: change this only with a deliberate change of the
# generated data, never as a side effect of moving code around.
PINNED_DIGEST = "60b0cb9d3fe40e4bd1ec658448ab1873370bda0e794c968df44a7b2f8888516f"
SUNDAY = 6  # day 0 is Monday 2026-01-05


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_generated_output_is_pinned(tmp_path: Path) -> None:
    generate_demo(tmp_path, size_mb=0.5, seed=42)
    assert tree_digest(tmp_path) == PINNED_DIGEST, "the generated demo data changed"


def test_datasets_still_exports_the_model_names() -> None:
    """Callers that imported the model from factorysync.demo.datasets keep working."""
    from factorysync.demo.datasets import (
        DAILY,
        FIXED,
        INTERVAL,
        SHIFT_IDS,
        SOURCES,
        Plant,
        SourceContext,
        SourceSpec,
        calendar_day,
    )

    assert Plant is plant.Plant
    assert (SourceContext, SourceSpec) == (base.SourceContext, base.SourceSpec)
    assert (FIXED, DAILY, INTERVAL) == (base.FIXED, base.DAILY, base.INTERVAL)
    assert calendar_day is timeline.calendar_day and SHIFT_IDS is timeline.SHIFT_IDS
    assert SOURCES is datasets.SOURCES and len(SOURCES) >= 44
    assert datasets.MACHINES is catalogue.MACHINES
    assert all(hasattr(datasets, name) for name in datasets.__all__)


def test_sources_are_in_id_order_with_one_generator_each() -> None:
    specs = datasets.SOURCES
    assert [s.id for s in specs] == list(range(1, len(specs) + 1))
    assert len({s.rows for s in specs}) == len(specs)
    assert all(s.rows.__module__.startswith("factorysync.demo.sources.") for s in specs)


def test_a_day_off_has_no_line_or_machine_day() -> None:
    model = plant.Plant(42)
    assert model.line_day("LINE-A", SUNDAY) is None
    assert model.machine_day("M-A01", SUNDAY) is None
    with pytest.raises(ValueError, match="LINE-A does not run on production day 6"):
        model.working_line_day("LINE-A", SUNDAY)
    with pytest.raises(ValueError, match="M-A01 does not run on production day 6"):
        model.working_machine_day("M-A01", SUNDAY)


def test_a_working_day_has_the_same_line_and_machine_days() -> None:
    model = plant.Plant(42)
    assert model.working_line_day("LINE-B", 0) is model.line_day("LINE-B", 0)
    assert model.working_machine_day("M-B03", 0) is model.machine_day("M-B03", 0)


@pytest.mark.parametrize("line", [line.id for line in catalogue.LINES])
def test_line_downtime_events_cover_the_machines_downtime(line: str) -> None:
    model = plant.Plant(7)
    machines = catalogue.MACHINES_BY_LINE[line]
    for day in range(14):
        events = model.line_downtime_events(line, day)
        assert events == [e for m in machines for e in model.downtime_events(m.id, day)]
        assert {e.machine for e in events} <= {m.id for m in machines}
        expected = sum(md.downtime_min for m in machines if (md := model.machine_day(m.id, day)))
        assert sum(e.duration_min for e in events) == expected
