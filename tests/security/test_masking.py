"""Masking secrets: every encoding a server may echo a secret in is masked, and only
secrets are (a user name ``postgres`` leaves "postgresql" alone).

The end-to-end test points API sources at a loopback server that answers 401/503 with
the request's credentials echoed JSON-escaped, URL-encoded, base64, repr'd and
HTML-escaped, syncs them from the CLI and through the API, and looks for the secrets in
every output: CLI commands, API answers, console pages, the service log and every table
of the store.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
import secrets as pyrandom
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import markupsafe
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from factorysync.api import create_app
from factorysync.engine.runner import Runner
from factorysync.security.redaction import RedactingFilter, Redactor, redact_known
from factorysync.security.secret_values import MASK, mask_config
from factorysync.security.secrets import SecretBox, resolve_env_refs
from factorysync.settings import reset_settings
from factorysync.store.store import Store
from tests.api.conftest import Api, make_api
from tests.conftest import run_cli
from tests.connectors.http_server import Reply, Request, Servers
from tests.web.conftest import add_users
from tests.web.test_pages import log_in


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forms(value: str, user: str | None = None) -> dict[str, str]:
    """``value`` as servers and libraries write it, by name (worked out here, not by the
    code under test)."""
    found = {
        "raw": value,
        "json": json.dumps(value, ensure_ascii=False)[1:-1],
        "json ascii": json.dumps(value)[1:-1],
        "json of json": json.dumps(json.dumps(value))[1:-1],
        "php json": json.dumps(value)[1:-1].replace("/", "\\/"),
        "quote": quote(value, safe=""),
        "quote path": quote(value),
        "quote_plus": quote_plus(value),
        "quote lower hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value)),
        "base64": _b64(value),
        "base64 urlsafe": base64.urlsafe_b64encode(value.encode()).decode(),
        "repr": repr(value)[1:-1],
        "repr bytes": repr(value.encode())[2:-1],
        "ascii": ascii(value)[1:-1],
        "repr of json": repr(json.dumps(value))[1:-1],
        "json of repr": json.dumps(repr(value))[1:-1],
        "html": html.escape(value),
        "jinja": str(markupsafe.escape(value)),
        "jinja of json": str(markupsafe.escape(json.dumps(value)))[5:-5],
    }
    if user is not None:
        found["basic"] = _b64(f"{user}:{value}")
        found["oauth basic"] = _b64(f"{quote_plus(user)}:{quote_plus(value)}")
    return found


CANARY = 'PLANT\\svc-"key"/é<&\'-canary-7f3a9c1e5b2d'


# -- the redactor on its own --------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(forms(CANARY, "root")))
def test_each_form_is_masked_inside_text(name: str) -> None:
    redact = Redactor()
    redact.add({"username": "root", "password": CANARY})
    written = forms(CANARY, "root")[name]
    text = f'401: {{"detail": "bad credentials {written}", "user": "root"}}'
    masked = redact(text)
    assert MASK in masked and "bad credentials" in masked and '"user": "root"' in masked
    leaked = [n for n, f in forms(CANARY, "root").items() if f in masked]
    assert not leaked, f"{name}: {leaked} left in {masked!r}"


def test_base64_of_a_body_holding_the_secret() -> None:
    """A long secret inside a larger base64 text: each alignment is masked."""
    redact = Redactor()
    redact.add({"api_key": CANARY})
    for prefix in ("", "a", "ab", '{"key": "'):
        encoded = _b64(f"{prefix}{CANARY} and more")
        masked = redact(f"echo {encoded}")
        assert MASK in masked and encoded not in masked
        # What is left around the mask decodes to no readable part of the secret.
        for piece in re.findall(r"[A-Za-z0-9+/=]{4,}", masked):
            assert not _decodes_to(piece, b"canary") and not _decodes_to(piece, b"PLANT")


def _decodes_to(piece: str, needle: bytes) -> bool:
    for offset in range(4):
        chunk = piece[offset:].rstrip("=")
        chunk = chunk[: len(chunk) // 4 * 4]
        if needle in base64.b64decode(chunk):
            return True
    return False


def test_short_values_are_masked_as_whole_tokens_only() -> None:
    redact = Redactor()
    redact.add({"password": "pw1", "token": "Sup3rSecret"})
    assert redact("pw1 'pw1' pw1& \"pw1\"") == "*** '***' ***& \"***\""
    assert redact("pw123 xpw1 spw1x") == "pw123 xpw1 spw1x"
    assert redact("xSup3rSecretx") == "x***x"  # long values wherever they appear
    assert redact("id 12") == "id 12"  # values under 3 characters are never masked


def test_identifiers_are_not_secrets() -> None:
    auth = {
        "type": "bearer",
        "username": "postgres",
        "user": "root",
        "token_url": "https://idp.plant/token",
        "scope": "read",
        "token": "tok-8c1d77",
        "environment": {"user": "envuser-secret", "DB_PASSWORD": "envpass-secret"},
    }
    redact = Redactor()
    redact.add(auth)
    message = (
        "postgresql://postgres@db: user 'root' refused; Bearer via https://idp.plant/token "
        "scope read; bearer tok-8c1d77; envuser-secret envpass-secret"
    )
    assert redact(message) == (
        "postgresql://postgres@db: user 'root' refused; Bearer via https://idp.plant/token "
        "scope read; bearer ***; *** ***"
    )
    assert mask_config(auth) == {
        "type": "bearer",
        "username": "postgres",
        "user": "root",
        "token_url": "https://idp.plant/token",
        "scope": "read",
        "token": MASK,
        "environment": MASK,  # nested: every value a secret, the whole shown as one mask
    }


def test_public_view_masks_what_it_cannot_read() -> None:
    box = SecretBox([base64.urlsafe_b64encode(b"k" * 32)])
    stored = box.encrypt_config({"username": "plant", "password": "pw-x1"})
    # Still encrypted: no value can be told apart, all are masked.
    assert mask_config(stored) == {"username": MASK, "password": MASK}
    assert mask_config({"scope": ["a", "b"], "pin": 1234}) == {"scope": MASK, "pin": MASK}


def test_env_references_are_not_secrets_but_their_values_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FS_MASKING_PW", "resolved-pw-5e1f")
    config = {"username": "plant", "password": "${env:FS_MASKING_PW}"}
    redact = Redactor()
    redact.add(config)
    assert redact("set ${env:FS_MASKING_PW}") == "set ${env:FS_MASKING_PW}"
    resolve_env_refs(config, where="auth")  # known to the process from here on
    assert redact_known("pw resolved-pw-5e1f for plant") == "pw *** for plant"


def test_log_records_and_tracebacks_are_masked() -> None:
    box = SecretBox([base64.urlsafe_b64encode(b"s" * 32)])
    box.decrypt_config(box.encrypt_config({"user": "svc", "password": "Log-Canary-91d2"}))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("factorysync.test_masking")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"server said {json.dumps('Log-Canary-91d2')}")
        except ValueError:
            logger.exception("run failed for %s: %r", "svc", "Log-Canary-91d2")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "run failed for svc: '***'" in text and 'server said "***"' in text
    assert "Log-Canary" not in text


# -- end to end ------------------------------------------------------------------------------
ECHOES = ("json", "url", "base64", "repr", "html")


def echo(form: str, key: str, authorization: str) -> Reply:
    """An answer quoting the request's credentials as ``form`` says."""
    _, _, password = base64.b64decode(authorization.removeprefix("Basic ")).decode().partition(":")
    if form == "json":
        body = json.dumps({"detail": "bad credentials", "key": key, "password": password})
    elif form == "url":
        body = f"bad credentials for key={quote(key, safe='')}&password={quote_plus(password)}"
    elif form == "base64":
        body = f"bad credentials: {_b64(key)} with {authorization}"
    elif form == "repr":
        body = f"bad credentials: { ({'key': key, 'password': password})!r} {key.encode()!r}"
    else:
        body = f"<p>bad credentials: {html.escape(key)} / {html.escape(password)}</p>"
    assert len(body) <= 200, "the whole echo must fit the quoted part of the message"
    # One of them a retriable failure: the retry path logs the message too.
    return Reply(503 if form == "repr" else 401, body, {"Content-Type": "text/plain"})


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    yield started
    started.stop()


def _dump(store: Store) -> str:
    """Every value of every table of the store, as text."""
    chunks = []
    with store.connect() as conn:
        meta = MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                chunks.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(chunks)


def test_echoed_credentials_leak_nowhere(
    env: dict[str, str],
    tmp_path: Path,
    servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    suffix = pyrandom.token_hex(6)
    key = f'PLANT\\svc-"key"-canary-{suffix}'
    password = f"Pa55/w0rd+'x'-canary-{pyrandom.token_hex(6)}"
    for name, value in {
        "FS_CANARY_PASSWORD": password,
        "FACTORYSYNC_ALERT_FAILURES": "1",
        "FACTORYSYNC_RETRY_BACKOFF_S": "0.01",
        "FACTORYSYNC_API_ALLOWED_HOSTS": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    caplog.set_level(logging.DEBUG)

    def app(req: Request) -> Reply:
        return echo(
            req.path.rsplit("/", 1)[1], req.headers["x-api-key"], req.headers["authorization"]
        )

    server = servers.start(app)
    sources = [
        {
            "source_id": f"echo_{form}",
            "name": f"Echo {form}",
            "source_type": "api",
            "connections": [
                {
                    "connection_config": {
                        "url": f"{server.url}/echo/{form}",
                        "headers": {"X-API-Key": "{{api_key}}"},
                        "auth": {"type": "basic"},
                        "retries": 1,
                        "retry_max_wait_s": 0.01,
                    },
                    "authentication_config": {
                        "username": "root",
                        "password": "${env:FS_CANARY_PASSWORD}",
                        "api_key": key,
                    },
                }
            ],
            "mappings": [{"target_table": f"echo_{form}", "mapping_config": {}}],
        }
        for form in ECHOES
    ]
    ids = [s["source_id"] for s in sources]
    (tmp_path / "echo.yaml").write_text(yaml.safe_dump({"sources": sources}))
    run_cli("init", check=True)
    outputs = {"apply": run_cli("apply", str(tmp_path / "echo.yaml"), check=True)}
    outputs["source sync"] = run_cli("source", "sync", *ids)
    assert outputs["source sync"].returncode != 0
    assert len(server.requests) == len(ECHOES) + 1  # the 503 was tried again (retries: 1)
    outputs["source sync --json"] = run_cli("source", "sync", "--json", *ids)
    for command in (
        ("source", "test", "echo_json"),
        ("source", "show", "echo_json"),
        ("source", "show", "echo_url", "--json"),
        ("source", "list", "--json"),
        ("history",),
        ("history", "--json"),
        ("status",),
    ):
        outputs[" ".join(command)] = run_cli(*command)

    store = Store()
    try:
        # Runs in this process too (their logs land in caplog), and the API answers.
        texts = _api_and_console(store, ids)
        runner = Runner(store)
        for sid in ids:
            result = runner.sync(sid)
            assert result.sync_status == "failed" and MASK in (result.error_message or "")
            texts[f"run of {sid}"] = result.error_message or ""
        texts["store"] = _dump(store)
    finally:
        store.dispose()
    for name, proc in outputs.items():
        texts[f"factorysync {name}"] = proc.stdout + proc.stderr
    texts["service log"] = "\n".join(
        f"{r.name} {r.getMessage()} "
        + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        for r in caplog.records
    )

    # The echo reached every message, masked: the body's own words are there.
    assert "bad credentials" in texts["factorysync source sync"]
    assert MASK in texts["factorysync source sync"]
    assert "bad credentials" in texts["/api/sources/echo_json"]
    assert "bad credentials" in texts["/api/alerts"]
    needles = {f"key {n}": f for n, f in forms(key, "root").items()}
    needles |= {f"password {n}": f for n, f in forms(password, "root").items()}
    needles |= {"key suffix": suffix, "password suffix": password.rsplit("-", 1)[1]}
    for where, text in texts.items():
        found = [n for n, f in needles.items() if f in text]
        assert not found, f"{found} in {where}: {text[:2000]}"


def _api_and_console(store: Store, ids: list[str]) -> dict[str, str]:
    """The answers of the API (operator and viewer) and the console pages (viewer) that
    show the sources, their runs and alerts, by URL."""
    add_users(store)
    texts: dict[str, str] = {}
    for api in make_api(store):
        for sid in ids[:2]:  # a run started over the API, in this process
            run = api.post(f"/api/sources/{sid}/sync").json()
            done = api.wait_run(run["run_id"])
            assert done["sync_status"] == "failed"
            texts[f"POST /api/sources/{sid}/sync"] = json.dumps(done)
            texts[f"POST /api/sources/{sid}/test"] = api.post(f"/api/sources/{sid}/test").text
        urls = ["/api/sources", "/api/status", "/api/alerts"]
        for sid in ids:
            urls += [f"/api/sources/{sid}", f"/api/sources/{sid}/history"]
        runs = api.get("/api/sources/echo_json/history").json()
        urls += [f"/api/runs/{r['id']}" for r in runs]
        for url in urls:
            answer = api.get(url, role="viewer" if url == "/api/alerts" else "operator")
            assert answer.status_code == 200, f"{url}: {answer.text}"
            texts[url] = answer.text
    with TestClient(create_app(store)) as console:
        log_in(console, "viewer")
        for page in ["/", "/sources", "/alerts", *(f"/sources/{sid}" for sid in ids)]:
            answer = console.get(page)
            assert answer.status_code == 200, page
            texts[f"console {page}"] = answer.text
    assert "bad credentials" in texts["console /sources/echo_json"]
    return texts


def test_identifiers_stay_readable_end_to_end(api: Api, data_dir: Path) -> None:
    """A user ``postgres`` keeps "postgresql" readable, ``type: bearer`` and user
    ``root`` show, in the public view, in the run's error and on the console."""
    token = f"tok-canary-{pyrandom.token_hex(6)}"
    source = {
        "source_id": "names",
        "name": "Names",
        "source_type": "json",
        "connections": [
            {
                "connection_config": {
                    "file_path": str(data_dir / "postgresql" / "root" / f"{token}.json")
                },
                "authentication_config": {
                    "type": "bearer",
                    "username": "postgres",
                    "user": "root",
                    "token": token,
                },
            }
        ],
        "mappings": [{"target_table": "names", "mapping_config": {}}],
    }
    assert api.post("/api/sources", json=source).status_code == 201
    run = api.post("/api/sources/names/sync").json()
    failed = api.wait_run(run["run_id"])
    error = failed["error_message"]
    assert "postgresql/root/***.json" in error and token not in error

    shown = api.get("/api/sources/names").json()
    assert shown["last_error"] == error
    connection = shown["connections"][0]
    assert connection["authentication_config"] == {
        "type": "bearer",
        "username": "postgres",
        "user": "root",
        "token": MASK,
    }
    assert connection["connection_config"]["file_path"].endswith("/postgresql/root/***.json")

    # Sent back as read, the source keeps its token.
    sent = {
        "connections": [
            {
                k: connection[k]
                for k in ("connection_name", "connection_config", "authentication_config")
            }
        ]
    }
    assert api.patch("/api/sources/names", json=sent).status_code == 200
    assert Runner(api.store).sync("names").error_message == error

    add_users(api.store)
    with TestClient(create_app(api.store)) as console:
        log_in(console, "operator")
        page = console.get("/sources/names").text
    assert "postgresql/root/***.json" in page and "bearer" in page and token not in page
