"""The connection_config reference of docs/configuration.md is the config models': every
field of every built-in type is described, ``--check`` holds on the repository and names
the stale type on a copy, a plugin type gets its own section, and the console's source
form shows each field's description next to its input."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from factorysync.api import create_app
from factorysync.connectors import config_doc, registry
from factorysync.connectors.api import ApiConfig
from factorysync.connectors.api.auth import AUTH_MODELS
from factorysync.connectors.api.pagination import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PagePagination,
)
from factorysync.connectors.command_config import ArtisanConfig, CommandConfig
from factorysync.connectors.file.csv import CsvFileConfig, CsvOptions
from factorysync.connectors.file.excel import ExcelFileConfig
from factorysync.connectors.mqtt_wire import TlsConfig
from factorysync.connectors.opcua import NodeSpec
from factorysync.store.store import Store
from factorysync.web import forms
from tests.connectors.test_plugin import plugin  # noqa: F401  (a fixture)
from tests.web.conftest import add_users
from tests.web.test_pages import log_in

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"


@pytest.fixture
def backend() -> str:
    """The console test needs a store, not a particular database."""
    return "sqlite"


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """A checkout root holding a copy of docs/configuration.md."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "configuration.md").write_text(
        DOC.read_text(encoding="utf-8"), encoding="utf-8"
    )
    return tmp_path


# -- descriptions ------------------------------------------------------------------------
@pytest.mark.parametrize("connection_type", list(registry.BUILTIN))
def test_every_field_of_every_config_model_is_described(connection_type: str) -> None:
    cls = registry.connector_class(connection_type)
    tops = [cls.config_model, *(model for _, model in config_doc.variants(cls))]
    bare = [
        f"{path} ({model.__name__})"
        for top in tops
        for path, model, info in config_doc.walk_fields(top)
        if not (info.description or "").strip()
    ]
    assert bare == [], f"{connection_type}: fields without a description"


def test_the_walk_reaches_every_nested_model() -> None:
    """Nested models (an API's auth and pagination kinds, OPC UA nodes, MQTT tls, a
    command's csv) and the file formats' models are all walked."""
    reached = set()
    for name in registry.BUILTIN:
        cls = registry.connector_class(name)
        for top in (cls.config_model, *(model for _, model in config_doc.variants(cls))):
            reached |= {model for _, model, _ in config_doc.walk_fields(top)}
    expected = {
        ApiConfig,
        *AUTH_MODELS.values(),
        OffsetPagination,
        PagePagination,
        CursorPagination,
        NextUrlPagination,
        LinkHeaderPagination,
        NodeSpec,
        TlsConfig,
        CsvOptions,
        CommandConfig,
        ArtisanConfig,
        CsvFileConfig,
        ExcelFileConfig,
    }
    assert expected <= reached, expected - reached
    assert config_doc.undocumented() == []


# -- the document ------------------------------------------------------------------------
def test_check_passes_on_the_repository() -> None:
    check = subprocess.run(
        [sys.executable, "-m", "factorysync.connectors.config_doc", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert check.returncode == 0, check.stderr


def test_every_type_has_its_section_with_every_key() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = config_doc.block_of(text, str(DOC))
    shown = config_doc.split(text[start:end])
    for name, cls in registry.connection_types().items():
        assert f"### `{name}` keys" in shown[name]
        for path, _, _ in config_doc.walk_fields(cls.config_model):
            key = path.rsplit(".", 1)[-1]
            assert f"| `{key}` |" in shown[name], f"{name}: {path} is not in its table"
    assert "**Keys of `auth` with `type: oauth2_client_credentials`:**" in shown["api"]
    assert "**Keys of each item of `nodes`:**" in shown["opcua"]
    assert "**With `file_type: csv`** (CSV), also:" in shown["file"]


def test_check_names_the_stale_type_and_a_run_fixes_it(
    docs_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = docs_copy / "docs" / "configuration.md"
    text = doc.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `shared_group` |"))
    doc.write_text(text.replace(row + "\n", ""), encoding="utf-8")

    assert config_doc.main(["--check"], root=docs_copy) == 1
    err = capsys.readouterr().err
    assert f"{doc}: the connection_config reference is out of date for mqtt: run " in err

    assert config_doc.main([], root=docs_copy) == 0
    assert "rewritten (mqtt)" in capsys.readouterr().out
    assert doc.read_text(encoding="utf-8") == text
    assert config_doc.main(["--check"], root=docs_copy) == 0


def test_check_fails_without_the_markers(
    docs_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = docs_copy / "docs" / "configuration.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace(config_doc.END, ""), "utf-8")
    assert config_doc.main(["--check"], root=docs_copy) == 1
    assert "markers" in capsys.readouterr().err


@pytest.mark.usefixtures("plugin")
def test_a_plugin_type_gets_a_section(docs_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parts = config_doc.sections(registry.connection_types())
    assert list(parts)[-2:] == ["counter", "ticker"]
    assert "- source types: `counter` (Counter)" in parts["counter"]
    assert "| `machine` | text |  | yes | Machine id stamped on every row |" in parts["counter"]
    assert "- capabilities: streams" in parts["ticker"]
    # The repository's reference has no section for it: --check says which is missing.
    check = ["--check", "--type", "counter", "--type", "ticker"]
    assert config_doc.main(check, root=docs_copy) == 1
    assert "counter (missing), ticker (missing)" in capsys.readouterr().err


@pytest.mark.usefixtures("plugin")
def test_an_installed_plugin_leaves_the_reference_alone_and_prints_its_own(
    docs_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = docs_copy / "docs" / "configuration.md"
    text = doc.read_text(encoding="utf-8")
    assert config_doc.main(["--check"], root=docs_copy) == 0
    assert config_doc.main([], root=docs_copy) == 0
    assert doc.read_text(encoding="utf-8") == text

    assert config_doc.main(["--type", "counter"], root=docs_copy) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("### `counter` keys")
    assert "| `machine` | text |  | yes | Machine id stamped on every row |" in printed
    assert "`ticker`" not in printed
    assert doc.read_text(encoding="utf-8") == text

    assert config_doc.main(["--type", "nope"], root=docs_copy) == 1
    assert "unknown connection_type 'nope'" in capsys.readouterr().err


# -- the console ---------------------------------------------------------------------------
@pytest.fixture
def console(store: Store) -> Iterator[TestClient]:
    add_users(store)
    with TestClient(create_app(store)) as client:
        log_in(client, "admin")
        yield client


def test_the_form_shows_each_fields_description_next_to_it(console: TestClient) -> None:
    for source_type, connection_type, _ in forms.KINDS:
        page = console.get(f"/sources/new?type={source_type}")
        assert page.status_code == 200, source_type
        labels = dict(
            re.findall(r'<label class="cfg[^"]*" data-key="([^"]+)">(.*?)</label>', page.text, re.S)
        )
        model = forms.config_model(source_type, connection_type)
        for name, info in model.model_fields.items():
            key = info.alias or name
            assert key in labels, f"{source_type}: no input for {key}"
            help_text = f'<small class="muted">{escape(info.description or "")}</small>'
            assert help_text in labels[key], f"{source_type}: {key} shows no description"
