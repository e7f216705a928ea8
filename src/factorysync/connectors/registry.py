"""Connection types by name: the built-in ones plus any from the ``factorysync.connectors``
entry-point group. This is the only list of them.

Everything that depends on which types exist asks here, and every answer is read from
the connector classes (:class:`~factorysync.connectors.base.Connector`): declarations
validate ``source_type`` and ``connection_type`` against it, a source type's default
connection type comes from it, the console builds its type picker and form from it, the
realtime service and the scheduler tell streaming, pushed and polled types apart by
their capabilities, and templates are seeded from it. A plugin type is therefore one
module (its class) plus the entry point that names it::

    [project.entry-points."factorysync.connectors"]
    weather = "fs_weather:WeatherConnector"

Entry points are looked up again whenever ``sys.path`` changes, so a distribution put
on the path while the process runs is found too. One whose class cannot be loaded (a
missing module, an entry point that is no Connector class) is left out of every list,
logged once, and refused by name with the reason: it stops no other type.

:func:`open_connection` is the one way to turn a declared connection into a connector:
secrets resolved, the redactor told about them, the context made, the config validated.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any, overload

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from factorysync.config import ConnectionDecl
from factorysync.connectors.base import Connector, ConnectorContext, SourceKind
from factorysync.errors import ConfigError, Problem
from factorysync.security.redaction import Redactor
from factorysync.security.secrets import resolve_env_refs
from factorysync.settings import Settings, get_settings

log = logging.getLogger("factorysync.connectors")
GROUP = "factorysync.connectors"
# Built-in types, in the order lists show them (plugins follow, by name).
BUILTIN: dict[str, str] = {
    "file": "factorysync.connectors.file.connector:FileConnector",
    "database": "factorysync.connectors.database.reader:DatabaseConnector",
    "api": "factorysync.connectors.api.connector:ApiConnector",
    "artisan": "factorysync.connectors.command:ArtisanConnector",
    "command": "factorysync.connectors.command:CommandConnector",
    "mqtt": "factorysync.connectors.mqtt:MqttConnector",
    "opcua": "factorysync.connectors.opcua:OpcUaConnector",
    "modbus": "factorysync.connectors.modbus:ModbusConnector",
    "s7": "factorysync.connectors.s7:S7Connector",
    "push": "factorysync.connectors.push:PushConnector",
}
CAPABILITIES = ("polls", "streams", "pushes", "relays")
# The capabilities each built-in class declares, by its reference in BUILTIN (a test keeps
# them equal to the classes'): which types stream, push or poll is told without importing
# every driver's module, about half a second of a command like `source list`. A reference
# not in here (a plugin, a test's stand-in) is asked by loading its class.
_BUILTIN_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "factorysync.connectors.file.connector:FileConnector": ("polls",),
    "factorysync.connectors.database.reader:DatabaseConnector": ("polls", "relays"),
    "factorysync.connectors.api.connector:ApiConnector": ("polls",),
    "factorysync.connectors.command:ArtisanConnector": ("polls",),
    "factorysync.connectors.command:CommandConnector": ("polls",),
    "factorysync.connectors.mqtt:MqttConnector": ("streams",),
    "factorysync.connectors.opcua:OpcUaConnector": ("streams",),
    "factorysync.connectors.modbus:ModbusConnector": ("streams",),
    "factorysync.connectors.s7:S7Connector": ("streams",),
    "factorysync.connectors.push:PushConnector": ("pushes",),
}

_plugins_seen: tuple[tuple[str, ...], dict[str, EntryPoint]] | None = None
# What is worked out from the classes, kept while the built-in list and sys.path stay.
_derived: dict[str, tuple[Any, Any]] = {}
# Plugin types (with their reason) already logged as not loadable.
_warned: set[tuple[str, str]] = set()


def _plugins() -> dict[str, EntryPoint]:
    """Entry points of the plugin group by name (a built-in name is never replaced);
    read again when ``sys.path`` changed since the last look."""
    global _plugins_seen
    path = tuple(sys.path)
    if _plugins_seen is None or _plugins_seen[0] != path:
        found = {ep.name: ep for ep in entry_points(group=GROUP) if ep.name not in BUILTIN}
        _plugins_seen = (path, found)
    return _plugins_seen[1]


def _load(ref: str) -> type[Connector]:
    module, _, name = ref.partition(":")
    return getattr(import_module(module), name)  # type: ignore[no-any-return]


def available() -> list[str]:
    """Names of every connection type: the built-in ones in their order, then plugins."""
    return list(BUILTIN) + sorted(_plugins())


def connector_class(connection_type: str) -> type[Connector]:
    """The class of ``connection_type``; a ConfigError listing the known types if none,
    and one naming the plugin when its entry point does not load a Connector class."""
    if connection_type in BUILTIN:
        return _load(BUILTIN[connection_type])
    plugin = _plugins().get(connection_type)
    if plugin is None:
        raise ConfigError(
            f"unknown connection_type {connection_type!r} "
            f"(available: {', '.join(sorted(available()))})"
        )
    try:
        cls = plugin.load()
    except Exception as exc:  # whatever the plugin's import raises
        raise ConfigError(_unloadable(connection_type, plugin, exc)) from None
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(_unloadable(connection_type, plugin, f"{cls!r} is not a Connector class"))
    return cls


def _unloadable(name: str, plugin: EntryPoint, reason: object) -> str:
    # The entry point's value is a module path, never a secret.
    return f"connection type {name!r} (plugin {plugin.value}) cannot be loaded: {reason}"


def _cached(name: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, kept until the built-in list or ``sys.path`` changes: pages and
    scheduler passes ask for it per source."""
    key = (tuple(sys.path), tuple(BUILTIN.items()))
    seen = _derived.get(name)
    if seen is None or seen[0] != key:
        seen = _derived[name] = (key, compute())
    return seen[1]


def connection_types() -> dict[str, type[Connector]]:
    """Every connection type whose class loads, by name. A plugin that fails to load is
    logged and left out, so that one broken distribution does not stop the service."""
    classes, _ = _cached("classes", _load_all)
    return dict(classes)


def unloadable_types() -> dict[str, str]:
    """The connection types (plugins) that cannot be loaded, by name, with the reason."""
    _, broken = _cached("classes", _load_all)
    return dict(broken)


def _load_all() -> tuple[dict[str, type[Connector]], dict[str, str]]:
    classes: dict[str, type[Connector]] = {}
    broken: dict[str, str] = {}
    for name in available():
        try:
            classes[name] = connector_class(name)
        except Exception as exc:  # a plugin's, already told as a ConfigError; else a bug
            broken[name] = (
                str(exc) if isinstance(exc, ConfigError) else f"{name!r} cannot be loaded: {exc!r}"
            )
            # Once per type and reason: lists are read again whenever sys.path changes.
            if (name, broken[name]) not in _warned:
                _warned.add((name, broken[name]))
                log.warning("%s", broken[name])
    return classes, broken


def types_with(capability: str) -> list[str]:
    """Names of the connection types with ``capability`` (polls, streams, pushes, relays)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r} (known: {', '.join(CAPABILITIES)})")
    return list(_cached(f"with {capability}", lambda: _types_with(capability)))


def _types_with(capability: str) -> list[str]:
    return [name for name in available() if capability in _capabilities(name)]


def _capabilities(connection_type: str) -> tuple[str, ...]:
    """What the type's class declares: from the built-in table, else from the class (none
    for a type that cannot be loaded: told where types are listed)."""
    known = _BUILTIN_CAPABILITIES.get(BUILTIN.get(connection_type, ""))
    if known is not None:
        return known
    try:
        cls = connector_class(connection_type)
    except ConfigError:
        return ()
    return tuple(c for c in CAPABILITIES if getattr(cls, c))


def source_kinds() -> dict[str, tuple[SourceKind, str]]:
    """Every source type: (how the console shows it, its default connection type).

    A type that lists no source types serves one of its own name. When two types claim
    to be the default for a source type, the first one (built-in before plugin) wins."""
    return dict(_cached("kinds", _kinds))


def _kinds() -> dict[str, tuple[SourceKind, str]]:
    kinds: dict[str, tuple[SourceKind, str]] = {}
    for name, cls in connection_types().items():
        for kind in cls.source_types or (SourceKind(name),):
            if kind.default and kind.name not in kinds:
                kinds[kind.name] = (_shown(kind, cls), name)
    for name, cls in connection_types().items():  # served, not as the default of any
        for kind in cls.source_types:
            kinds.setdefault(kind.name, (_shown(kind, cls), name))
    return kinds


def _shown(kind: SourceKind, cls: type[Connector] | None = None) -> SourceKind:
    """``kind`` with a label, an icon and a summary, made from its name (and its class's
    docstring) where it declares none."""
    label = kind.label or kind.name.replace("_", " ").title()
    icon = kind.icon or kind.name[:3].upper()
    summary = kind.summary or _first_line(cls.__doc__ if cls is not None else None)
    return SourceKind(kind.name, label, icon, kind.tone, kind.default, kind.preset, summary)


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0].strip().replace("``", "") if lines else ""


def auth_keys_of(connection_type: str) -> tuple[str, ...]:
    """The ``authentication_config`` keys ``connection_type`` declares (none for a type
    that cannot be loaded)."""
    try:
        return tuple(connector_class(connection_type).auth_keys)
    except ConfigError:
        return ()


def default_connection_type(source_type: str) -> str | None:
    found = _kind_of(source_type)
    return found[1] if found else None


def _kind_of(source_type: str) -> tuple[SourceKind, str] | None:
    """``source_kinds()[source_type]``, loading classes in order only until the type that
    serves it by default is found: a one-off command that validates one declaration then
    imports one connector module, not every driver's (an API type's httpx alone takes
    about 0.1 s to import)."""
    seen = _derived.get("kinds")
    if seen is not None and seen[0] == (tuple(sys.path), tuple(BUILTIN.items())):
        found: tuple[SourceKind, str] | None = seen[1].get(source_type)
        return found
    served: tuple[SourceKind, str] | None = None
    for name in available():
        try:
            cls = connector_class(name)
        except ConfigError:
            continue  # an unloadable plugin: told by source_kinds() when it matters
        for kind in cls.source_types or (SourceKind(name),):
            if kind.name != source_type:
                continue
            if kind.default:
                return _shown(kind, cls), name
            served = served or (_shown(kind, cls), name)
    return served


def capability_of(connection_type: str, capability: str) -> bool:
    """Whether ``connection_type`` has ``capability`` (polls, streams, pushes, relays),
    loading no class for a built-in type and that type's class only for another; False
    for a type that cannot be loaded."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r} (known: {', '.join(CAPABILITIES)})")
    return capability in _capabilities(connection_type)


# -- live views for code that wants a constant -------------------------------------------
class TypesWith(Sequence[str]):
    """The names of the connection types with a capability, read from the registry at
    each use: a module-level constant made of it stays true when plugins come later."""

    def __init__(self, capability: str) -> None:
        self.capability = capability

    def _names(self) -> tuple[str, ...]:
        return tuple(types_with(self.capability))

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __add__(self, other: Sequence[str]) -> tuple[str, ...]:
        return self._names() + tuple(other)

    def __radd__(self, other: Sequence[str]) -> tuple[str, ...]:
        return tuple(other) + self._names()

    def __repr__(self) -> str:
        return f"TypesWith({self.capability!r}: {self._names()!r})"


class DefaultConnectionTypes(Mapping[str, str]):
    """source_type → the connection type it gets when none is declared, read from the
    registry at each use."""

    def _kinds(self) -> dict[str, str]:
        return {name: default for name, (_, default) in source_kinds().items()}

    def __getitem__(self, source_type: str) -> str:
        return self._kinds()[source_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds())

    def __len__(self) -> int:
        return len(self._kinds())


DEFAULT_CONNECTION_TYPE = DefaultConnectionTypes()


# -- validation of declarations ------------------------------------------------------------
def _one_of(names: Sequence[str]) -> str:
    """``'a', 'b' or 'c'``: how pydantic lists the values a Literal allows."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def check_connection_type(value: str) -> str:
    """A declaration's ``connection_type``: one the registry knows and can load
    (pydantic validator); a plugin type that cannot be loaded is refused with the reason."""
    if value in BUILTIN:
        return value
    _refuse_unloadable(value)
    names = list(connection_types())
    if value not in names:
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": _one_of(names)}
        )
    return value


def check_source_type(value: str) -> str:
    """A declaration's ``source_type``: one a registered connection type serves. The name
    of a plugin type that cannot be loaded (the source type it would serve by default)
    is refused with the reason."""
    if _kind_of(value) is not None:
        return value
    names = list(source_kinds())
    if value not in names:
        _refuse_unloadable(value)
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": _one_of(names)}
        )
    return value


def _refuse_unloadable(value: str) -> None:
    reason = unloadable_types().get(value)
    if reason is not None:
        raise PydanticCustomError("plugin_error", "{reason}", {"reason": reason})


def declared_templates() -> list[dict[str, Any]]:
    """Predefined templates that connection types declare on their class.

    A class lists them in ``templates`` (a ClassVar of dicts shaped like a
    ``data_source_templates`` row: template_name, display_name, description,
    source_type, connection_config, authentication_config, mapping_config); the
    type's name is filled in here, so a plugin's templates are seeded with it."""
    found: list[dict[str, Any]] = []
    for name, cls in connection_types().items():
        for template in cls.templates:
            found.append({**template, "connection_type": name})
    return found


def config_model_of(cls: type[Connector], config: dict[str, Any]) -> type[BaseModel]:
    """The model that validates ``config``: a type may pick one per config (file formats)."""
    pick = getattr(cls, "config_model_for", None)
    return pick(config) if pick is not None else cls.config_model


def validate_connection_config(
    connection_type: str, config: dict[str, Any], settings: Settings | None = None
) -> list[Problem]:
    """Problems with a connection_config, as 'field: message' strings (empty when valid).

    Models that depend on the settings (the command safe list) find them in the
    validation context; without ``settings`` those of the process are used."""
    try:
        cls = connector_class(connection_type)
    except ConfigError as exc:
        return [Problem("", str(exc))]
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


def format_validation_error(err: Any) -> Problem:
    """A pydantic error as a 'path: message' problem, keeping its type and context (the
    console says it again in the user's language from them)."""
    # "[key]" marks a problem with a mapping's key: the key itself names the place.
    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("__root__", "[key]"))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    context = {k: str(v) for k, v in (err.get("ctx") or {}).items() if k != "error"}
    return Problem(loc, msg, str(err.get("type", "")), context)


# -- building connectors -------------------------------------------------------------------
def build_connector(
    connection_type: str, config: dict[str, Any], auth: dict[str, Any], context: ConnectorContext
) -> Connector:
    """A connector from a validated ``config`` and resolved ``auth`` (see open_connection
    for a declared connection)."""
    cls = connector_class(connection_type)
    try:
        model = config_model_of(cls, config).model_validate(
            config, context={"settings": context.settings}
        )
    except ValidationError as exc:
        problems: list[str] = [format_validation_error(e) for e in exc.errors()]
        raise ConfigError(
            f"source {context.source_id!r}: invalid connection_config", problems
        ) from None
    return cls(model, auth, context)


def open_connection(
    connection: ConnectionDecl,
    source_id: str,
    settings: Settings,
    *,
    redact: Redactor | None = None,
    batch_size: int | None = None,
    worker: str | None = None,
) -> Connector:
    """The connector of one declared connection, as runs, ``source test``, discovery,
    the console and the realtime service use it.

    Its ``${env:NAME}`` references are resolved (an unset variable is a ConfigError
    naming the connection). ``redact`` learns the secrets, as declared and as resolved,
    before anything else can fail, so that every error message can be cleaned with it.
    ``batch_size``: records per batch (default: the settings'); ``worker``: this
    process's name among workers (see ConnectorContext)."""
    if redact is not None:
        redact.add(connection.authentication_config)
    auth = resolve_env_refs(
        connection.authentication_config, where=f"{connection.connection_name} auth"
    )
    if redact is not None:
        redact.add(auth)
    context = ConnectorContext(
        source_id,
        settings,
        batch_size or settings.batch_size,
        worker=worker,
        site_zone=connection.site_zone,
    )
    assert connection.connection_type is not None
    return build_connector(connection.connection_type, connection.connection_config, auth, context)
