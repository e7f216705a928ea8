"""Polled read answers (the registry, a source's history, the latest runs, the status):
sent with an ETag, kept in memory and answered in front of the routes after the same
token, role and scope checks, and forgotten at once when this process changes a source,
starts a run or changes an account. Against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factorysync.engine.runner import Runner
from factorysync.store import accounts as auth
from factorysync.store.store import Store
from tests.api.conftest import Api, machine_source, machines, make_api
from tests.conftest import write_json
from tests.waiting import PATIENCE, wait_until

POLLED = (
    "/api/sources",
    "/api/sources/machines/history?limit=20",
    "/api/runs?limit=20",
    "/api/status",
)


def two_sources(api: Api, data_dir: Path) -> None:
    """``machines`` (synced twice) and ``lines`` (synced once)."""
    write_json(data_dir / "machines.json", {"data": machines(20)})
    write_json(data_dir / "lines.json", {"data": machines(3)})
    for source_id, path in (("machines", "machines.json"), ("lines", "lines.json")):
        created = api.post("/api/sources", json=machine_source(data_dir / path, source_id))
        assert created.status_code == 201, created.text
    runner = Runner(api.store)
    for source_id in ("machines", "lines", "machines"):
        assert runner.sync(source_id).sync_status == "success"


@pytest.fixture
def cached(store: Store, data_dir: Path) -> Iterator[Api]:
    # The longest api_cache_s allowed: the test's steps stay well within it on a slow machine.
    for api in make_api(store, api_cache_s=60.0):
        two_sources(api, data_dir)
        yield api


def spy_fast_path(api: Api) -> list[Any]:
    """What the fast path found for each request it looked at (None: the route answered)."""
    answers = api.client.app.state.ctx.answers
    served: list[Any] = []
    fast = answers.fast
    answers.fast = lambda key: served.append(fast(key)) or served[-1]
    return served


def test_latest_runs_of_every_source_newest_first(api: Api, data_dir: Path) -> None:
    two_sources(api, data_dir)
    runs = api.get("/api/runs", role="operator").json()
    assert [r["source_id"] for r in runs] == ["machines", "lines", "machines"]
    assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)
    assert all(r["sync_status"] == "success" and r["records_processed"] for r in runs)
    # The same runs as each source's history shows.
    history = api.get("/api/sources/lines/history", role="operator").json()
    assert history == [r for r in runs if r["source_id"] == "lines"]
    assert [r["id"] for r in api.get("/api/runs?limit=1").json()] == [runs[0]["id"]]
    bad = api.get("/api/runs?limit=0")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "limit"]
    assert api.get("/api/runs", role="viewer").status_code == 403
    assert api.get("/api/runs", role=None).status_code == 401


def test_polled_answers_carry_an_etag_and_304_while_unchanged(api: Api, data_dir: Path) -> None:
    two_sources(api, data_dir)  # api_cache_s is 0 here: every answer is made again
    for url in POLLED:
        first = api.get(url, role="operator")
        assert first.status_code == 200, f"{url}: {first.text}"
        tag = first.headers["etag"]
        assert tag.startswith('W/"') and first.headers["cache-control"] == "no-cache"
        again = api.get(url, role="operator", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.headers["etag"] == tag, url
        assert again.content == b""
        other = api.get(url, role="operator", headers={"If-None-Match": 'W/"other"'})
        assert other.status_code == 200 and other.content == first.content, url
    # A change makes a new answer with a new tag.
    tag = api.get("/api/sources", role="operator").headers["etag"]
    assert api.patch("/api/sources/lines", json={"priority": 3}).status_code == 200
    changed = api.get("/api/sources", role="operator", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert {s["source_id"]: s["priority"] for s in changed.json()}["lines"] == 3


def test_kept_answers_are_given_in_front_of_the_routes_after_the_same_checks(
    cached: Api,
) -> None:
    api = cached
    served = spy_fast_path(api)
    for url in POLLED:
        looked = len(served)
        first = api.get(url, role="operator")  # the route: fills the caches
        assert first.status_code == 200, f"{url}: {first.text}"
        assert not any(served[looked:]), url
        again = api.get(url, role="operator")  # from memory, in front of the route
        assert served[-1] is not None, url
        assert again.status_code == 200 and again.content == first.content, url
        assert again.headers["etag"] == first.headers["etag"]
        assert again.headers["content-type"] == "application/json"
        assert again.headers["content-security-policy"] == first.headers["content-security-policy"]
        tag = {"If-None-Match": first.headers["etag"]}
        assert api.get(url, role="operator", headers=tag).status_code == 304
    # The status is for viewers; the registry, history and runs are not, even from memory
    # and with the viewer's token already checked.
    assert api.get("/api/status", role="viewer").status_code == 200
    for url in POLLED[:3]:
        refused = api.get(url, role="viewer")
        assert refused.status_code == 403 and "needs role 'operator'" in refused.text, url
    with api.store.begin() as conn:
        reader, _ = auth.create_token(conn, "operator-user", scopes=["read"])
    for _ in range(2):  # also once its token is known
        got = api.client.get("/api/sources", headers={"Authorization": f"Bearer {reader}"})
        assert got.status_code == 403 and "'operate'" in got.text
    assert api.client.get("/api/status", headers={"Authorization": f"Bearer {reader}"}).json()
    assert api.get("/api/sources", role=None).status_code == 401
    bad = {"Authorization": "Bearer fs_" + "x" * 43}
    assert api.client.get("/api/sources", headers=bad).status_code == 401
    # Invalid parameters still meet the route's validation.
    assert api.get("/api/runs?limit=5000", role="operator").status_code == 422
    assert api.get("/api/sources?status=broken", role="operator").status_code == 422
    metrics = api.get("/metrics", role="viewer").text
    assert 'route="/api/sources/{source_id}/history"' in metrics
    assert 'route="/api/runs"' in metrics


def test_changes_made_through_this_process_show_at_once(cached: Api, data_dir: Path) -> None:
    api = cached

    def listed() -> dict[str, dict[str, Any]]:
        answer = api.get("/api/sources", role="operator")
        assert answer.status_code == 200, answer.text
        return {s["source_id"]: s for s in answer.json()}

    assert listed()["lines"]["priority"] == 1 and listed()["lines"]["name"] == "Machines"
    assert api.patch("/api/sources/lines", json={"priority": 2, "name": "Lines"}).status_code == 200
    assert (listed()["lines"]["priority"], listed()["lines"]["name"]) == (2, "Lines")
    write_json(data_dir / "oven.json", {"data": machines(2)})
    oven = machine_source(data_dir / "oven.json", "oven")
    assert api.post("/api/sources", json=oven).status_code == 201
    assert "oven" in listed()
    assert api.get("/api/status", role="viewer").json()["sources"] == 3
    assert api.delete("/api/sources/oven").status_code == 204
    assert "oven" not in listed()
    assert api.get("/api/status", role="viewer").json()["sources"] == 2
    # A run started here: its history, the latest runs and the registry follow it.
    before = api.get("/api/runs", role="operator").json()
    started = api.post("/api/sources/lines/sync", role="operator")
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    api.wait_run(run_id, timeout=PATIENCE)

    def run_shown() -> bool:
        runs = api.get("/api/runs", role="operator").json()
        history = api.get("/api/sources/lines/history", role="operator").json()
        return bool(
            runs[0]["id"] == run_id
            and runs[0]["sync_status"] == "success"
            and history[0]["id"] == run_id
            and listed()["lines"]["last_sync"] is not None
        )

    # Forgotten when the run's worker finishes, right after the run's commit.
    wait_until(run_shown, what=f"run {run_id} in the kept answers")
    assert len(api.get("/api/runs", role="operator").json()) == len(before) + 1


def test_a_revoked_token_or_disabled_user_is_refused_at_once(cached: Api) -> None:
    api = cached
    mine = api.post("/api/tokens", role="operator", json={"name": "wall screen"}).json()
    headers = {"Authorization": f"Bearer {mine['token']}"}
    served = spy_fast_path(api)
    for _ in range(2):  # the second from memory: token and answer both kept
        assert api.client.get("/api/sources", headers=headers).status_code == 200
    assert served[-1] is not None
    assert api.delete(f"/api/tokens/{mine['id']}", role="operator").status_code == 200
    for url in POLLED:
        refused = api.client.get(url, headers=headers)
        assert refused.status_code == 401 and "invalid token" in refused.text, url
    # Disabling the user refuses its other tokens at once too.
    assert api.get("/api/sources", role="operator").status_code == 200
    assert api.get("/api/sources", role="operator").status_code == 200
    disabled = api.patch("/api/users/operator-user", json={"is_active": False})
    assert disabled.status_code == 200, disabled.text
    assert api.get("/api/sources", role="operator").status_code == 401
    # A role taken away applies at once as well.
    assert api.patch("/api/users/operator-user", json={"is_active": True}).status_code == 200
    assert api.get("/api/runs", role="operator").status_code == 200
    assert api.get("/api/runs", role="operator").status_code == 200
    demoted = api.patch("/api/users/operator-user", json={"role": "viewer"})
    assert demoted.status_code == 200, demoted.text
    assert api.get("/api/runs", role="operator").status_code == 403
