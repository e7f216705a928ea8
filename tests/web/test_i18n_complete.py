"""Every console text in both languages (issue #23).

Two checks:

* the table (:data:`factorysync.web.i18n.MESSAGES`): every key has a non-empty text in
  English and in Bahasa Indonesia, with the same ``{placeholders}``;
* the pages: every console page (found from the app's GET routes, plus the pages that
  only a POST shows) is rendered in English and in Bahasa Indonesia over the same data,
  and a visible text (a text node, or a ``title`` / ``placeholder`` / ``aria-label`` /
  button ``value``) that reads the same in both fails, unless it is data: a source's id
  or name, a number, a time, an identifier, a unit, a brand name of :data:`BRANDS`, or a
  text from outside quoted “like this”.

A failure names the page and the text, e.g. ``GET /alerts: 'stale' (title)``. A new
route with a parameter needs sample values in :data:`SAMPLES` (the failure says so); a
route that answers no page goes in :data:`NOT_PAGES`; an area known to be English only
is listed, with the reason, in :data:`PENDING_CLASSES` (and must leave it once
translated).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from factorysync import services
from factorysync.alerts import RULES, records, rules
from factorysync.api import create_app
from factorysync.connectors.config_doc import variants
from factorysync.connectors.registry import BUILTIN, connection_types, connector_class
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from factorysync.web.config_form import config_fields
from factorysync.web.forms import KINDS
from factorysync.web.i18n import LANGUAGES, MESSAGES
from tests.conftest import write_json
from tests.web.conftest import PASSWORDS, add_users

# Names that read the same in every language: products, protocols, formats, this app.
BRANDS = {
    "factorysync",
    "API",
    "REST",
    "HTTP",
    "HTTPS",
    "JSON",
    "CSV",
    "XLS",
    "Excel",
    "MQTT",
    "MQ",
    "OPC",
    "UA",
    "Modbus",
    "TCP",
    "MB",
    "Siemens",
    "S7",
    "Artisan",
    "php",
    "DB",
    "PUSH",
    "SQL",
    "SQLite",
    "PostgreSQL",
    "MariaDB",
    "MySQL",
    "cron",
    "OK",
    "UTC",
    "EN",
    "ID",
    "TLS",
    "URL",
    *LANGUAGES.values(),
}
UNITS = {"s", "ms", "min", "h", "d", "MB", "KiB", "MiB", "GB", "rows/s", "%"}
# Words that Bahasa Indonesia spells as English does, in the sense the console uses them.
SAME_IN_BOTH = {"Data", "data", "Status", "status", "admin", "operator", "info", "API", "demo"}
# Code shown as an example (an expression of the mapping language).
CODE_EXAMPLES = {"(value - 32) * 5 / 9"}
# Inside these elements, text is data by construction (values, times, code).
DATA_ELEMENTS = {"code", "pre", "time", "kbd", "samp", "var", "q", "script", "style"}
TEXT_ATTRIBUTES = ("title", "placeholder", "aria-label")
# The part of a message that comes from outside (a driver's text, a path, a value).
QUOTED = re.compile(r"“[^”]*”|«[^»]*»")
NUMBERISH = re.compile(r"^[\d\s.,:;%+\-−–~·/()×#≥≤<>=*…|\[\]{}'\"!?↑↓→←•—]*$")
IDENTIFIER = re.compile(r"^[\w\-.:/@$#\[\]{}()'\"=,;*>+]+$")
DATA_CLASSES = {"data", "num", "verbatim"}
# Areas not translated yet, each with why. Their texts are counted apart (and a test
# fails once an area is translated, so that it leaves this list).
# (The connection settings, "cfg", left it: web/i18n_config.py translates them.)
PENDING_CLASSES: dict[str, str] = {}


# -- reading a page --------------------------------------------------------------------
class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []  # (text, where)
        self.stack: list[tuple[str, bool]] = []  # (tag, text inside is data)
        self.option_value: str | None = None
        self.pending: list[tuple[str, str]] = []  # (text, area) in PENDING_CLASSES areas
        self.areas: list[tuple[int, str]] = []  # (stack depth, area) of open pending areas

    def _data_here(self) -> bool:
        return any(is_data for _, is_data in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = set(values.get("class", "").split())
        is_data = tag in DATA_ELEMENTS or bool(classes & DATA_CLASSES)
        # An option that shows its own value shows a code (a config value, a type name);
        # without a value attribute, its text is its value.
        self.option_value = values.get("value", "\0") if tag == "option" else None
        area = next((c for c in classes if c in PENDING_CLASSES), None)
        if area is not None and tag not in ("input", "br", "img", "meta", "link", "hr"):
            self.areas.append((len(self.stack), area))
        inside = self._data_here() or is_data
        if not inside:
            for name in TEXT_ATTRIBUTES:
                if values.get(name, "").strip():
                    self._add(values[name].strip(), name)
            button = tag == "input" and values.get("type") in ("submit", "button", "reset")
            if button and values.get("value", "").strip():
                self._add(values["value"].strip(), "button value")
        if tag not in ("input", "br", "img", "meta", "link", "hr", "wbr", "source"):
            self.stack.append((tag, is_data))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                while self.areas and self.areas[-1][0] >= i:
                    self.areas.pop()
                return

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if self.option_value is not None and self.option_value in (text, "\0"):
            return
        if text and not self._data_here():
            self._add(text, "text")

    def _add(self, text: str, where: str) -> None:
        if self.areas:
            self.pending.append((text, self.areas[-1][1]))
        else:
            self.found.append((text, where))


def visible_texts(html: str) -> list[tuple[str, str]]:
    """(text, where) of every visible text of a page: text nodes and the attributes a
    user reads."""
    return _parsed(html).found


def pending_texts(html: str) -> list[tuple[str, str]]:
    """(text, area) of the texts inside the areas of :data:`PENDING_CLASSES`."""
    return _parsed(html).pending


def _parsed(html: str) -> _Visible:
    parser = _Visible()
    parser.feed(html)
    parser.close()
    return parser


def is_data(text: str, data: set[str]) -> bool:
    """Whether ``text`` is made only of data: values of the test's data set, quoted
    outside text, numbers and times, identifiers, brand names."""
    if text in CODE_EXAMPLES:
        return True
    rest = QUOTED.sub(" ", text)
    for value in sorted(data | {b for b in BRANDS if " " in b}, key=len, reverse=True):
        rest = rest.replace(value, " ")
    for token in rest.split():
        if token in BRANDS or token in UNITS or NUMBERISH.match(token):
            continue
        word = token.strip(string.punctuation + "·…“”")
        if not any(c.isalpha() for c in word) or word in BRANDS or word in SAME_IN_BOTH:
            continue
        # Identifiers and codes: snake_case, dotted or slashed paths, digits in a word.
        if IDENTIFIER.match(word) and re.search(r"[_./:@$\d]", word):
            continue
        return False
    return True


def untranslated(page: str, english: str, bahasa: str, data: set[str]) -> list[str]:
    """Texts of ``page`` that read the same in both languages and are not data."""
    theirs = {text for text, _ in visible_texts(bahasa)}
    problems = []
    for text, where in visible_texts(english):
        if text in theirs and not is_data(text, data):
            problem = f"{page}: {text!r} ({where})"
            if problem not in problems:
                problems.append(problem)
    return problems


def table_problems(messages: dict[str, tuple[str, str]]) -> list[str]:
    """Keys of the table without a text in a language, or with other placeholders."""
    problems = []
    fields = string.Formatter()
    for key, texts in messages.items():
        if len(texts) != len(LANGUAGES):
            problems.append(f"{key}: {len(texts)} texts for {len(LANGUAGES)} languages")
            continue
        names = []
        for language, text in zip(LANGUAGES, texts, strict=True):
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{key}: no {language} text")
                names.append(set())
                continue
            try:
                names.append({f for _, f, _, _ in fields.parse(text) if f is not None})
            except ValueError as exc:
                problems.append(f"{key} ({language}): bad template: {exc}")
                names.append(set())
        if any(n != names[0] for n in names[1:]):
            problems.append(f"{key}: placeholders differ: {[sorted(n) for n in names]}")
    return problems


# -- the table ---------------------------------------------------------------------------
def test_every_key_has_both_languages_with_the_same_placeholders() -> None:
    assert len(MESSAGES) > 200
    problems = table_problems(MESSAGES)
    assert not problems, "\n".join(problems)


def test_no_key_is_given_twice_by_the_table_modules() -> None:
    from factorysync.web.i18n_data import DATA_MESSAGES
    from factorysync.web.i18n_events import EVENT_TEXTS
    from factorysync.web.i18n_texts import CONSOLE_TEXTS

    blocks = {"i18n_texts": CONSOLE_TEXTS, "i18n_events": EVENT_TEXTS, "i18n_data": DATA_MESSAGES}
    seen: dict[str, str] = {}
    twice = []
    for name, block in blocks.items():
        twice += [f"{key}: in {seen[key]} and {name}" for key in block if key in seen]
        seen.update(dict.fromkeys(block, name))
    assert not twice, twice


def test_the_table_check_finds_a_missing_or_unequal_text() -> None:
    broken = dict(MESSAGES)
    broken["source.saved"] = (MESSAGES["source.saved"][0], "")
    broken["source.sync_started"] = ("Sync started (run {run}).", "Sinkronisasi dimulai.")
    broken["nav.alerts"] = ("Alerts",)  # type: ignore[assignment]
    assert table_problems(broken) == [
        "nav.alerts: 1 texts for 2 languages",
        "source.sync_started: placeholders differ: [['run'], []]",
        "source.saved: no id text",
    ]


def test_the_page_check_names_the_page_and_the_text() -> None:
    english = '<p>Runs <b title="line_a">Sources</b> 12 s · “no such file”</p><code>raw</code>'
    bahasa = '<p>Proses <b title="line_a">Sources</b> 12 s · “no such file”</p><code>raw</code>'
    assert untranslated("GET /x", english, bahasa, {"line_a"}) == ["GET /x: 'Sources' (text)"]
    assert is_data("line_a · 12 min · factorysync · “gone”", {"line_a"})
    assert not is_data("Status: rows", set())


# -- the pages ---------------------------------------------------------------------------
@dataclass
class Plant:
    healthy: str = "press_line_a"
    failing: str = "oven_line_b"
    realtime: str = "live_sensors"
    quarantine: str = "qc_checks"
    missing: str = "no_such_source"
    data: set[str] = field(default_factory=set)

    @property
    def tables(self) -> list[str]:
        return [self.healthy, self.quarantine, "no_such_table"]

    @property
    def source_ids(self) -> list[str]:
        return [self.healthy, self.failing, self.realtime, self.quarantine, self.missing]


def _json_source(source_id: str, name: str, path: Path, **mapping: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": name,
        "category": "produksi",
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [
            {
                "target_table": source_id,
                "mapping_config": {"records_path": "data", "primary_key": ["machine"], **mapping},
            }
        ],
    }


def _fill(store: Store, data_dir: Path) -> Plant:
    plant = Plant()
    good = write_json(data_dir / "press.json", {"data": [{"machine": "M-1", "oee": 0.81}]})
    services.create_source(store, _json_source(plant.healthy, "Press A", good))
    gone = data_dir / "oven.json"
    services.create_source(store, _json_source(plant.failing, "Oven B", gone))
    checks = write_json(
        data_dir / "qc.json",
        {"data": [{"machine": "M-1", "oee": "0.9"}, {"machine": "M-2", "oee": "abc"}]},
    )
    services.create_source(
        store,
        _json_source(
            plant.quarantine,
            "QC checks",
            checks,
            fields={"machine": "machine", "oee": {"from": "oee", "type": "float"}},
        ),
    )
    services.create_source(
        store,
        {
            "source_id": plant.realtime,
            "name": "Live sensors",
            "source_type": "mqtt",
            "connections": [
                {"connection_config": {"host": "127.0.0.1", "port": 1883, "topics": ["plant/#"]}}
            ],
            "mappings": [{"target_table": plant.realtime, "sync_strategy": "realtime"}],
        },
    )
    runner = Runner(store)
    runner.sync(plant.healthy)
    runner.sync(plant.quarantine)
    now = datetime.now(UTC)
    for _ in range(3):
        result = runner.sync(plant.failing)
        with store.begin() as conn:
            rules.evaluate_run(conn, result, store.settings, now)
    quarantined = runner.sync(plant.quarantine)
    with store.begin() as conn:
        rules.evaluate_run(conn, quarantined, store.settings, now)
        rules.check_sources(conn, store.settings, now + timedelta(days=3))
        _other_alerts(conn, plant, now)
    plant.data |= {
        *plant.source_ids,
        "primary",  # the connection's name
        *connection_types(),
        *plant.tables,
        "Press A",
        "Oven B",
        "QC checks",
        "Live sensors",
        "produksi",
        "plant/#",
        str(data_dir),
        "M-1",
        "M-2",
        "abc",
        "machine",
        "oee",
        *(f"{role}1" for role in PASSWORDS),
        *config_examples(),
    }
    return plant


def config_examples() -> set[str]:
    """The placeholders of the connection settings: each field's example value (its
    Field ``examples``: a database name, a query, a date format), typed as it is."""
    found = set()
    for name in BUILTIN:
        cls = connector_class(name)
        for model in (cls.config_model, *(m for _, m in variants(cls))):
            found |= {f.placeholder for f in config_fields(model, {}) if f.placeholder}
    return found


def _other_alerts(conn: Any, plant: Plant, now: datetime) -> None:
    """A schema change, a filling spool and a plugin's rule, as their raisers record them."""

    level = SimpleNamespace(
        spool="/var/lib/factorysync/spool",
        used_bytes=90 * 2**20,
        max_bytes=100 * 2**20,
        messages={plant.realtime: 42},
    )

    changes = [
        {"table": plant.healthy, "column": "oee", "kind": "widened", "old_type": "int"}
        | {"new_type": "float"},
        {"table": plant.healthy, "column": "shift", "kind": "added", "new_type": "text"},
    ]
    extra = [
        *rules.spool_alerts(level),
        {
            "source_id": plant.healthy,
            "rule": "schema_change",
            "message": f"{plant.healthy}: target schema changed: ...",
            "details": {"run_id": 1, "changes": changes},
        },
        {
            "source_id": plant.healthy,
            "rule": "plugin_vibration",
            "message": "vibration above 7 mm/s on press_line_a",
            "details": {"mm_s": 7.4},
        },
    ]
    records.raise_alerts(conn, extra, now)
    plant.data.add("vibration above 7 mm/s on press_line_a")  # a plugin's own text


def _log_in(client: TestClient, language: str) -> str:
    page = client.get(f"/login?lang={language}").text
    token = _csrf(page)
    answer = client.post(
        "/login",
        data={"username": "admin1", "password": PASSWORDS["admin"], "csrf": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    csrf = _csrf(client.get("/").text)
    client.post("/language", data={"csrf": csrf, "lang": language, "next": "/"})
    return csrf


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


# Route parameter → values (source_id and table come from the plant).
SAMPLES: dict[str, list[str]] = {"fmt": ["csv"]}
# GET routes that answer no page (an endless stream of events).
NOT_PAGES = {"/data/{table}/events"}


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """(path, route) of every API route, also inside included routers (FastAPI keeps them
    nested)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            more = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            yield from _routes(inner.routes, prefix + more)
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def _console_pages(client: TestClient, plant: Plant) -> Iterator[str]:
    """The GET paths of the console's routes, with their parameters filled."""
    routes = [
        (path, r)
        for path, r in _routes(client.app.routes)  # type: ignore[attr-defined]
        if "GET" in r.methods
        and r.endpoint.__module__.startswith("factorysync.web")
        and path not in NOT_PAGES
    ]
    assert len(routes) >= 6, "console routes not found"
    samples = {"source_id": plant.source_ids, "table": plant.tables, **SAMPLES}
    for path, _ in routes:
        names = re.findall(r"{(\w+)(?::\w+)?}", path)
        unknown = [n for n in names if n not in samples]
        assert not unknown, (
            f"route {path}: no sample value for {unknown}: add them to SAMPLES in {__file__}"
        )
        paths = [path]
        for name in names:
            paths = [
                re.sub("{" + name + r"(?::\w+)?}", value, p)
                for p in paths
                for value in samples[name]
            ]
        yield from paths


@dataclass
class Rendered:
    pages: dict[str, str] = field(default_factory=dict)  # page → HTML
    broken: list[str] = field(default_factory=list)  # pages that failed to render


def _render_all(client: TestClient, plant: Plant, language: str) -> Rendered:
    csrf = _log_in(client, language)
    out = Rendered()

    def keep(page: str, answer: Any) -> None:
        if answer.status_code >= 500:
            out.broken.append(f"{page}: answered {answer.status_code} in {language}")
        elif "text/html" in answer.headers.get("content-type", ""):
            out.pages[page] = answer.text

    for path in _console_pages(client, plant):
        keep(f"GET {path}", client.get(path))
    for kind, _, _ in KINDS:
        keep(f"GET /sources/new?type={kind}", client.get(f"/sources/new?type={kind}"))
    for state in ("open", "acknowledged", "resolved"):
        keep(f"GET /alerts?state={state}", client.get(f"/alerts?state={state}"))
    # The form with validation errors: every general field left empty.
    invalid = {"csrf": csrf, "intent": "save", "source_type": "json", "priority": "9"}
    keep("POST /sources/new (invalid)", client.post("/sources/new", data=invalid))
    invalid |= {"source_id": "Bad Id!", "name": "x", "target_table": plant.healthy}
    invalid |= {"sync_strategy": "incremental", "cfg.file_path": ""}
    keep("POST /sources/new (invalid ids)", client.post("/sources/new", data=invalid))
    # Notices after actions.
    for source_id in (plant.healthy, plant.failing):
        for action in ("test", "discover"):
            answer = client.post(f"/sources/{source_id}/{action}", data={"csrf": csrf})
            keep(f"POST /sources/{source_id}/{action}", answer)
    for status in ("maintenance", "active"):
        answer = client.post(
            f"/sources/{plant.healthy}/status", data={"csrf": csrf, "status": status}
        )
        keep(f"POST /sources/{plant.healthy}/status {status}", answer)
    answer = client.post(f"/sources/{plant.quarantine}/quarantine/replay", data={"csrf": csrf})
    keep(f"POST /sources/{plant.quarantine}/quarantine/replay", answer)
    # Logged out: the login page and a wrong password.
    client.post("/logout", data={"csrf": csrf})
    token = _csrf(client.get(f"/login?lang={language}").text)
    wrong = {"username": "admin1", "password": "wrong", "csrf": token}
    keep("POST /login (wrong password)", client.post("/login", data=wrong))
    keep("POST /login (expired form)", client.post("/login", data=wrong | {"csrf": "x"}))
    return out


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_page_reads_in_both_languages(store: Store, data_dir: Path) -> None:
    add_users(store)
    plant = _fill(store, data_dir)
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        english = _render_all(client, plant, "en")
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        bahasa = _render_all(client, plant, "id")
    broken = english.broken + bahasa.broken
    assert set(english.pages) == set(bahasa.pages)
    for needed in (
        f"GET /sources/{plant.failing}",
        "GET /alerts",
        "POST /sources/new (invalid)",
        "POST /login (wrong password)",
        f"GET /sources/{plant.missing}",
    ):
        assert needed in english.pages, f"{needed} was not rendered"
    alerts = english.pages["GET /alerts"]
    for rule in RULES:
        assert f'data-rule="{rule}"' in alerts, f"no {rule} alert to check"
    assert '<html lang="id">' in bahasa.pages["GET /"]
    problems = list(broken)
    still_pending: set[str] = set()
    for page, html in english.pages.items():
        problems += untranslated(page, html, bahasa.pages[page], plant.data)
        theirs = {text for text, _ in pending_texts(bahasa.pages[page])}
        still_pending |= {
            area
            for text, area in pending_texts(html)
            if text in theirs and not is_data(text, plant.data)
        }
    problems += [
        f"area {area!r} reads in both languages now: remove it from PENDING_CLASSES"
        for area in PENDING_CLASSES
        if area not in still_pending
    ]
    assert not problems, (
        f"{len(problems)} pages broken or texts that read the same in English and Bahasa "
        "Indonesia:\n" + "\n".join(problems)
    )
