"""Data for dashboards: pages at their boundaries, keyset pagination, order, filters,
``since``, soft deletes, ETags, gzip and each source's own document shape."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from factorysync.engine.runner import Runner
from factorysync.store import accounts as auth
from factorysync.store.schema import data_source_registry as reg_t
from tests.api.conftest import Api, machine_source, machines, make_api
from tests.conftest import write_json
from tests.waiting import PATIENCE, wait_for_value

TOTAL = 250


def page(api: Api, query: str = "", role: str = "viewer") -> dict[str, Any]:
    response = api.get(f"/api/data/machines?{query}", role=role)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def problems(api: Api, query: str, table: str = "machines") -> list[dict[str, Any]]:
    response = api.get(f"/api/data/{table}?{query}", role="viewer")
    assert response.status_code == 422, response.text
    return response.json()["detail"]  # type: ignore[no-any-return]


def walk(api: Api, query: str, limit: int) -> list[dict[str, Any]]:
    """Every row, following next_after."""
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        got = page(api, f"{query}&limit={limit}" + (f"&after={after}" if after else ""))
        rows += got["items"]
        after = got["next_after"]
        assert got["has_more"] is (after is not None)
        if after is None:
            return rows


def test_pages_at_their_boundaries(synced: Api) -> None:
    api = synced
    first = page(api)
    assert (len(first["items"]), first["limit"], first["offset"]) == (100, 100, 0)
    assert first["has_more"] is True and first["next_after"]
    row = first["items"][0]
    assert set(row) == {
        "machine_id",
        "line",
        "qty_good",
        "oee",
        "running",
        "ts",
        "meta",
        "_source_id",
        "_synced_at",
    }
    assert row["machine_id"] == "M-000" and row["_source_id"] == "machines"
    assert row["ts"] == "2026-01-04T17:00:00+00:00" and row["meta"] == {"vendor": "Fanuc"}

    assert len(page(api, "limit=1")["items"]) == 1
    everything = page(api, "limit=1000")
    assert len(everything["items"]) == TOTAL and everything["has_more"] is False
    assert everything["next_after"] is None
    assert [r["machine_id"] for r in everything["items"]] == [f"M-{i:03d}" for i in range(TOTAL)]
    last = page(api, f"limit=100&offset={TOTAL - 1}")
    assert [r["machine_id"] for r in last["items"]] == ["M-249"] and last["has_more"] is False
    exact = page(api, "limit=125&offset=125")
    assert len(exact["items"]) == 125 and exact["has_more"] is False
    one_short = page(api, "limit=125&offset=124")
    assert len(one_short["items"]) == 125 and one_short["has_more"] is True
    assert page(api, f"offset={TOTAL}")["items"] == []
    assert page(api, "offset=1000000000")["items"] == []

    for query, param in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("offset=1000000001", "offset"),
    ]:
        found = problems(api, query)
        assert found[0]["loc"] == ["query", param] and found[0]["msg"].startswith(param), found


def test_keyset_pages_match_offset_pages(synced: Api) -> None:
    api = synced
    by_offset = [r for o in range(0, TOTAL, 100) for r in page(api, f"offset={o}")["items"]]
    assert walk(api, "", 100) == by_offset
    assert len(walk(api, "", 7)) == TOTAL
    # Descending on a column with NULLs: NULLs first, ties broken by the key, no row twice.
    ordered = walk(api, "order=-qty_good", 30)
    assert len(ordered) == TOTAL and len({r["machine_id"] for r in ordered}) == TOTAL
    values = [r["qty_good"] for r in ordered]
    nulls = values.count(None)
    assert nulls == TOTAL // 5 and values[:nulls] == [None] * nulls
    assert values[nulls:] == sorted(values[nulls:], reverse=True)
    assert ordered == page(api, "order=-qty_good&limit=1000")["items"]
    ascending = [r["qty_good"] for r in walk(api, "order=qty_good,-line", 40)]
    assert ascending[-nulls:] == [None] * nulls
    assert ascending[:-nulls] == sorted(ascending[:-nulls])
    by_two = walk(api, "order=line,-ts", 33)
    assert [(r["line"], r["ts"]) for r in by_two] == sorted(
        ((r["line"], r["ts"]) for r in by_two), key=lambda p: (p[0], [-ord(c) for c in p[1]])
    )

    token = page(api, "limit=10")["next_after"]
    assert problems(api, f"after={token}&offset=10")[0]["loc"] == ["query", "offset"]
    assert problems(api, f"after={token}&order=line")[0]["loc"] == ["query", "after"]
    assert problems(api, "after=bm90IGEgY3Vyc29y")[0]["msg"].startswith("after:")
    assert problems(api, "after=%%%")[0]["loc"] == ["query", "after"]


def test_filters(synced: Api) -> None:
    api = synced
    line_a = page(api, "line=LINE-A&limit=1000")["items"]
    assert len(line_a) == TOTAL // 2 and {r["line"] for r in line_a} == {"LINE-A"}
    ranged = page(api, "qty_good__gte=100&qty_good__lte=200&limit=1000")["items"]
    assert sorted(r["qty_good"] for r in ranged) == [v for v in range(100, 201, 10) if v % 50]
    assert {r["running"] for r in page(api, "running=false&limit=1000")["items"]} == {False}
    assert len(page(api, "qty_good__gt=2400&limit=1000")["items"]) == 8  # 241…249 but 245
    assert len(page(api, "qty_good__lt=20")["items"]) == 1
    assert len(page(api, "line__ne=LINE-A&limit=1000")["items"]) == TOTAL // 2
    # Times with an offset, or without one (then in the plant's zone, Asia/Jakarta).
    late = page(api, "ts__gte=2026-01-05T23:00:00%2B07:00&limit=1000")["items"]
    assert late and all(r["ts"] >= "2026-01-05T16:00:00+00:00" for r in late)
    assert page(api, "ts__gte=2026-01-05T23:00:00&limit=1000")["items"] == late
    assert page(api, "_source_id=machines&limit=1")["items"]

    cases = {
        "bogus=1": ("bogus", "no column 'bogus'"),
        "qty_good=abc": ("qty_good", "not an integer"),
        "qty_good__gte=1.5": ("qty_good__gte", "not an integer"),
        "qty_good=99999999999999999999": ("qty_good", "64-bit"),
        "oee__gte=high": ("oee__gte", "not a number"),
        "running=maybe": ("running", "not true or false"),
        "ts__lte=yesterday": ("ts__lte", "ISO 8601"),
        "meta=x": ("meta", "JSON column"),
        "qty_good__between=1": ("qty_good__between", "unknown operator"),
        "order=-nope": ("order", "no column 'nope'"),
        "order=meta": ("order", "JSON column"),
        "since=soon": ("since", "since"),
    }
    for query, (param, text) in cases.items():
        found = problems(api, query)
        assert found[0]["loc"] == ["query", param], (query, found)
        assert found[0]["msg"].startswith(param) and text in found[0]["msg"], (query, found)
    # Every problem is reported at once.
    assert len(problems(api, "bogus=1&qty_good=x&order=nope")) == 3


def test_since_and_soft_deleted_rows(api: Api, data_dir: Path) -> None:
    write_json(data_dir / "m.json", {"data": machines(10)})
    body = machine_source(data_dir / "m.json")
    body["mappings"][0]["mapping_config"]["delete_mode"] = "soft"
    api.post("/api/sources", json=body)
    runner = Runner(api.store)
    runner.sync("machines")
    synced_at = page(api)["items"][0]["_synced_at"]
    assert len(page(api, f"since={synced_at.replace('+', '%2B')}")["items"]) == 10
    assert page(api, "since=2999-01-01T00:00:00Z")["items"] == []
    write_json(data_dir / "m.json", {"data": machines(10)[3:]})
    assert runner.sync("machines").records_deleted == 3
    shown = page(api, "limit=1000")["items"]
    assert [r["machine_id"] for r in shown] == [f"M-{i:03d}" for i in range(3, 10)]
    assert len(page(api, "limit=1000&running=true")["items"]) == 4
    document = api.get("/api/sources/machines/data", role="viewer").json()
    assert [r["machineId"] for r in document["data"]] == [f"M-{i:03d}" for i in range(3, 10)]


def test_unknown_and_reserved_tables(synced: Api) -> None:
    api = synced
    for table in (
        "nope",
        "users",
        "api_tokens",
        "data_source_registry",
        "alembic_version",
        "_fs_stage_machines",
    ):
        response = api.get(f"/api/data/{table}", role="viewer")
        assert response.status_code == 404, (table, response.text)
        assert "no target table" in response.json()["detail"]
    assert api.get("/api/data/Robert'); DROP TABLE users;--", role="viewer").status_code == 422
    assert api.get("/api/data/machines?line=x'%20OR%201=1--", role="viewer").json()["items"] == []
    assert api.get("/api/sources/nope/data", role="viewer").status_code == 404


def test_etag_and_gzip(synced: Api, data_dir: Path) -> None:
    api = synced
    first = api.get("/api/data/machines", role="viewer")
    tag = first.headers["etag"]
    assert tag.startswith('W/"') and first.headers["cache-control"] == "no-cache"
    same = api.get("/api/data/machines", role="viewer", headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
    other = api.get("/api/data/machines?limit=5", role="viewer", headers={"If-None-Match": tag})
    assert other.status_code == 200

    records = machines(250)
    records[0]["line"] = "LINE-Z"
    write_json(data_dir / "machines.json", {"data": records})
    assert Runner(api.store).sync("machines").records_updated == 1
    changed = api.get("/api/data/machines", role="viewer", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag

    raw = api.client.get(
        "/api/data/machines",
        headers={**api.as_("viewer"), "Accept-Encoding": "gzip"},
        extensions={"decode_content": False},
    )
    assert raw.headers["content-encoding"] == "gzip"
    small = api.get(
        "/api/data/machines?limit=1&line=none", role="viewer", headers={"Accept-Encoding": "gzip"}
    )
    assert "content-encoding" not in small.headers

    document = api.get("/api/sources/machines/data", role="viewer")
    again = api.get(
        "/api/sources/machines/data",
        role="viewer",
        headers={"If-None-Match": document.headers["etag"]},
    )
    assert again.status_code == 304
    legacy = api.get("/api/legacy/source_data", role="viewer")
    assert (
        api.get(
            "/api/legacy/source_data",
            role="viewer",
            headers={"If-None-Match": legacy.headers["etag"]},
        ).status_code
        == 304
    )
    assert gzip  # the module is what the middleware speaks


def test_source_data_keeps_the_document_shape(api: Api, data_dir: Path) -> None:
    wrapper = {"updated_at": "2026-01-05T08:00:00+07:00", "plant": "Cikarang", "data": machines(12)}
    write_json(data_dir / "wrapped.json", wrapper)
    write_json(data_dir / "plain.json", machines(5))
    write_json(
        data_dir / "single.json",
        {"oee": 0.82, "line": "LINE-A", "asOf": "2026-01-05T07:30:00+07:00"},
    )
    for sid, path, records_path, key in [
        ("wrapped", "wrapped.json", "data", ["machine_id"]),
        ("plain", "plain.json", None, ["machine_id"]),
        ("single", "single.json", None, []),
    ]:
        body = machine_source(data_dir / path, source_id=sid)
        body["mappings"][0]["mapping_config"] = {"records_path": records_path, "primary_key": key}
        assert api.post("/api/sources", json=body).status_code == 201
        assert Runner(api.store).sync(sid).sync_status == "success"

    def document(sid: str) -> Any:
        response = api.get(f"/api/sources/{sid}/data", role="viewer")
        assert response.status_code == 200, response.text
        return orjson.loads(response.content)

    assert document("wrapped") == wrapper
    assert document("plain") == machines(5)
    assert document("single") == {
        "oee": 0.82,
        "line": "LINE-A",
        "asOf": "2026-01-05T07:30:00+07:00",
    }

    explicit = machine_source(data_dir / "plain.json", source_id="renamed")
    explicit["mappings"][0]["mapping_config"] = {
        "primary_key": ["machine"],
        "fields": {
            "machine": "machineId",
            "good": {"from": "qtyGood", "type": "integer"},
            "vendor": "meta.vendor",
        },
    }
    api.post("/api/sources", json=explicit)
    Runner(api.store).sync("renamed")
    assert document("renamed")[0] == {"machineId": "M-000", "qtyGood": None, "vendor": "Fanuc"}
    assert api.get("/api/sources/renamed/data?table=other", role="viewer").status_code == 404

    never = machine_source(data_dir / "plain.json", source_id="never_synced")
    api.post("/api/sources", json=never)
    missing = api.get("/api/sources/never_synced/data", role="viewer")
    assert missing.status_code == 404 and "no data yet" in missing.json()["detail"]


@pytest.fixture
def cached(store: Any) -> Any:
    # The longest api_cache_s allowed: the test's steps stay well within it on a slow machine.
    yield from make_api(store, api_cache_s=60.0)


def test_answers_from_memory_until_this_process_changes_data(cached: Api, data_dir: Path) -> None:
    api = cached
    write_json(data_dir / "m.json", {"data": machines(5)})
    api.post("/api/sources", json=machine_source(data_dir / "m.json"))
    Runner(api.store).sync("machines")
    assert len(page(api)["items"]) == 5
    write_json(data_dir / "m.json", {"data": machines(7)})
    Runner(api.store).sync("machines")  # another process, as far as the API knows
    assert len(page(api)["items"]) == 5  # within api_cache_s
    run = api.post("/api/sources/machines/sync", role="operator").json()
    api.wait_run(run["run_id"], timeout=PATIENCE)
    # Cleared when the API-started run finished.
    wait_for_value(lambda: len(page(api)["items"]), 7, what="the 7 rows of the API's run")
    # A token revoked here stops at once even though checked tokens are remembered.
    mine = api.post("/api/tokens", role="viewer", json={}).json()
    headers = {"Authorization": f"Bearer {mine['token']}"}
    assert api.client.get("/api/status", headers=headers).status_code == 200
    api.delete(f"/api/tokens/{mine['id']}", role="viewer")
    assert api.client.get("/api/status", headers=headers).status_code == 401


def test_repeated_pages_are_answered_from_memory_exactly_as_the_route_does(
    cached: Api, data_dir: Path
) -> None:
    api = cached
    write_json(data_dir / "m.json", {"data": machines(300)})
    api.post("/api/sources", json=machine_source(data_dir / "m.json"))
    Runner(api.store).sync("machines")
    url = "/api/data/machines?limit=100&order=-machine_id&line=LINE-A"
    plain = {"Accept-Encoding": "identity"}
    answers = api.client.app.state.ctx.answers
    served: list[Any] = []
    fast = answers.fast
    answers.fast = lambda key: served.append(fast(key)) or served[-1]
    first = api.get(url, role="viewer", headers=plain)  # the route: fills the caches
    assert not any(served)
    again = api.get(url, role="viewer", headers=plain)  # answered in front of the route
    assert served[-1] is not None
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["content-type"] == "application/json"
    assert again.headers["cache-control"] == "no-cache"
    # The same query in another order is the same answer; another query is not.
    swapped = api.get("/api/data/machines?line=LINE-A&order=-machine_id&limit=100", "viewer")
    assert swapped.content == first.content
    assert api.get("/api/data/machines?limit=100", role="viewer").content != first.content
    zipped = api.get(url, role="viewer", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == first.content
    tag = {"If-None-Match": first.headers["etag"]}
    assert api.get(url, role="viewer", headers=tag).status_code == 304
    # Refused callers never get the answer from memory.
    assert api.get(url, role=None).status_code == 401
    bad = {"Authorization": "Bearer fs_" + "x" * 43}
    assert api.client.get(url, headers=bad).status_code == 401
    with api.store.begin() as conn:
        scoped, _ = auth.create_token(conn, "viewer-user", scopes=["ingest:machines"])
    for _ in range(2):  # also once its token is known
        got = api.client.get(url, headers={"Authorization": f"Bearer {scoped}"})
        assert got.status_code == 403
    # Invalid parameters still meet the route's validation.
    assert api.get("/api/data/machines?limit=0", role="viewer").status_code == 422
    metrics = api.get("/metrics", role="viewer").text
    assert 'route="/api/data/{target_table}"' in metrics


def test_pages_follow_changes_made_by_other_processes_within_api_cache_s(
    store: Any, data_dir: Path
) -> None:
    for api in make_api(store, api_cache_s=0.5):
        write_json(data_dir / "m.json", {"data": machines(5)})
        api.post("/api/sources", json=machine_source(data_dir / "m.json"))
        Runner(api.store).sync("machines")

        def version(api: Api = api) -> int:
            with api.store.connect() as conn:
                return int(
                    conn.execute(
                        select(reg_t.c.data_version).where(reg_t.c.source_id == "machines")
                    ).scalar_one()
                )

        first = version()
        assert len(page(api)["items"]) == 5
        Runner(api.store).sync("machines")  # nothing changed: the version stays
        assert version() == first
        write_json(data_dir / "m.json", {"data": machines(7)})
        Runner(api.store).sync("machines")  # "another process" changed the table
        assert version() == first + 1
        # Seen once the answer in memory ages (after about api_cache_s).
        wait_for_value(lambda api=api: len(page(api)["items"]), 7, what="the other's 7 rows")


def test_cors_for_a_dashboard_on_another_origin(store: Any) -> None:
    for api in make_api(store, cors_origins="http://dashboard.plant"):
        preflight = api.client.options(
            "/api/data/machines",
            headers={
                "Origin": "http://dashboard.plant",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization,if-none-match",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://dashboard.plant"
        answer = api.get("/api/status", role="viewer", headers={"Origin": "http://dashboard.plant"})
        assert answer.headers["access-control-allow-origin"] == "http://dashboard.plant"
        assert "ETag" in answer.headers["access-control-expose-headers"]
        other = api.get("/api/status", role="viewer", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
