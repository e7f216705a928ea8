"""``apply``: idempotent, reports differences, one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from factorysync import services
from factorysync.errors import ConfigError
from factorysync.store.registry import get_source
from factorysync.store.schema import data_source_connections, data_source_registry
from factorysync.store.store import Store


def write(path: Path, sources: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump({"sources": sources}))
    return path


def source(sid: str, **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "source_id": sid,
        "name": sid.upper(),
        "source_type": "json",
        "connections": [
            {
                "connection_name": "primary",
                "connection_config": {"file_path": f"{sid}.json"},
                "authentication_config": {"token": "tkn-" + sid},
            },
        ],
        "mappings": [{"target_table": sid, "mapping_config": {"primary_key": "id"}}],
    }
    base.update(over)
    return base


def test_apply_is_idempotent_and_reports_changes(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", [source("a"), source("b")])
    first = services.apply_file(store, path)
    assert [(c.source_id, c.action) for c in first] == [("a", "created"), ("b", "created")]
    again = services.apply_file(store, path)
    assert [c.action for c in again] == ["unchanged", "unchanged"]

    changed = source("a", priority=3)
    changed["connections"][0]["authentication_config"] = {"token": "new"}  # type: ignore[index]
    changed["mappings"] = [
        {"target_table": "a", "mapping_config": {"primary_key": "id", "records_path": "data"}},
        {"target_table": "a_copy"},
    ]
    path = write(path, [changed, source("b")])
    result = {c.source_id: c for c in services.apply_file(store, path)}
    assert result["a"].action == "updated" and result["b"].action == "unchanged"
    details = result["a"].details
    assert "priority: 1 → 3" in details
    assert "connections.primary.authentication_config changed" in details
    assert "mappings.a.mapping_config changed" in details
    assert "mappings.a_copy added" in details
    assert not any("new" in d for d in details)  # secrets never shown


def test_prune_removes_sources_absent_from_file(store: Store, tmp_path: Path) -> None:
    services.apply_file(store, write(tmp_path / "s.yaml", [source("a"), source("b")]))
    kept = services.apply_file(store, write(tmp_path / "t.yaml", [source("a")]))
    assert [c.action for c in kept] == ["unchanged"]
    pruned = services.apply_file(store, tmp_path / "t.yaml", prune=True)
    assert ("b", "removed") in [(c.source_id, c.action) for c in pruned]
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(data_source_connections)).scalar() == 1


def test_prune_deletes_like_source_delete(store: Store, tmp_path: Path) -> None:
    """A pruned source goes as `source delete` removes one: refused while it runs (and
    then nothing changes), its open alerts resolved, an infolog event saying who."""
    from factorysync.engine.history import AlreadyRunning
    from factorysync.store.schema import alerts as alerts_t
    from factorysync.store.schema import data_source_sync_history as hist_t
    from factorysync.store.schema import infolog as infolog_t
    from factorysync.store.types import utcnow

    services.apply_file(store, write(tmp_path / "s.yaml", [source("a"), source("b")]))
    only_a = write(tmp_path / "t.yaml", [source("a")])
    now = utcnow()
    with store.begin() as conn:
        run = conn.execute(
            hist_t.insert().values(
                source_id="b", sync_type="full", sync_status="running", sync_started_at=now
            )
        ).inserted_primary_key[0]
        conn.execute(
            alerts_t.insert().values(
                source_id="b",
                rule="stale",
                severity="warning",
                state="open",
                message="m",
                opened_at=now,
                last_seen_at=now,
            )
        )
    with pytest.raises(AlreadyRunning):
        services.apply_file(store, only_a, prune=True)
    assert {s["source_id"] for s in services.sources(store)} == {"a", "b"}  # nothing changed

    with store.begin() as conn:
        conn.execute(hist_t.update().where(hist_t.c.id == run).values(sync_status="failed"))
    pruned = services.apply_file(store, only_a, prune=True)
    assert ("b", "removed") in [(c.source_id, c.action) for c in pruned]
    with store.connect() as conn:
        states = conn.execute(select(alerts_t.c.state).where(alerts_t.c.source_id == "b"))
        assert [s for (s,) in states] == ["resolved"]
        events = conn.execute(
            select(infolog_t.c.message).where(
                infolog_t.c.source_id == "b", infolog_t.c.event == "source_deleted"
            )
        ).all()
    assert len(events) == 1 and "apply --prune" in events[0][0]


def test_invalid_file_changes_nothing(store: Store, tmp_path: Path) -> None:
    services.apply_file(store, write(tmp_path / "s.yaml", [source("a")]))
    bad = write(tmp_path / "bad.yaml", [source("a", priority=3), source("c", refresh_interval=0)])
    with pytest.raises(ConfigError, match=r"sources\[1\] \(source_id 'c'\): refresh_interval"):
        services.apply_file(store, bad)
    with store.connect() as conn:
        rows = conn.execute(
            select(data_source_registry.c.source_id, data_source_registry.c.priority)
        ).all()
    assert [tuple(r) for r in rows] == [("a", 1)]


def test_failure_midway_rolls_back(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factorysync.store import registry_save as registry

    real = registry.save_source
    calls = {"n": 0}

    def flaky(conn, decl, box, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(conn, decl, box, **kw)

    monkeypatch.setattr(registry, "save_source", flaky)
    with pytest.raises(RuntimeError):
        services.apply_file(store, write(tmp_path / "s.yaml", [source("a"), source("b")]))
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(data_source_registry)).scalar() == 0


def test_engine_error_status_survives_apply(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", [source("a")])
    services.apply_file(store, path)
    with store.begin() as conn:
        conn.execute(data_source_registry.update().values(status="error"))
    assert services.apply_file(store, path)[0].action == "unchanged"
    maint = write(tmp_path / "m.yaml", [source("a", status="maintenance")])
    assert services.apply_file(store, maint)[0].details == ["status: 'error' → 'maintenance'"]
    with store.connect() as conn:
        assert get_source(conn, "a")["status"] == "maintenance"
