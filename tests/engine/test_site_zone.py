"""A site's time zone is the default zone of its sources' naive timestamps: a real sync
of a CSV file with timestamps without an offset, on SQLite and PostgreSQL, on the
columnar path and on the row path; a connection's own ``timezone`` wins; a site without
a zone reads them as UTC, as before sites existed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from factorysync import services
from factorysync.engine.runner import Runner
from factorysync.store.store import Store

CSV = "id,ts,qty\n1,2026-01-05 08:00:00,3\n2,2026-01-05 23:30:00,4\n"


def _source(sid: str, path: Path, site: str, *, rows: bool, **config: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"id": {"from": "id", "type": "integer"}}
    fields["ts"] = {"from": "ts", "type": "datetime"}
    # An expression keeps the mapping off the columnar path: each row is mapped in Python.
    fields["qty"] = {"from": "qty", "type": "integer", **({"expr": "value * 1"} if rows else {})}
    return {
        "source_id": sid,
        "name": sid,
        "source_type": "csv",
        "site": site,
        "connections": [{"connection_config": {"file_path": str(path), **config}}],
        "mappings": [
            {
                "target_table": sid,
                "sync_strategy": "full",
                "mapping_config": {"primary_key": ["id"], "fields": fields},
            }
        ],
    }


def _times(store: Store, table: str) -> list[datetime]:
    with store.connect() as conn:
        found = conn.execute(text(f"SELECT ts FROM {table} ORDER BY id")).scalars().all()
    stamps = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in found]
    return [s.replace(tzinfo=UTC) if s.tzinfo is None else s.astimezone(UTC) for s in stamps]


@pytest.mark.parametrize("rows", [False, True], ids=["columnar", "rows"])
def test_naive_timestamps_are_read_in_the_site_zone(
    store: Store, data_dir: Path, tmp_path: Path, rows: bool
) -> None:
    path = data_dir / "counts.csv"
    path.write_text(CSV)
    document = {
        "sites": [
            {"name": "jakarta", "time_zone": "Asia/Jakarta"},
            {"name": "london", "time_zone": "Europe/London"},
            {"name": "bare"},
        ],
        "sources": [
            _source("in_site_zone", path, "jakarta", rows=rows),
            _source("own_zone", path, "jakarta", rows=rows, timezone="America/New_York"),
            _source("no_zone", path, "bare", rows=rows),
        ],
    }
    config = tmp_path / "sites.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    services.apply_file(store, config)
    runner = Runner(store)
    for sid in ("in_site_zone", "own_zone", "no_zone"):
        assert runner.sync(sid).sync_status == "success"

    assert _times(store, "in_site_zone") == [
        datetime(2026, 1, 5, 1, 0, tzinfo=UTC),  # 08:00 in Jakarta (UTC+7)
        datetime(2026, 1, 5, 16, 30, tzinfo=UTC),
    ]
    assert _times(store, "own_zone") == [
        datetime(2026, 1, 5, 13, 0, tzinfo=UTC),  # the connection's zone wins (UTC-5)
        datetime(2026, 1, 6, 4, 30, tzinfo=UTC),
    ]
    assert _times(store, "no_zone") == [
        datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
        datetime(2026, 1, 5, 23, 30, tzinfo=UTC),
    ]

    # Moving the source to another site reads the file again in that site's zone.
    moved = dict(document)
    moved["sources"] = [_source("in_site_zone", path, "london", rows=rows)]
    config.write_text(yaml.safe_dump(moved, sort_keys=False))
    services.apply_file(store, config)
    assert runner.sync("in_site_zone").sync_status == "success"
    assert _times(store, "in_site_zone")[0] == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
