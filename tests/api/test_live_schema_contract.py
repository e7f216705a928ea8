"""``schema_contract: freeze`` on a realtime (push) source: a record with a field the
target table has no column for is quarantined, the others land."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from factorysync.store.schema import data_source_quarantine
from factorysync.store.store import Store
from tests.api.conftest import Api, make_api
from tests.api.test_live import push_source, table_rows


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


def test_a_frozen_push_source_quarantines_records_with_new_fields(api: Api) -> None:
    declaration = push_source("frozen-push")
    # Auto mode: every field would become a column, unless the contract is frozen.
    mapping = {"primary_key": ["machine_id"], "schema_contract": "freeze"}
    declaration["mappings"][0]["mapping_config"] = mapping
    assert api.post("/api/sources", json=declaration).status_code == 201

    first = api.post("/api/ingest/frozen-push", json={"machine_id": "P-1", "state": "run"})
    assert first.json()["stored"] == 1, first.text
    # The table exists now, with its columns: a new field is refused, the rest lands.
    second = api.post(
        "/api/ingest/frozen-push",
        json=[
            {"machine_id": "P-2", "state": "idle"},
            {"machine_id": "P-3", "state": "run", "shift": "B"},
        ],
    ).json()
    assert (second["stored"], second["rejected"]) == (1, 1)
    assert "shift" in second["reasons"][0]
    rows = table_rows(api.store, "frozen_push")
    assert [r["machine_id"] for r in rows] == ["P-1", "P-2"]
    assert "shift" not in rows[0]
    with api.store.connect() as conn:
        refused = conn.execute(
            select(data_source_quarantine.c.record).where(
                data_source_quarantine.c.source_id == "frozen-push"
            )
        ).all()
    assert [r.record["machine_id"] for r in refused] == ["P-3"]
