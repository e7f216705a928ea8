"""The Content-Security-Policy in a real browser: the console's main pages and the API
reference (Swagger UI, ReDoc) work under it with no violation reported, and the reference
loads nothing from another host (it works on a plant network without internet)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from factorysync import services
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from tests.conftest import write_json
from tests.web.conftest import LiveServer, add_users, serve
from tests.web.test_e2e import log_in


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def console(store: Store, data_dir: Path) -> Iterator[LiveServer]:
    add_users(store)
    write_json(data_dir / "oee.json", {"data": [{"line": "A", "oee": 0.81}]})
    services.create_source(
        store,
        {
            "source_id": "line_oee",
            "name": "OEE per line",
            "source_type": "json",
            "connections": [{"connection_config": {"file_path": str(data_dir / "oee.json")}}],
            "mappings": [{"target_table": "line_oee", "mapping_config": {"records_path": "data"}}],
        },
    )
    assert Runner(store).sync("line_oee").sync_status == "success"
    yield from serve(store)


class Watch:
    """What a page reports: CSP violations (the DOM event and the console message) and the
    URLs it loaded (requests the policy stopped never finish)."""

    def __init__(self, page: Any) -> None:
        self.violations: list[str] = []
        self.requests: list[str] = []
        page.expose_function("reportViolation", lambda text: self.violations.append(text))
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => "
            "window.reportViolation(e.violatedDirective + ' ' + e.blockedURI));"
        )
        page.on("console", self._console)
        page.on("requestfinished", lambda request: self.requests.append(request.url))

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)


def test_console_pages_run_under_the_policy(console: LiveServer, browser: Any) -> None:
    base = console.url
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = Watch(page)

    page.goto(f"{base}/login")
    assert "script-src 'self'" in page.evaluate(
        "fetch('/login').then(r => r.headers.get('content-security-policy'))"
    )
    log_in(page, base, "admin")
    assert page.locator("tr.source[data-source=line_oee]").count() == 1
    for path, ready in [
        ("/", "#totals"),
        ("/sources/line_oee", "tr.run[data-run-status=success]"),
        ("/sources/new", "a[data-kind=csv]"),
        ("/sources/new?type=csv", "#source-form"),
        ("/alerts", "main"),
    ]:
        page.goto(base + path)
        page.wait_for_selector(ready)
    # Scripts of the console run: Test shows its answer inline, without leaving the page.
    page.goto(f"{base}/sources/line_oee")
    page.click("#test-stored")
    page.wait_for_selector("#probe-result .probe[data-probe=test_stored][data-ok=true]")
    assert page.url == f"{base}/sources/line_oee"
    assert watch.violations == []

    # The watch sees a violation when there is one: an inline script is refused.
    with pytest.raises(Exception, match="violates the following Content Security Policy"):
        page.add_script_tag(content="window.inlineRan = true;")
    assert page.evaluate("window.inlineRan === undefined")
    page.wait_for_function("() => true")  # a round trip, for the report to arrive
    assert any(v.startswith("script-src-elem inline") for v in watch.violations), watch.violations
    assert all(url.startswith(base) for url in watch.requests)
    context.close()


# ReDoc shows Redocly's logo from their CDN, whatever its options: the policy stops that
# request in the browser (the logo hides itself when it fails to load).
REDOC_LOGO = "img-src https://cdn.redoc.ly/redoc/logo-mini.svg"


def expand_an_operation(page: Any) -> None:
    page.click(".opblock-summary-path[data-path='/api/sources']")
    page.wait_for_selector(".opblock.is-open .responses-table")


def search(page: Any) -> None:
    """ReDoc's search, whose index runs in a worker."""
    page.fill("input[placeholder='Search...']", "sync source")
    results = page.wait_for_selector("[data-role='search:results']")
    assert "Sync Source" in results.inner_text()


@pytest.mark.parametrize(
    ("path", "ready", "use", "stopped"),
    [
        ("/docs", ".swagger-ui .opblock-tag", expand_an_operation, set()),
        ("/redoc", "li[data-item-id]", search, {REDOC_LOGO}),
    ],
)
def test_api_reference_works_offline_under_the_policy(
    console: LiveServer,
    browser: Any,
    path: str,
    ready: str,
    use: Callable[[Any], None],
    stopped: set[str],
) -> None:
    base = console.url
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = Watch(page)

    # Without a session the reference sends the browser to the login page, and back.
    page.goto(base + path)
    assert "/login" in page.url
    page.fill("input[name=username]", "viewer1")
    page.fill("input[name=password]", "Viewer-Pass-2026")
    page.click("button[type=submit]")
    page.wait_for_url(base + path)
    page.wait_for_selector(ready)
    assert "/api/sources" in page.inner_text("body")
    use(page)
    events = {v for v in watch.violations if "Content Security Policy" not in v}
    assert events == stopped
    assert len(watch.violations) == 2 * len(stopped)  # each also reported on the console
    outside = [url for url in watch.requests if not url.startswith((base, "data:", "blob:"))]
    assert outside == []
    assert any(url.startswith(f"{base}/docs/assets/") for url in watch.requests)
    context.close()
