"""Source declarations: every problem reported at once, naming the source and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from factorysync.errors import ConfigError
from factorysync.intake import load_sources_file, parse_sources


def src(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "source_id": "oee_line_a",
        "name": "OEE Line A",
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": "oee.json"}}],
        "mappings": [{"target_table": "oee", "mapping_config": {"primary_key": ["id"]}}],
    }
    base.update(over)
    return base


def problems_of(document: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_sources(document, "sources.yaml")
    return str(info.value)


def test_valid_source_gets_defaults() -> None:
    (decl,) = parse_sources({"sources": [src()]})
    assert decl.connection_type == "file" and decl.priority == 1
    assert decl.connections[0].is_primary and decl.connections[0].connection_type == "file"
    assert decl.mappings[0].sync_strategy == "full"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"source_id": "Bad Id"},
            "sources[0] (source_id 'Bad Id'): source_id: source_id 'Bad Id' must be a slug",
        ),
        (
            {"priority": 7},
            "sources[0] (source_id 'oee_line_a'): priority: Input should be less than or equal to 3",
        ),
        ({"source_type": "ftp"}, "source_type: Input should be 'json'"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"connections": []}, "connections: List should have at least 1 item"),
        (
            {"connections": [{"connection_config": {}}]},
            "connections[0].connection_config.file_path: Field required",
        ),
        (
            {"connections": [{"connection_config": {"file_path": "x", "encoding": "klingon"}}]},
            "connection_config.encoding: unknown encoding 'klingon'",
        ),
        (
            {"mappings": [{"target_table": "Production Data"}]},
            "mappings.0.target_table: target_table 'Production Data' is not a valid name",
        ),
        (
            {"mappings": [{"target_table": "users"}]},
            "target_table 'users' is reserved by factorysync",
        ),
        (
            {"mappings": [{"target_table": "p", "sync_strategy": "incremental"}]},
            "sync_strategy 'incremental' needs mapping_config.cursor_field",
        ),
        (
            {
                "mappings": [
                    {
                        "target_table": "p",
                        "mapping_config": {"fields": {"a": "x"}, "primary_key": "b"},
                    }
                ]
            },
            "primary_key column 'b' is not one of the mapped fields",
        ),
        (
            {
                "mappings": [
                    {
                        "target_table": "p",
                        "mapping_config": {
                            "fields": {
                                "t": {"from": "x", "type": "datetime", "timezone": "Mars/Base"}
                            }
                        },
                    }
                ]
            },
            "unknown time zone 'Mars/Base'",
        ),
        (
            {
                "mappings": [
                    {
                        "target_table": "p",
                        "mapping_config": {"fields": {"t": {"from": "x", "expr": "(value - "}}},
                    }
                ]
            },
            "expression '(value - ' is not valid",
        ),
        (
            {
                "mappings": [
                    {
                        "target_table": "p",
                        "mapping_config": {"fields": {"t": {"from": "x", "type": "money"}}},
                    }
                ]
            },
            "type: Input should be 'integer'",
        ),
        (
            {
                "mappings": [
                    {
                        "target_table": "p",
                        "mapping_config": {"validate": [{"field": "q", "rule": "min"}]},
                    }
                ]
            },
            "rule 'min' on 'q' needs a numeric 'value'",
        ),
        (
            {"mappings": [{"target_table": "p", "mapping_config": {"where": "row['qty'] >"}}]},
            "expression \"row['qty'] >\" is not valid",
        ),
        (
            {"mappings": [{"target_table": "p", "mapping_config": {"lookback": -5}}]},
            "lookback: Input should be greater than or equal to 0",
        ),
        (
            {"mappings": [{"target_table": "p", "mapping_config": {"explode": "items..x"}}]},
            "path 'items..x' has an empty segment",
        ),
        (
            {
                "mappings": [
                    {
                        "target_table": "p",
                        "sync_strategy": "incremental",
                        "mapping_config": {"fields": {"a": "x"}, "cursor_field": "ts"},
                    }
                ]
            },
            "cursor_field 'ts' is not one of the mapped fields",
        ),
        (
            {
                "mappings": [
                    {
                        "target_table": "p",
                        "mapping_config": {
                            "validate": [{"field": "q", "rule": "regex", "value": "(unclosed"}]
                        },
                    }
                ]
            },
            "rule 'regex' on 'q': bad pattern",
        ),
        (
            {
                "mappings": [
                    {
                        "target_table": "p",
                        "mapping_config": {
                            "validate": [{"field": "q", "rule": "allowed", "value": "S1"}]
                        },
                    }
                ]
            },
            "rule 'allowed' on 'q' needs a list in 'value'",
        ),
        (
            {"connections": [{"connection_type": "database", "connection_config": {}}]},
            "connections[0].connection_config.dialect: Field required",
        ),
    ],
)
def test_bad_config_names_source_and_field(override: dict[str, object], expected: str) -> None:
    assert expected in problems_of({"sources": [src(**override)]})


def test_every_problem_is_reported_at_once() -> None:
    message = problems_of({"sources": [src(priority=0), src(source_id="b", name=""), src()]})
    assert "3 problem(s)" in message
    assert "sources[0] (source_id 'oee_line_a'): priority" in message
    assert "sources[1] (source_id 'b'): name" in message
    assert "sources[2] (source_id 'oee_line_a'): source_id repeats sources[0]" in message


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("sources:\n  - source_id: a\n    name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"s.yaml: invalid YAML at line \d+, column \d+"):
        load_sources_file(path)


def test_top_level_must_be_a_mapping() -> None:
    assert "expected a mapping with a 'sources' list" in problems_of(["a"])


def test_primary_and_backup_rules() -> None:
    two = [
        {"connection_name": "a", "is_primary": True, "connection_config": {"file_path": "a"}},
        {"connection_name": "a", "is_primary": True, "connection_config": {"file_path": "b"}},
    ]
    message = problems_of({"sources": [src(connections=two)]})
    assert "connection_name repeated: a" in message
    backup_only = [
        {"connection_name": "main", "connection_config": {"file_path": "a"}},
        {"connection_name": "copy", "is_backup": True, "connection_config": {"file_path": "b"}},
    ]
    (decl,) = parse_sources({"sources": [src(connections=backup_only)]})
    assert decl.primary().connection_name == "main"
