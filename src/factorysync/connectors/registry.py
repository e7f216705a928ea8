"""Connection types by name: the built-in ones plus any from the ``factorysync.connectors``
entry-point group."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from factorysync.connectors.base import Connector, ConnectorContext
from factorysync.errors import ConfigError
from factorysync.settings import Settings, get_settings

BUILTIN: dict[str, str] = {
    "file": "factorysync.connectors.file:FileConnector",
    "database": "factorysync.connectors.database:DatabaseConnector",
    "command": "factorysync.connectors.command:CommandConnector",
    "artisan": "factorysync.connectors.command:ArtisanConnector",
    "api": "factorysync.connectors.api:ApiConnector",
    "mqtt": "factorysync.connectors.mqtt:MqttConnector",
    "opcua": "factorysync.connectors.opcua:OpcUaConnector",
    "push": "factorysync.connectors.push:PushConnector",
}
# Types that are part of the design but are not in this release.
PLANNED: set[str] = set()


def _load(ref: str) -> type[Connector]:
    module, _, name = ref.partition(":")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


def connector_class(connection_type: str) -> type[Connector]:
    if connection_type in BUILTIN:
        return _load(BUILTIN[connection_type])
    for ep in entry_points(group="factorysync.connectors"):
        if ep.name == connection_type:
            return ep.load()  # type: ignore[no-any-return]
    if connection_type in PLANNED:
        raise ConfigError(
            f"connection_type {connection_type!r} is not available in this release "
            f"(available: {', '.join(available())})"
        )
    raise ConfigError(
        f"unknown connection_type {connection_type!r} (available: {', '.join(available())})"
    )


def available() -> list[str]:
    names = set(BUILTIN) | {ep.name for ep in entry_points(group="factorysync.connectors")}
    return sorted(names)


def config_model_of(cls: type[Connector], config: dict[str, Any]) -> type[BaseModel]:
    """The model that validates ``config``: a type may pick one per config (file formats)."""
    pick = getattr(cls, "config_model_for", None)
    return pick(config) if pick is not None else cls.config_model


def validate_connection_config(
    connection_type: str, config: dict[str, Any], settings: Settings | None = None
) -> list[str]:
    """Problems with a connection_config, as 'field: message' strings (empty when valid).

    Models that depend on the settings (the command safe list) find them in the
    validation context; without ``settings`` those of the process are used."""
    try:
        cls = connector_class(connection_type)
    except ConfigError as exc:
        return [str(exc)]
    try:
        config_model_of(cls, config).model_validate(config, context={"settings": settings})
    except ValidationError as exc:
        return [format_validation_error(err) for err in exc.errors()]
    return []


def validate_authentication_config(
    connection_type: str, auth: dict[str, Any], settings: Settings | None = None
) -> list[str]:
    """Problems with an authentication_config, as 'field: message' strings.

    It is free-form and stored encrypted, so it is checked before it is saved, by the
    type's ``authentication_problems(auth, settings)`` when it has one (command sources
    check the environment they pass on). An unknown type is reported by
    validate_connection_config, not twice."""
    try:
        cls = connector_class(connection_type)
    except ConfigError:
        return []
    check = getattr(cls, "authentication_problems", None)
    return [] if check is None else list(check(auth, settings or get_settings()))


def format_validation_error(err: Any) -> str:
    # "[key]" marks a problem with a mapping's key: the key itself names the place.
    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("__root__", "[key]"))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def build_connector(
    connection_type: str, config: dict[str, Any], auth: dict[str, Any], context: ConnectorContext
) -> Connector:
    cls = connector_class(connection_type)
    try:
        model = config_model_of(cls, config).model_validate(
            config, context={"settings": context.settings}
        )
    except ValidationError as exc:
        problems = [format_validation_error(e) for e in exc.errors()]
        raise ConfigError(
            f"source {context.source_id!r}: invalid connection_config", problems
        ) from None
    return cls(model, auth, context)
