"""API sources: every pagination style, its end and its guards, against real HTTP servers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from factorysync.connectors.base import ReadRequest
from factorysync.errors import ConnectorFatal
from tests.connectors.http_server import (
    App,
    HttpServer,
    Reply,
    Request,
    api_connector,
    read_all,
)

ROWS = [{"id": i, "machine": f"M-{i % 7}", "qty": i * 3} for i in range(250)]


def offset_app(rows: list[dict[str, object]]) -> App:
    def app(req: Request) -> Reply:
        offset, limit = int(req.arg("offset", "0") or 0), int(req.arg("limit", "10") or 10)
        return Reply(200, {"data": rows[offset : offset + limit], "total": len(rows)})

    return app


def test_offset_pages_until_an_empty_page(serve: Callable[..., HttpServer]) -> None:
    server = serve(offset_app(ROWS))
    connector = api_connector(
        {
            "base_url": server.url,
            "endpoint": "/machines",
            "params": {"line": "A"},
            "pagination": {"type": "offset", "limit": 100},
        },
        batch_size=40,
    )
    batches = list(connector.read(ReadRequest(records_path="data")))
    assert [r for b in batches for r in b.records] == ROWS
    assert max(len(b.records) for b in batches) == 40
    assert [(r.arg("offset"), r.arg("limit"), r.arg("line")) for r in server.requests] == [
        ("0", "100", "A"),
        ("100", "100", "A"),
        ("200", "100", "A"),
        ("250", "100", "A"),
    ]
    assert batches[0].envelope == {"shape": "wrapped", "records_key": "data", "extra": {}}
    assert "(page 3)" in batches[-1].origin


def test_offset_advances_by_records_received(serve: Callable[..., HttpServer]) -> None:
    """A server that caps the page size below the asked limit loses no records."""

    def capped(req: Request) -> Reply:
        offset = int(req.arg("offset", "0") or 0)
        return Reply(200, {"data": ROWS[offset : offset + 30]})

    server = serve(capped)
    connector = api_connector(
        {"url": server.url + "/m", "pagination": {"type": "offset", "limit": 100}}
    )
    assert read_all(connector, records_path="data") == ROWS
    assert [r.arg("offset") for r in server.requests][:3] == ["0", "30", "60"]


def test_offset_in_the_body_of_a_post(serve: Callable[..., HttpServer]) -> None:
    def search(req: Request) -> Reply:
        body = req.json()
        assert req.method == "POST" and body["filter"] == {"line": "A"}
        page = body["paging"]
        return Reply(200, {"items": ROWS[page["from"] : page["from"] + page["size"]]})

    server = serve(search)
    connector = api_connector(
        {
            "base_url": server.url,
            "endpoint": "search",
            "method": "post",
            "json": {"filter": {"line": "A"}},
            "records_path": "items",
            "pagination": {
                "type": "offset",
                "in": "body",
                "offset_param": "paging.from",
                "limit_param": "paging.size",
                "limit": 120,
            },
        }
    )
    assert read_all(connector) == ROWS
    assert [r.json()["paging"]["from"] for r in server.requests] == [0, 120, 240, 250]
    assert all(r.path == "/search" for r in server.requests)


def test_page_numbers(serve: Callable[..., HttpServer]) -> None:
    def pages(req: Request) -> Reply:
        page, size = int(req.arg("page") or 0), int(req.arg("per_page") or 0)
        return Reply(200, {"result": {"rows": ROWS[(page - 1) * size : page * size]}})

    server = serve(pages)
    connector = api_connector(
        {
            "url": server.url + "/oee",
            "pagination": {"type": "page", "size_param": "per_page", "size": 60},
        }
    )
    assert read_all(connector, records_path="result.rows") == ROWS
    assert [r.arg("page") for r in server.requests] == ["1", "2", "3", "4", "5", "6"]


def test_cursor_token_in_the_body(serve: Callable[..., HttpServer]) -> None:
    def tokens(req: Request) -> Reply:
        start = int(req.arg("after") or 0)
        chunk = ROWS[start : start + 100]
        following = start + 100 if start + 100 < len(ROWS) else None
        return Reply(200, {"data": chunk, "meta": {"next": str(following) if following else None}})

    server = serve(tokens)
    connector = api_connector(
        {
            "url": server.url + "/events",
            "records_path": "data",
            "pagination": {
                "type": "cursor",
                "cursor_param": "after",
                "next_cursor_path": "meta.next",
                "limit_param": "max",
                "limit": 100,
            },
        }
    )
    assert read_all(connector) == ROWS
    assert [(r.arg("after"), r.arg("max")) for r in server.requests] == [
        (None, "100"),
        ("100", "100"),
        ("200", "100"),
    ]


def test_next_url_in_the_body(serve: Callable[..., HttpServer]) -> None:
    def linked(req: Request) -> Reply:
        start = int(req.arg("from") or 0)
        links: dict[str, object] = {}
        if start + 100 < len(ROWS):
            # Relative first, then absolute: both are followed.
            links["next"] = (
                f"/v2/items?from={start + 100}"
                if start == 0
                else f"{server.url}/v2/items?from={start + 100}"
            )
        return Reply(200, {"items": ROWS[start : start + 100], "links": links})

    server = serve(linked)
    connector = api_connector(
        {
            "base_url": server.url + "/v2",
            "endpoint": "items",
            "params": {"fields": "all"},
            "pagination": {"type": "next_url", "next_url_path": "links.next"},
        }
    )
    assert read_all(connector, records_path="items") == ROWS
    assert [r.target for r in server.requests] == [
        "/v2/items?fields=all",
        "/v2/items?from=100",
        "/v2/items?from=200",
    ]


def test_link_header(serve: Callable[..., HttpServer]) -> None:
    def github_style(req: Request) -> Reply:
        page = int(req.arg("page") or 1)
        headers = {}
        if page * 100 < len(ROWS):
            headers["Link"] = (
                f'<{server.url}/items?page={page + 1}>; rel="next", <{server.url}/items?page=3>; '
                'rel="last"'
            )
        return Reply(200, ROWS[(page - 1) * 100 : page * 100], headers)

    server = serve(github_style)
    connector = api_connector({"url": server.url + "/items", "pagination": {"type": "link_header"}})
    assert read_all(connector) == ROWS
    assert [r.arg("page") for r in server.requests] == [None, "2", "3"]


def test_an_empty_page_ends_even_with_a_next_link(serve: Callable[..., HttpServer]) -> None:
    def endless(req: Request) -> Reply:
        page = int(req.arg("p") or 1)
        data = ROWS[:10] if page == 1 else []
        return Reply(200, {"data": data, "next": f"/x?p={page + 1}"})

    server = serve(endless)
    connector = api_connector(
        {"url": server.url + "/x", "pagination": {"type": "next_url", "next_url_path": "next"}}
    )
    assert read_all(connector, records_path="data") == ROWS[:10]
    assert len(server.requests) == 2


def test_page_limit_stops_an_endless_api(serve: Callable[..., HttpServer]) -> None:
    def endless(req: Request) -> Reply:
        page = int(req.arg("p") or 1)
        return Reply(200, {"data": [{"page": page}], "next": f"/x?p={page + 1}"})

    server = serve(endless)
    connector = api_connector(
        {
            "url": server.url + "/x",
            "records_path": "data",
            "pagination": {"type": "next_url", "next_url_path": "next", "max_pages": 5},
        }
    )
    with pytest.raises(ConnectorFatal, match=r"did not end after 5 pages \(pagination.max_pages\)"):
        read_all(connector)
    assert len(server.requests) == 5


def test_a_cursor_that_goes_round_in_a_circle(serve: Callable[..., HttpServer]) -> None:
    def circular(req: Request) -> Reply:
        token = {"a": "b", "b": "c", "c": "a"}[req.arg("cursor") or "a"]
        return Reply(200, {"data": [{"token": token}], "next": token})

    server = serve(circular)
    connector = api_connector(
        {
            "url": server.url + "/x",
            "records_path": "data",
            "pagination": {"type": "cursor", "next_cursor_path": "next"},
        }
    )
    with pytest.raises(ConnectorFatal, match=r"page 5 would request a page read before"):
        read_all(connector)
    assert [r.arg("cursor") for r in server.requests] == [None, "b", "c", "a"]


def test_pages_with_the_same_content_are_read(serve: Callable[..., HttpServer]) -> None:
    """Identical pages are possible (rows without keys); only max_pages ends such an API."""
    server = serve(lambda req: Reply(200, {"data": [{"count": 0}] * 3}))
    connector = api_connector(
        {
            "url": server.url + "/x",
            "records_path": "data",
            "pagination": {"type": "page", "max_pages": 4},
        }
    )
    with pytest.raises(ConnectorFatal, match=r"did not end after 4 pages"):
        read_all(connector)
    assert len(server.requests) == 4


def test_next_page_on_another_host_is_refused(serve: Callable[..., HttpServer]) -> None:
    other = serve(lambda req: Reply(200, {"data": []}))
    server = serve(
        lambda req: Reply(200, {"data": ROWS[:3], "next": f"http://localhost:{other.port}/p2"})
    )
    connector = api_connector(
        {
            "url": server.url + "/x",
            "auth": {"type": "bearer"},
            "pagination": {"type": "next_url", "next_url_path": "next"},
        },
        {"token": "t-secret-1234"},
    )
    with pytest.raises(ConnectorFatal, match=r"page 2 is on another host .*refused"):
        read_all(connector, records_path="data")
    assert other.requests == []


def test_paginated_object_without_records_path(serve: Callable[..., HttpServer]) -> None:
    server = serve(offset_app(ROWS))
    connector = api_connector({"url": server.url, "pagination": {"type": "offset"}})
    with pytest.raises(ConnectorFatal, match=r"the response is a JSON object; set records_path"):
        read_all(connector)


def test_discover_reads_the_first_page_only(serve: Callable[..., HttpServer]) -> None:
    server = serve(offset_app(ROWS))
    connector = api_connector(
        {"url": server.url, "records_path": "data", "pagination": {"type": "offset", "limit": 20}}
    )
    fields = {f.name: f for f in connector.discover(limit=200)}
    assert set(fields) == {"id", "machine", "qty"}
    assert fields["qty"].kind == "integer" and fields["machine"].samples == ["M-0", "M-1", "M-2"]
    assert len(server.requests) == 1
