"""The console's mapping preview maps a record as a run would: a timestamp without an
offset is read in the connection's ``timezone``, not as UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from factorysync.engine.runner import Runner
from factorysync.intake import parse_sources
from factorysync.store.store import Store
from tests.engine.test_runner import register, table_rows


@pytest.mark.parametrize("zone", ["Asia/Jakarta", None])
def test_preview_reads_naive_times_in_the_connection_zone(
    store: Store, data_dir: Path, zone: str | None
) -> None:
    from factorysync.web import probe  # after factorysync.api, which it imports in turn

    path = data_dir / "counts.csv"
    path.write_text("machine,ts,qty\nM1,2026-03-01 08:00:00,5\n")
    config: dict[str, str] = {"file_path": str(path), "file_type": "csv"}
    if zone:
        config["timezone"] = zone
    declared = {
        "source_id": "counts",
        "name": "Counts",
        "source_type": "csv",
        "connections": [{"connection_config": config}],
        "mappings": [
            {
                "target_table": "counts",
                "sync_strategy": "full",
                "mapping_config": {
                    "primary_key": "machine",
                    "fields": {
                        "machine": "machine",
                        "ts": {"from": "ts", "type": "datetime"},
                        "qty": {"from": "qty", "type": "integer"},
                    },
                },
            }
        ],
    }
    [decl] = parse_sources({"sources": [declared]})
    shown = probe.preview(store, decl)
    assert shown["ok"], shown["message"]
    at = shown["rows"][0][shown["columns"].index("ts")]
    expected = datetime(2026, 3, 1, 1 if zone else 8, tzinfo=UTC)
    assert at == expected

    register(store, declared)  # a run stores what the preview showed
    assert Runner(store).sync("counts").sync_status == "success"
    assert table_rows(store, "counts")[0]["ts"] == expected
