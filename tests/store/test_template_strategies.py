"""Templates of streaming connection types give realtime sources that validate: the
``realtime`` strategy and cadence, and a key (a realtime writer upserts by key)."""

from __future__ import annotations

import pytest

from factorysync.connectors.registry import capability_of
from factorysync.intake import parse_source
from factorysync.store.templates import all_predefined, declaration_from_template


@pytest.mark.parametrize("template", all_predefined(), ids=lambda t: t["template_name"])
def test_a_template_gives_a_valid_source_with_the_strategy_its_type_streams_by(
    template: dict[str, object],
) -> None:
    declaration = declaration_from_template(template, "from_template")
    decl, problems = parse_source(declaration)
    assert decl is not None and problems == [], problems
    mapping = decl.mappings[0]
    if capability_of(str(template["connection_type"]), "streams"):
        assert mapping.sync_strategy == "realtime"
        assert mapping.sync_frequency == "realtime"
        assert mapping.mapping_config.primary_key, "a realtime writer upserts by key"
    else:
        assert mapping.sync_strategy != "realtime"


def test_the_opcua_template_keys_value_changes_by_node_and_source_time() -> None:
    template = next(t for t in all_predefined() if t["template_name"] == "opcua_nodes")
    decl, problems = parse_source(declaration_from_template(template, "press_opcua"))
    assert decl is not None and problems == []
    assert decl.mappings[0].mapping_config.primary_key == ["field", "source_timestamp"]


def test_a_given_strategy_wins_over_the_default() -> None:
    template = next(t for t in all_predefined() if t["template_name"] == "mqtt_topic")
    declaration = declaration_from_template(template, "press_mqtt", sync_strategy="full")
    assert declaration["mappings"][0]["sync_strategy"] == "full"
