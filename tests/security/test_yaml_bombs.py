"""Configuration that would cost far more to hold than to send: YAML anchors and aliases
(a "billion laughs" document), deep nesting, and big documents without aliases. Each is
refused with one line naming where, before anything is stored."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from factorysync import yamlsafe
from factorysync.errors import ConfigError
from factorysync.intake import (
    CONFIG_MAX_BYTES,
    CONFIG_MAX_DEPTH,
    SOURCES_FILE_MAX_BYTES,
    load_sources_file,
    parse_source,
)
from factorysync.settings import Settings
from factorysync.store.schema import data_source_connections, data_source_registry
from factorysync.store.store import Store
from tests.api.conftest import Api, machine_source, machines, make_api
from tests.conftest import run_cli, write_json

# The process that reads a bomb may use this much address space; a loader that expands
# aliases fails against it instead of taking the machine's memory.
MEMORY_CAP = 2 * 1024**3

GOOD = """\
sources:
  - source_id: counts
    name: Counts
    source_type: json
    connections:
      - connection_config: {file_path: counts.json}
        authentication_config: {token: t-1}
    mappings:
      - target_table: counts
"""


def bomb(levels: int = 9) -> str:
    """The finding's shape: aliases nested ``levels`` deep under authentication_config
    (9 levels of 9 stand for 387 million strings, in well under a kilobyte)."""
    lines = [
        "sources:",
        "  - source_id: bomb",
        "    name: bomb",
        "    source_type: json",
        "    connections:",
        "      - connection_config: {file_path: counts.json}",
        "        authentication_config:",
        '          l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, levels):
        lines.append(f"          l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    lines.append("    mappings: [{target_table: bomb}]")
    return "\n".join(lines) + "\n"


def capped_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real ``factorysync`` command, with its address space capped."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    return subprocess.run(
        [sys.executable, "-m", "factorysync.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=cap,
    )


def store_state(tmp_path: Path) -> dict[str, Any]:
    """Rows of the registry and, on SQLite, the size of the database files."""
    store = Store(Settings())
    try:
        with store.connect() as conn:
            rows = [
                conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (data_source_registry, data_source_connections)
            ]
            configs = sorted(
                str(r) for r in conn.execute(select(data_source_connections.c.connection_config))
            )
    finally:
        store.dispose()
    files = {p.name: p.stat().st_size for p in tmp_path.glob("factorysync.db*")}
    return {"rows": rows, "configs": configs, "files": files}


# -- sources files ----------------------------------------------------------------------------
def test_apply_refuses_an_alias_bomb_and_stores_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    text = bomb()
    assert len(text.encode()) < 900
    (tmp_path / "sources.yaml").write_text(GOOD)
    (tmp_path / "bomb.yaml").write_text(text)
    run_cli("init", check=True)
    run_cli("apply", "sources.yaml", check=True)
    before = store_state(tmp_path)
    assert before["rows"] == [1, 1]

    proc = capped_cli("apply", "bomb.yaml")

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: bomb.yaml line 8: YAML anchors and aliases are not accepted (write each value out)"
    ]
    assert proc.stdout == ""
    assert store_state(tmp_path) == before


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # An anchor alone: refused where it is set, before any alias could use it.
        ("sources:\n  - &first {source_id: a}\n", 2),
        # A merge key needs an alias.
        (
            "base: &base {source_type: json}\nsources:\n  - <<: *base\n    source_id: a\n",
            1,
        ),
        ("sources: []\nx: !!str &s text\n", 2),
    ],
)
def test_every_anchor_and_alias_is_refused(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_sources_file(path)
    assert str(caught.value) == (
        f"{path} line {line}: YAML anchors and aliases are not accepted (write each value out)"
    )


def test_an_anchor_inside_a_quoted_value_is_text(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("token: t-1", "token: '&not-an-anchor *nor-an-alias'"))
    (decl,) = load_sources_file(path)
    assert decl.connections[0].authentication_config == {"token": "&not-an-anchor *nor-an-alias"}


def test_deep_nesting_and_too_many_values_are_refused() -> None:
    deep = "a:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(1, yamlsafe.MAX_DEPTH + 5))
    with pytest.raises(ConfigError, match=r"^deep.yaml line \d+: nested more than 64 levels"):
        yamlsafe.load(deep, "deep.yaml")
    flow = "a: " + "[" * 100 + "]" * 100
    with pytest.raises(ConfigError, match=r"^flow.yaml line 1: nested more than 64 levels"):
        yamlsafe.load(flow, "flow.yaml")
    # Deeper still, libyaml's own limit may speak first; the line is named either way.
    flow = "a: " + "[" * 100_000
    with pytest.raises(ConfigError, match=r"^flow.yaml.* line 1\b"):
        yamlsafe.load(flow, "flow.yaml")
    many = "[" + ",".join(["1"] * (yamlsafe.MAX_NODES + 1)) + "]"
    with pytest.raises(ConfigError, match=r"^many.yaml line 1: more than 200,000 values"):
        yamlsafe.load(many, "many.yaml")
    # Just under the limits loads.
    assert len(yamlsafe.load("[" + ",".join(["1"] * (yamlsafe.MAX_NODES - 1)) + "]", "x")) == (
        yamlsafe.MAX_NODES - 1
    )


def test_values_python_refuses_to_build_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"^big.yaml: invalid YAML value: Exceeds the limit"):
        yamlsafe.load("a: " + "9" * 5000, "big.yaml")
    with pytest.raises(ConfigError, match=r"^obj.yaml: invalid YAML at line 1, column 4"):
        yamlsafe.load("a: !!python/object:os.system {}", "obj.yaml")


def test_sources_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as fh:
        fh.write(GOOD)
        line = "# " + "x" * 1022 + "\n"
        for _ in range(SOURCES_FILE_MAX_BYTES // len(line) + 1):
            fh.write(line)
    with pytest.raises(ConfigError) as caught:
        load_sources_file(path)
    assert str(caught.value) == (
        f"{path}: larger than 8 MiB, the limit for a sources file; split it into several files"
    )


def test_undecodable_sources_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(GOOD.replace("Counts", "Z\xe4hler").encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{path} line 3: not UTF-8 text \(byte \d+\)$"):
        load_sources_file(path)


# -- the size budget of a source's configs ----------------------------------------------------
def source(**connection: Any) -> dict[str, Any]:
    return {
        "source_id": "big",
        "name": "Big",
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": "big.json"}, **connection}],
        "mappings": [{"target_table": "big"}],
    }


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"inner": value}
    return value


def test_config_budget_without_aliases() -> None:
    over = source(authentication_config={"cert": "x" * CONFIG_MAX_BYTES})
    decl, problems = parse_source(over, "sources[0] (source_id 'big')")
    assert decl is None
    assert problems == [
        "sources[0] (source_id 'big'): connections[0].authentication_config: too large: the "
        "connection, authentication and mapping configs of one source may take at most "
        "256 KiB as JSON together"
    ]
    # The parts count together: two halves are too much as well.
    half = "y" * (CONFIG_MAX_BYTES // 2)
    split = source(connection_config={"file_path": "big.json", "note": half})
    split["mappings"][0]["mapping_config"] = {"description": half}
    assert parse_source(split)[1] == [
        "source: mappings[0].mapping_config: too large: the connection, authentication and "
        "mapping configs of one source may take at most 256 KiB as JSON together"
    ]
    deep = source(authentication_config=nested(CONFIG_MAX_DEPTH + 1))
    assert parse_source(deep)[1] == [
        "source: connections[0].authentication_config: nested more than 32 levels deep"
    ]
    # Within the budget: accepted.
    decl, problems = parse_source(source(authentication_config={"cert": "z" * 250_000}))
    assert decl is not None and problems == []
    assert parse_source(source(authentication_config=nested(CONFIG_MAX_DEPTH)))[1] == []


def test_config_budget_counts_multibyte_text_as_bytes() -> None:
    # 100,000 characters of three bytes each: 300,000 bytes as JSON.
    wide = source(authentication_config={"note": "€" * 100_000})
    assert any("too large" in p for p in parse_source(wide)[1])


def test_apply_refuses_a_big_document_without_aliases(env: dict[str, str], tmp_path: Path) -> None:
    run_cli("init", check=True)
    (tmp_path / "sources.yaml").write_text(GOOD)
    run_cli("apply", "sources.yaml", check=True)
    before = store_state(tmp_path)
    big = GOOD.replace("{token: t-1}", "{token: " + "t" * (300 * 1024) + "}")
    (tmp_path / "sources.yaml").write_text(big)

    proc = run_cli("apply", "sources.yaml")

    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "error: sources.yaml: 1 problem(s)",
        "  - sources[0] (source_id 'counts'): connections[0].authentication_config: too "
        "large: the connection, authentication and mapping configs of one source may take "
        "at most 256 KiB as JSON together",
    ]
    assert store_state(tmp_path) == before


# -- the API ----------------------------------------------------------------------------------
@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store)


def problems_of(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [p["msg"] for p in response.json()["detail"]]


def test_api_create_and_update_keep_to_the_budget(api: Api, data_dir: Path) -> None:
    path = write_json(data_dir / "m.json", {"data": machines(3)})
    body = machine_source(path)
    body["connections"][0]["authentication_config"] = {"cert": "c" * (CONFIG_MAX_BYTES + 1)}
    found = problems_of(api.post("/api/sources", json=body))
    assert any("connections[0].authentication_config: too large" in m for m in found), found
    assert api.get("/api/sources").json() == []

    assert api.post("/api/sources", json=machine_source(path)).status_code == 201
    before = api.get("/api/sources/machines").json()
    deep = {"mapping_config": {"records_path": "data", "extra": nested(CONFIG_MAX_DEPTH + 1)}}
    found = problems_of(
        api.patch("/api/sources/machines", json={"mappings": [{"target_table": "m", **deep}]})
    )
    assert any("mappings[0].mapping_config: nested more than 32 levels" in m for m in found)
    wide = {"file_path": str(path), "note": "n" * (CONFIG_MAX_BYTES + 1)}
    found = problems_of(
        api.patch(
            "/api/sources/machines",
            json={"connections": [{"connection_name": "primary", "connection_config": wide}]},
        )
    )
    assert any("connections[0].connection_config: too large" in m for m in found), found
    assert api.get("/api/sources/machines").json() == before


def test_cli_set_values_refuse_anchors(store: Store) -> None:
    proc = run_cli("source", "add", "c1", "--template", "csv_file", "--set", "file_path=&p [a, *p]")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: --set file_path line 1: YAML anchors and aliases are not accepted "
        "(write each value out)"
    ]
    # Text that is not YAML at all is taken as it is (e.g. a lone delimiter).
    proc = run_cli(
        "source",
        "add",
        "c2",
        "--template",
        "csv_file",
        "--set",
        "file_path=c.csv",
        "--set",
        "delimiter=,",
    )
    assert proc.returncode == 0, proc.stderr
