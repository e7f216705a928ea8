"""``demo`` on the command line: its stages as progress bars, one after the other, then the
summary; and :func:`run_demo`'s progress reports that the bars are drawn from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from factorysync.demo.run import GENERATING, SYNCING, run_demo
from factorysync.store.store import Store
from tests.conftest import run_cli

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@SQLITE
def test_run_demo_reports_each_stage_from_its_start_to_its_end(
    store: Store, data_dir: Path
) -> None:
    seen: list[tuple[str, int, int | None]] = []
    results = run_demo(
        store, data_dir / "demo", size_mb=0.1, progress=lambda *step: seen.append(step)
    )
    stages = [stage for stage, _, _ in seen]
    assert stages == sorted(stages, key=[GENERATING, SYNCING].index)  # one stage, then the next
    generating = [(done, total) for stage, done, total in seen if stage == GENERATING]
    assert generating[0] == (0, None)
    files = generating[-1][1]
    assert files is not None and files > 40 and generating[-1] == (files, files)
    syncing = [(done, total) for stage, done, total in seen if stage == SYNCING]
    assert syncing == [(done, len(results)) for done in range(len(results) + 1)]


@SQLITE
def test_demo_prints_each_stage_ended_then_the_summary(env: dict[str, str]) -> None:
    proc = run_cli("demo", "--no-serve", "--size-mb", "0.1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()

    def ended_bar(stage: str) -> int:
        """The line of the stage's bar, which shows the stage finished (N/N)."""
        found = [i for i, line in enumerate(lines) if line.startswith(stage)]
        assert len(found) == 1, proc.stdout
        assert re.search(r" (\d+)/\1 ", lines[found[0]]), lines[found[0]]
        return found[0]

    summary = next(i for i, line in enumerate(lines) if "sources synced" in line)
    assert ended_bar(GENERATING) < ended_bar(SYNCING) < summary
    demo_dir = Path(env["FACTORYSYNC_DATA_ROOTS"]) / "factorysync-demo"
    assert lines[summary].endswith(f"data in {demo_dir.resolve()}")
