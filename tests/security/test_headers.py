"""Browser security headers on every answer — console pages, API answers, errors, static
files and the fast path's cached data answers — and the API reference (``/docs``,
``/redoc``, ``/openapi.json``) behind a token or console session, served from this
machine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factorysync import web
from factorysync.api import fastpath
from factorysync.api.headers import CONSOLE_POLICY
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from factorysync.web.session import SESSION_COOKIE
from tests.api.conftest import Api, machine_source, machines, make_api
from tests.conftest import write_json

HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def directives(policy: str) -> dict[str, str]:
    return {d.split(" ", 1)[0]: d.partition(" ")[2] for d in policy.split("; ")}


def assert_secured(response: Any, policy: str = CONSOLE_POLICY) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (response.url, name)
    assert response.headers.get("content-security-policy") == policy, response.url


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


def test_the_console_policy_allows_only_this_origin() -> None:
    policy = directives(CONSOLE_POLICY)
    assert policy["script-src"] == policy["style-src"] == policy["img-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "unsafe" not in CONSOLE_POLICY and "http" not in CONSOLE_POLICY


def test_templates_hold_nothing_the_console_policy_refuses() -> None:
    templates = sorted((Path(web.__file__).parent / "templates").glob("*.html"))
    assert len(templates) >= 10
    for template in templates:
        html = re.sub(r"\{#.*?#\}", "", template.read_text(encoding="utf-8"), flags=re.S)
        assert not re.search(r"<script(?![^>]*\ssrc=)", html), f"{template.name}: inline script"
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", html), f"{template.name}: on… handler"
        assert not re.search(r"<[^>]*\sstyle\s*=|<style", html), f"{template.name}: inline style"
        assert "javascript:" not in html, template.name


@pytest.mark.parametrize(
    ("method", "path", "role", "status"),
    [
        ("GET", "/login", None, 200),  # a console page
        ("GET", "/sources", None, 303),  # a console redirect to the login page
        ("GET", "/static/console.js", None, 200),
        ("GET", "/docs/assets/swagger-ui.css", None, 200),
        ("GET", "/api/health", None, 200),
        ("GET", "/api/status", None, 401),
        ("GET", "/api/status", "viewer", 200),
        ("GET", "/api/users", "viewer", 403),
        ("GET", "/api/sources/nope", "admin", 404),
        ("POST", "/api/sources", "admin", 422),
        ("GET", "/no/such/page", None, 404),
        ("GET", "/metrics", "admin", 200),
    ],
)
def test_every_answer_carries_the_headers(
    api: Api, method: str, path: str, role: str | None, status: int
) -> None:
    response = api.request(method, path, role, json={}, follow_redirects=False)
    assert response.status_code == status, response.text
    assert_secured(response)


def test_cached_data_answers_of_the_fast_path_carry_the_headers(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[bool] = []
    original = fastpath.CachedDataAnswers._answered

    async def spy(self: Any, scope: Any, send: Any) -> bool:
        answered.append(await original(self, scope, send))
        return answered[-1]

    monkeypatch.setattr(fastpath.CachedDataAnswers, "_answered", spy)
    write_json(data_dir / "m.json", {"data": machines(40)})
    for api in make_api(store, api_cache_s=30.0):
        assert api.post("/api/sources", json=machine_source(data_dir / "m.json")).status_code == 201
        assert Runner(store).sync("machines").sync_status == "success"
        first = api.get("/api/data/machines?limit=5", "viewer")
        again = api.get("/api/data/machines?limit=5", "viewer")
        unchanged = api.get(
            "/api/data/machines?limit=5", "viewer", headers={"If-None-Match": again.headers["etag"]}
        )
    assert answered == [False, True, True]  # the route once, then the fast path
    assert (first.status_code, again.status_code, unchanged.status_code) == (200, 200, 304)
    assert again.json() == first.json()
    for response in (first, again, unchanged):
        assert_secured(response)


# -- the API reference -------------------------------------------------------------------
def test_openapi_document_needs_a_token_or_a_console_session(api: Api) -> None:
    anonymous = api.get("/openapi.json", None)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "log in" in anonymous.json()["detail"]
    bad = api.get("/openapi.json", None, headers={"Authorization": "Bearer fs_nope"})
    assert bad.status_code == 401 and "invalid token" in bad.json()["detail"]
    by_token = api.get("/openapi.json", "viewer")
    assert by_token.status_code == 200 and by_token.json()["info"]["title"] == "factorysync"
    assert "/api/sources" in by_token.json()["paths"]
    api.client.cookies.set(SESSION_COOKIE, api.tokens["viewer"])
    try:
        by_session = api.get("/openapi.json", None)
    finally:
        api.client.cookies.clear()
    assert by_session.status_code == 200 and by_session.json() == by_token.json()
    assert_secured(by_session)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_reference_pages_send_a_browser_to_the_login_page(api: Api, path: str) -> None:
    response = api.get(path, None, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=%2F{path[1:]}"
    assert api.get(path, "viewer").status_code == 200


def test_swagger_ui_comes_from_this_machine_with_a_fresh_nonce(api: Api) -> None:
    pages = [api.get("/docs", "viewer") for _ in range(2)]
    nonces = []
    for page in pages:
        assert page.status_code == 200
        policy = directives(page.headers["content-security-policy"])
        (nonce,) = re.findall(r"'nonce-([\w-]+)'", policy["script-src"])
        assert policy["style-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
        scripts = re.findall(r"<script[^>]*>", page.text)
        assert len(scripts) == 2 and all(f'nonce="{nonce}"' in s for s in scripts)
        nonces.append(nonce)
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
    assert nonces[0] != nonces[1]
    html = pages[0].text
    assert "http://" not in html and "https://" not in html
    for asset in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', html):
        served = api.get(asset, None)
        assert served.status_code == 200 and len(served.content) > 1000, asset
    assert "SwaggerUIBundle" in api.get("/docs/assets/swagger-ui-bundle.js", None).text


def test_redoc_comes_from_this_machine(api: Api) -> None:
    page = api.get("/redoc", "viewer")
    policy = directives(page.headers["content-security-policy"])
    assert policy["script-src"] == "'self'"  # ReDoc's page has no inline script
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert policy["worker-src"] == "blob:"
    assert "http://" not in page.text and "https://" not in page.text
    assert '<script src="/docs/assets/redoc.standalone.js">' in page.text
    assert api.get("/docs/assets/redoc.standalone.js", None).status_code == 200


def test_docs_public_opens_the_reference(store: Store) -> None:
    for api in make_api(store, docs_public=True):
        assert api.get("/openapi.json", None).json()["info"]["title"] == "factorysync"
        assert api.get("/docs", None, follow_redirects=False).status_code == 200
        assert api.get("/redoc", None, follow_redirects=False).status_code == 200
        # ... and only the reference: the API itself still needs a token.
        assert api.get("/api/status", None).status_code == 401
