"""API sources: retries, timeouts, bad bodies, TLS, redirects and outbound rules, against
real HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from factorysync.connectors.api import safety as http_safety
from factorysync.connectors.api.safety import HostPolicy, RefusedAddress
from factorysync.errors import ConnectorFatal, ConnectorRetriable
from factorysync.intake import parse_source
from tests.conftest import closed_port
from tests.connectors.http_server import (
    HttpServer,
    Reply,
    Request,
    api_connector,
    read_all,
    self_signed,
)
from tests.waiting import wait_for_value

ROWS = [{"id": i, "temp": 20 + i} for i in range(30)]


def script(*replies: Reply) -> Callable[[Request], Reply]:
    """Answer with ``replies`` in turn, then with the records."""
    queue = list(replies)

    def app(req: Request) -> Reply:
        return queue.pop(0) if queue else Reply(200, {"data": ROWS})

    return app


# -- retries -------------------------------------------------------------------------------
def test_429_waits_for_retry_after(serve: Callable[..., HttpServer]) -> None:
    server = serve(script(Reply(429, {"error": "slow down"}, {"Retry-After": "1"})))
    connector = api_connector({"url": server.url, "records_path": "data"})
    assert read_all(connector) == ROWS
    first, second = server.requests
    assert second.at - first.at >= 0.95


def test_500_then_success_does_not_restart_the_read(serve: Callable[..., HttpServer]) -> None:
    failed = {"done": False}

    def app(req: Request) -> Reply:
        page = int(req.arg("page") or 1)
        if page == 2 and not failed["done"]:
            failed["done"] = True
            return Reply(500, "<h1>Internal Server Error</h1>", {"Content-Type": "text/html"})
        return Reply(200, {"data": ROWS[(page - 1) * 10 : page * 10]})

    server = serve(app)
    connector = api_connector(
        {"url": server.url, "records_path": "data", "pagination": {"type": "page"}}
    )
    assert read_all(connector) == ROWS
    assert [r.arg("page") for r in server.requests] == ["1", "2", "2", "3", "4"]


def test_5xx_until_retries_run_out_is_retriable(serve: Callable[..., HttpServer]) -> None:
    server = serve(lambda req: Reply(503, {"error": "maintenance window"}))
    connector = api_connector({"url": server.url + "/oee", "retries": 2})
    with pytest.raises(ConnectorRetriable) as failure:
        connector.check()
    assert str(failure.value) == (
        f"GET {server.url}/oee: HTTP 503 Service Unavailable: "
        """'{"error":"maintenance window"}' (gave up after 3 attempts)"""
    )
    assert len(server.requests) == 3


def test_408_is_retried(serve: Callable[..., HttpServer]) -> None:
    server = serve(script(Reply(408, "timeout"), Reply(408, "timeout")))
    assert read_all(api_connector({"url": server.url, "records_path": "data"})) == ROWS
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_fail_at_once(serve: Callable[..., HttpServer], status: int) -> None:
    server = serve(lambda req: Reply(status, {"message": "no such line"}))
    with pytest.raises(ConnectorFatal, match=rf"GET {server.url}/x: HTTP {status} "):
        api_connector({"url": server.url + "/x"}).check()
    assert len(server.requests) == 1


def test_retry_after_beyond_the_limit_gives_up_at_once(
    serve: Callable[..., HttpServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(lambda req: Reply(429, "quota", {"Retry-After": "3600"}))
    slept: list[float] = []  # the client waits (retries, rate limit) with time.sleep
    monkeypatch.setattr(time, "sleep", slept.append)
    with pytest.raises(ConnectorRetriable, match=r"asks to retry after 3600 s, more than"):
        api_connector({"url": server.url, "retry_max_wait_s": 5}).check()
    assert slept == [] and len(server.requests) == 1  # no wait at all, no second request


def test_a_hanging_server_times_out(serve: Callable[..., HttpServer]) -> None:
    server = serve(lambda req: Reply(hang=True))
    with pytest.raises(ConnectorRetriable) as failure:
        api_connector({"url": server.url + "/live", "timeout": 0.3, "retries": 1}).check()
    assert str(failure.value) == (
        f"GET {server.url}/live: no answer within 0.3 s (timeout) (gave up after 2 attempts)"
    )
    # The client gave up without an answer: the server may see the second request late.
    wait_for_value(lambda: len(server.requests), 2, what="both requests at the server")


def test_connection_refused_is_retriable() -> None:
    with closed_port() as port:
        connector = api_connector({"url": f"http://127.0.0.1:{port}/x", "retries": 1})
        with pytest.raises(ConnectorRetriable, match=r"connection failed: .*refused"):
            connector.check()


# -- bodies --------------------------------------------------------------------------------
def test_malformed_json_quotes_the_first_bytes(serve: Callable[..., HttpServer]) -> None:
    server = serve(lambda req: Reply(200, b'{"data": [{"id": 1}, {"id": 2'))
    with pytest.raises(ConnectorFatal) as failure:
        read_all(api_connector({"url": server.url + "/m", "records_path": "data"}))
    assert str(failure.value).startswith(
        f"GET {server.url}/m: HTTP 200 response is not JSON (application/json; "
    )
    assert str(failure.value).endswith("""'{"data": [{"id": 1}, {"id": 2'""")


def test_html_instead_of_json(serve: Callable[..., HttpServer]) -> None:
    page = "<!DOCTYPE html><html><body>" + "Login required. " * 40 + "</body></html>"
    server = serve(lambda req: Reply(200, page, {"Content-Type": "text/html"}))
    with pytest.raises(ConnectorFatal, match=r"is not JSON \(text/html; .*'<!DOCTYPE html><html>"):
        read_all(api_connector({"url": server.url}))


def test_missing_records_path(serve: Callable[..., HttpServer]) -> None:
    server = serve(lambda req: Reply(200, {"result": ROWS}))
    with pytest.raises(
        ConnectorFatal, match=r"records_path 'data' not found in the document: '\{\"result\""
    ):
        read_all(api_connector({"url": server.url, "records_path": "data"}))


def test_response_size_is_capped(serve: Callable[..., HttpServer]) -> None:
    big = {"data": [{"id": i, "pad": "x" * 100} for i in range(100)]}
    server = serve(lambda req: Reply(200, big))
    connector = api_connector({"url": server.url, "max_response_bytes": 4096})
    with pytest.raises(ConnectorFatal, match=r"exceeds max_response_bytes \(4,096\)"):
        read_all(connector, records_path="data")


def test_204_is_an_empty_page(serve: Callable[..., HttpServer]) -> None:
    server = serve(lambda req: Reply(204))
    assert read_all(api_connector({"url": server.url, "records_path": "data"})) == []


# -- TLS -----------------------------------------------------------------------------------
def test_tls_verification(serve: Callable[..., HttpServer], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = serve(lambda req: Reply(200, {"data": ROWS}), tls=tls)
    assert server.url.startswith("https://")
    config = {"url": server.url + "/secure", "records_path": "data"}

    with pytest.raises(ConnectorFatal, match=r"TLS failed: .*certificate.*set verify"):
        api_connector(config).check()
    assert read_all(api_connector({**config, "verify": str(cert)})) == ROWS
    assert read_all(api_connector({**config, "verify": False})) == ROWS
    with pytest.raises(ConnectorFatal, match=r"verify: CA bundle .* not found"):
        api_connector({**config, "verify": str(tmp_path / "nope.pem")}).check()


# -- redirects -----------------------------------------------------------------------------
def echo(req: Request) -> Reply:
    return Reply(200, {"data": [{"path": req.target, "headers": req.headers}]})


def test_redirect_on_the_same_host_keeps_credentials(serve: Callable[..., HttpServer]) -> None:
    def app(req: Request) -> Reply:
        if req.path == "/old":
            return Reply(301, "", {"Location": "/new"})
        return echo(req)

    server = serve(app)
    connector = api_connector(
        {"url": server.url + "/old", "records_path": "data", "auth": {"type": "bearer"}},
        {"token": "tok-same-host"},
    )
    (record,) = read_all(connector)
    assert record["path"] == "/new"
    assert record["headers"]["authorization"] == "Bearer tok-same-host"


def test_redirect_to_another_host_carries_no_credentials(
    serve: Callable[..., HttpServer],
) -> None:
    other = serve(echo)
    # "localhost" is another host than "127.0.0.1", whatever the port.
    server = serve(lambda req: Reply(302, "", {"Location": f"http://localhost:{other.port}/p"}))
    connector = api_connector(
        {
            "url": server.url + "/x",
            "records_path": "data",
            "headers": {"X-Plant-Secret": "{{plant}}"},
            "auth": {"type": "api_key", "in": "query", "name": "key"},
        },
        {"api_key": "qk-777", "plant": "ph-888"},
    )
    (record,) = read_all(connector)
    assert record["path"] == "/p"
    assert "x-plant-secret" not in record["headers"] and "authorization" not in record["headers"]
    assert "qk-777" in server.requests[0].target


def test_redirect_of_a_body_to_another_host_is_refused(serve: Callable[..., HttpServer]) -> None:
    other = serve(echo)
    server = serve(lambda req: Reply(307, "", {"Location": f"http://localhost:{other.port}/p"}))
    connector = api_connector(
        {"url": server.url, "method": "POST", "json": {"q": "{{token}}"}}, {"token": "body-tok"}
    )
    with pytest.raises(ConnectorFatal, match=r"redirect to another host refused: the request body"):
        connector.check()
    assert other.requests == []


def test_too_many_redirects(serve: Callable[..., HttpServer]) -> None:
    server = serve(lambda req: Reply(302, "", {"Location": "/again"}))
    with pytest.raises(ConnectorFatal, match=r"more than 3 redirects"):
        api_connector({"url": server.url, "max_redirects": 3}).check()
    assert len(server.requests) == 4


# -- outbound rules ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fe80::1]:8080/",
        "http://0.0.0.0:8080/",
    ],
)
def test_metadata_and_link_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(ConnectorFatal, match=r"refused to connect to .*link-local, cloud-metadata"):
        api_connector({"url": url, "retries": 0}).check()


def test_the_check_is_made_after_dns_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = [ipaddress.ip_address("169.254.169.254")]
    monkeypatch.setattr(http_safety, "resolve", lambda host, port: metadata)
    with pytest.raises(
        RefusedAddress,
        match=r"GET http://mes.plant.example/x: refused to connect to mes.plant.example "
        r"\(169.254.169.254\)",
    ):
        api_connector({"url": "http://mes.plant.example/x"}).check()


def test_allowed_hosts(serve: Callable[..., HttpServer]) -> None:
    server = serve(lambda req: Reply(200, {"data": ROWS}))
    by_name = f"http://localhost:{server.port}/x"
    by_address = f"{server.url}/x"
    only_localhost = {"api_allowed_hosts": "localhost"}
    assert read_all(api_connector({"url": by_name}, **only_localhost), records_path="data")
    with pytest.raises(
        ConnectorFatal,
        match=r"refused to connect to 127.0.0.1: not in FACTORYSYNC_API_ALLOWED_HOSTS",
    ):
        api_connector({"url": by_address}, **only_localhost).check()
    # Networks are compared with the resolved addresses.
    assert api_connector({"url": by_name}, api_allowed_hosts="10.0.0.0/8, 127.0.0.0/8").check()
    # ... and on every redirect.
    hop = serve(lambda req: Reply(302, "", {"Location": by_address}))
    with pytest.raises(ConnectorFatal, match=r"not in FACTORYSYNC_API_ALLOWED_HOSTS"):
        api_connector({"url": f"http://localhost:{hop.port}/"}, **only_localhost).check()
    assert len(server.requests) == 2  # the two allowed ones
    assert len(hop.requests) == 1


def test_host_policy() -> None:
    policy = HostPolicy.parse("*.plant.local, mes.example.com 169.254.10.0/24")
    ip = ipaddress.ip_address
    assert policy.permitted("line1.plant.local", [ip("10.1.2.3")]) == [ip("10.1.2.3")]
    assert policy.permitted("MES.example.com.", [ip("192.0.2.7")]) == [ip("192.0.2.7")]
    # Listed explicitly by address: a link-local device gateway may be used.
    assert policy.permitted("gw", [ip("169.254.10.9")]) == [ip("169.254.10.9")]
    with pytest.raises(RefusedAddress, match="metadata"):
        policy.permitted("mes.example.com", [ip("169.254.169.254")])
    with pytest.raises(RefusedAddress, match="not in FACTORYSYNC_API_ALLOWED_HOSTS"):
        policy.permitted("plant.local.evil.com", [ip("192.0.2.8")])
    # A name with one refused and one allowed address connects to the allowed one only.
    mixed = HostPolicy().permitted("x", [ip("169.254.169.254"), ip("192.0.2.9")])
    assert mixed == [ip("192.0.2.9")]
    with pytest.raises(ConnectorFatal, match=r"'bad/host' is not a host name"):
        HostPolicy.parse("ok.example, bad/host")


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"endpoint": "/x"}, "give url (the whole URL), or base_url with endpoint"),
        ({"url": "http://a/x", "base_url": "http://a"}, "give url (the whole URL), or base_url"),
        ({"url": "ftp://a/x"}, "url 'ftp://a/x' is not an http:// or https:// URL"),
        ({"url": "https://u:p@a/x"}, "url: credentials in the URL are not allowed"),
        ({"base_url": "http://a", "endpoint": "/{{cursor}}"}, "{{cursor}} goes in params"),
        ({"url": "http://a", "pagination": {"type": "pages"}}, "pagination: Input tag 'pages'"),
        ({"url": "http://a", "pagination": {"type": "cursor"}}, "next_cursor_path: Field required"),
        ({"url": "http://a", "auth": {"type": "bearer", "tokn": "x"}}, "auth.bearer.tokn: Extra"),
        ({"url": "http://a", "headers": {"Bad Header": "x"}}, "headers: not a header name"),
        ({"url": "http://a", "rate_limit": 0}, "rate_limit: Input should be greater than 0"),
    ],
)
def test_config_problems_are_reported_at_apply(config: dict[str, object], problem: str) -> None:
    source = {
        "source_id": "mes_api",
        "name": "MES",
        "source_type": "api",
        "connections": [{"connection_config": config}],
        "mappings": [{"target_table": "mes"}],
    }
    decl, problems = parse_source(source)
    assert decl is not None and len(problems) >= 1
    assert any(problem in p for p in problems), problems
    assert all(p.startswith("source: connections[0].connection_config.") for p in problems)


def test_the_rest_api_template_is_valid() -> None:
    from factorysync.store.templates import PREDEFINED, declaration_from_template

    template = next(t for t in PREDEFINED if t["template_name"] == "rest_api")
    decl, problems = parse_source(declaration_from_template(template, "mes_production"))
    assert decl is not None and problems == []
