"""The connection settings of the source form in Bahasa Indonesia (issue #23): every
field of every built-in connection type's config models (the preset models of csv and
Excel files included) has an Indonesian label and help text in
:mod:`factorysync.web.i18n_config`, no pair there is left unused, and the form shows
them on Indonesian pages only (a plugin's fields: its own English text).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from factorysync.api import create_app
from factorysync.connectors.config_doc import variants
from factorysync.connectors.mqtt_wire import MqttConfig
from factorysync.connectors.registry import BUILTIN, connector_class
from factorysync.store.store import Store
from factorysync.web.config_form import FormField, config_fields
from factorysync.web.i18n_config import BLOCKS, CONFIG_TEXTS, config_text, plain
from factorysync.web.messages import page_language
from tests.web.conftest import add_users
from tests.web.test_pages import csrf_of, log_in

# Titles that are a product or protocol name, the same in both languages.
SAME_IN_BOTH = {"URL", "TLS"}


def builtin_models() -> Iterator[tuple[str, type[BaseModel]]]:
    """(connection type, model) of every config model the built-in types show in the
    form: each type's own, and those it picks by a source type's preset."""
    for name in BUILTIN:
        cls = connector_class(name)
        for model in (cls.config_model, *(m for _, m in variants(cls))):
            yield name, model


def untranslated(models: list[tuple[str, type[BaseModel]]]) -> list[str]:
    """The fields of ``models`` whose title or help text has no Indonesian text (or one
    that is still the English), as ``type: key (Model): what 'text'``."""
    problems = []
    for name, model in models:
        for f in config_fields(model, {}):
            for what, english in (("title", f.english_label), ("help", f.english_help)):
                bahasa = CONFIG_TEXTS.get(plain(english or ""), {}).get("id")
                if not bahasa or not bahasa.strip():
                    problems.append(f"{name}: {f.key} ({model.__name__}): no {what} {english!r}")
                elif plain(bahasa) == plain(english or "") and english not in SAME_IN_BOTH:
                    problems.append(f"{name}: {f.key} ({model.__name__}): {what} not translated")
    return problems


def unused(models: list[tuple[str, type[BaseModel]]]) -> list[str]:
    """The English texts of the table that no field of ``models`` shows."""
    shown = {
        plain(text)
        for _, model in models
        for f in config_fields(model, {})
        for text in (f.english_label, f.english_help or "")
    }
    return sorted(english for english in CONFIG_TEXTS if english not in shown)


# -- the table ---------------------------------------------------------------------------
def test_every_field_of_every_builtin_model_has_an_indonesian_title_and_help() -> None:
    models = list(builtin_models())
    assert {name for name, _ in models} == set(BUILTIN)
    assert {m.__name__ for _, m in models} >= {"FileConfig", "CsvFileConfig", "ExcelFileConfig"}
    assert sum(len(m.model_fields) for _, m in models) > 150
    problems = untranslated(models)
    assert not problems, "\n".join(problems)


def test_no_pair_names_a_text_no_field_has_any_more() -> None:
    gone = unused(list(builtin_models()))
    assert not gone, "pairs in web/i18n_config*.py that no built-in field shows:\n" + "\n".join(
        gone
    )


def test_no_english_text_is_given_twice() -> None:
    seen: dict[str, str] = {}
    twice = []
    for block, pairs in BLOCKS.items():
        for english, _ in pairs:
            key = plain(english)
            if key in seen:
                twice.append(f"{english!r}: in {seen[key]} and {block}")
            seen[key] = block
    assert not twice, twice
    assert len(seen) == len(CONFIG_TEXTS)


class _Renamed(BaseModel):
    """A built-in model after a change: a new field, and a description reworded."""

    host: str = Field(title="Broker host", description="The broker's host name.")
    vibration_limit: float = Field(description="Alarm above this many mm/s.")


def test_a_new_field_or_a_changed_text_is_caught_not_shown_stale() -> None:
    assert untranslated([("mqtt", _Renamed)]) == [
        'mqtt: host (_Renamed): no help "The broker\'s host name."',
        "mqtt: vibration_limit (_Renamed): no title 'Vibration limit'",
        "mqtt: vibration_limit (_Renamed): no help 'Alarm above this many mm/s.'",
    ]
    # Without the MQTT model, its texts are pairs nobody uses.
    rest = [(n, m) for n, m in builtin_models() if m is not MqttConfig]
    assert {"Broker host", "Topics", "Quality of service"} <= set(unused(rest))
    assert "File path" not in unused(rest)
    # The reworded text shows as written, never the translation of the old one.
    assert config_text("The broker's host name.", "id") == "The broker's host name."


# -- the form ----------------------------------------------------------------------------
class _PluginConfig(BaseModel):
    """A plugin's config model: its texts are not in the table."""

    station: str = Field(title="Weather station", description="Id of the station to read.")
    broker_host: str = Field(
        description="Host name or IP address of the broker, e.g. broker.plant.local."
    )


def _field(fields: list[FormField], key: str) -> FormField:
    return next(f for f in fields if f.key == key)


def test_the_fields_speak_the_language_of_the_page_being_rendered() -> None:
    fields = config_fields(MqttConfig, {})
    host, qos = _field(fields, "host"), _field(fields, "qos")
    assert (host.label, qos.label) == ("Broker host", "Quality of service")
    assert host.description == "Host name or IP address of the broker, e.g. broker.plant.local."
    said_in = page_language.set("id")
    try:
        assert (host.label, qos.label) == ("Host broker", "Kualitas layanan (QoS)")
        assert host.description == "Nama host atau alamat IP broker, mis. broker.plant.local."
        plugin = config_fields(_PluginConfig, {})
        station = _field(plugin, "station")
        assert (station.label, station.description) == (
            "Weather station",
            "Id of the station to read.",
        )
        # A plugin's text the table knows word for word reads translated too.
        assert _field(plugin, "broker_host").description == (
            "Nama host atau alamat IP broker, mis. broker.plant.local."
        )
    finally:
        page_language.reset(said_in)
    assert host.label == "Broker host"


def test_runs_of_white_space_in_a_description_do_not_matter() -> None:
    english = "Host name or IP address of the broker,\n    e.g. broker.plant.local."
    assert config_text(english, "id").startswith("Nama host atau alamat IP broker")
    assert config_text(english, "en") == english


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_source_form_shows_the_connection_settings_in_bahasa_indonesia(
    store: Store, data_dir: Path
) -> None:
    add_users(store)
    with TestClient(create_app(store)) as client:
        log_in(client, "admin")
        english = client.get("/sources/new?type=csv").text
        assert "Column separator" in english and "Pemisah kolom" not in english
        csrf = csrf_of(english)
        client.post("/language", data={"csrf": csrf, "lang": "id", "next": "/"})
        bahasa = client.get("/sources/new?type=csv").text
        mqtt = client.get("/sources/new?type=mqtt").text
    assert '<html lang="id">' in bahasa
    assert "Pemisah kolom" in bahasa and "Column separator" not in bahasa
    assert "Baris pertama berisi nama kolom" in bahasa
    assert "Pemisah bidang, satu karakter" in bahasa
    assert "Field separator, one character" not in bahasa
    assert "Host broker" in mqtt and "Filter topic yang di-subscribe" in mqtt
    # Example values stay as they are typed.
    assert 'placeholder="plant/line1/+/telemetry"' in mqtt
