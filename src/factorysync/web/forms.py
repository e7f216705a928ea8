"""The add/edit source form: a source declaration shown as inputs, and posted inputs
made a declaration again.

The types it offers, with their labels, icons and colours, are the registry's
(:func:`factorysync.connectors.registry.source_kinds`): a plugin's type is offered as
soon as it is installed. The ``connection_config`` inputs come from each type's config
model (:mod:`factorysync.web.config_form`). The posted form becomes a source
declaration that :func:`factorysync.intake.parse_source` validates, and its problems
are put back next to the fields they name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import orjson
from starlette.datastructures import FormData

from factorysync.config.cadence import declared_refresh_interval
from factorysync.connectors.registry import DEFAULT_CONNECTION_TYPE, auth_keys_of, source_kinds
from factorysync.engine.mapping import FieldType
from factorysync.security.secret_values import MASK, is_env_reference
from factorysync.store.templates import default_strategy
from factorysync.web.config_form import FormField, config_fields, config_model, parse_config


class _Kinds(Sequence[tuple[str, str, str]]):
    """(source_type, default connection type, icon text) in the order the type picker
    shows them, read from the registry at each use."""

    def _all(self) -> list[tuple[str, str, str]]:
        return [(name, conn, kind.icon) for name, (kind, conn) in source_kinds().items()]

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        return iter(self._all())


class _Shown(Mapping[str, str]):
    """source_type → one thing the console shows of it (``label`` or ``icon``)."""

    def __init__(self, part: str) -> None:
        self.part = part

    def __getitem__(self, source_type: str) -> str:
        kind, _ = source_kinds()[source_type]
        return str(getattr(kind, self.part))

    def __iter__(self) -> Iterator[str]:
        return iter(source_kinds())

    def __len__(self) -> int:
        return len(source_kinds())

    def tone(self, source_type: str) -> str:
        """The badge colour of ``source_type`` (a ``.tone-*`` class of console.css)."""
        found = source_kinds().get(source_type)
        return found[0].tone if found else "grey"


KINDS: Sequence[tuple[str, str, str]] = _Kinds()
ICONS: Mapping[str, str] = _Shown("icon")
KIND_LABELS: Mapping[str, str] = _Shown("label")
SUMMARIES: Mapping[str, str] = _Shown("summary")  # one sentence on the type's card
FIELD_TYPES: tuple[str, ...] = get_args(FieldType)
STRATEGIES = ("full", "incremental", "realtime")
ON_INVALID = ("quarantine", "skip", "fail")
SECRET_ROWS = 3  # empty secret rows offered beyond the stored ones
FIELD_ROWS = 3  # empty mapping rows offered beyond the stored ones


# -- the whole form ----------------------------------------------------------------------
@dataclass
class SourceForm:
    source_type: str
    connection_type: str
    values: dict[str, Any]  # general and mapping inputs, as shown
    fields: list[FormField]
    # (name, stored already, value shown, a key the connection type declares)
    secrets: list[tuple[str, bool, str, bool]]
    field_rows: list[dict[str, str]]
    errors: dict[str, list[str]] = field(default_factory=dict)
    form_errors: list[str] = field(default_factory=list)
    editing: str | None = None  # the source_id being edited
    template: str | None = None

    @property
    def icon(self) -> str:
        return ICONS.get(self.source_type, "?")


def _field_rows(fields: dict[str, Any] | None) -> list[dict[str, str]]:
    rows = []
    for column, spec in (fields or {}).items():
        if isinstance(spec, str):
            spec = {"from": spec}
        spec = dict(spec)
        rows.append(
            {
                "col": column,
                "from": str(spec.pop("from", "") or ""),
                "type": str(spec.pop("type", "") or ""),
                "expr": str(spec.pop("expr", "") or ""),
                "extra": orjson.dumps(spec).decode() if spec else "",
            }
        )
    empty = {"col": "", "from": "", "type": "", "expr": "", "extra": ""}
    return rows + [dict(empty) for _ in range(FIELD_ROWS)]


MAPPING_KEYS = ("records_path", "primary_key", "cursor_field", "fields", "on_invalid")


def form_from_declaration(
    decl: dict[str, Any], *, editing: str | None = None, template: str | None = None
) -> SourceForm:
    """The form showing a declaration (stored, from a template, or a new empty one)."""
    source_type = decl["source_type"]
    connections = decl.get("connections") or [{}]
    primary = next((c for c in connections if c.get("is_primary")), connections[0])
    connection_type = (
        primary.get("connection_type")
        or decl.get("connection_type")
        or DEFAULT_CONNECTION_TYPE[source_type]
    )
    mappings = decl.get("mappings") or [{}]
    mapping = mappings[0]
    mc = dict(mapping.get("mapping_config") or {})
    extra = {k: v for k, v in mc.items() if k not in MAPPING_KEYS}
    values = {
        "source_id": decl.get("source_id") or "",
        "name": decl.get("name") or "",
        "description": decl.get("description") or "",
        "category": decl.get("category") or "",
        "site": decl.get("site") or "",
        "priority": str(decl.get("priority") or 2),
        # Empty unless declared: left empty, the mapping's sync_frequency (or the
        # default) sets the cadence, and a changed frequency is not overruled.
        "refresh_interval": str(declared_refresh_interval(decl) or ""),
        "schedule": decl.get("schedule") or "",
        "target_table": mapping.get("target_table") or "",
        "sync_strategy": mapping.get("sync_strategy") or default_strategy(connection_type),
        "records_path": mc.get("records_path") or "",
        "primary_key": ", ".join(mc.get("primary_key") or []),
        "cursor_field": mc.get("cursor_field") or "",
        "on_invalid": mc.get("on_invalid") or "quarantine",
        "mapping_extra": orjson.dumps(extra, option=orjson.OPT_INDENT_2).decode() if extra else "",
    }
    model = config_model(source_type, connection_type)
    auth = primary.get("authentication_config") or {}
    stored = {name: editing is not None for name in auth}
    # A template's ${env:NAME} references are not secrets: they are shown as given.
    shown = {
        name: value if is_env_reference(value) and editing is None else ""
        for name, value in auth.items()
    }
    secrets = secret_rows(connection_type, list(auth), stored, shown)
    return SourceForm(
        source_type=source_type,
        connection_type=connection_type,
        values=values,
        fields=config_fields(model, primary.get("connection_config") or {}),
        secrets=secrets,
        field_rows=_field_rows(mc.get("fields")),
        editing=editing,
        template=template,
    )


def secret_rows(
    connection_type: str, names: list[str], stored: dict[str, bool], shown: dict[str, str]
) -> list[tuple[str, bool, str, bool]]:
    """The secret inputs: one per key the connection type declares (in its order), then
    the other keys given, then empty rows for more."""
    declared = auth_keys_of(connection_type)
    rows = [(k, stored.get(k, False), shown.get(k, ""), True) for k in declared]
    rows += [(k, stored.get(k, False), shown.get(k, ""), False) for k in names if k not in declared]
    return rows + [("", False, "", False)] * SECRET_ROWS


def _text(form: FormData, name: str) -> str:
    raw = form.get(name)
    return raw.strip() if isinstance(raw, str) else ""


def declaration_from_form(
    form: FormData, t: Any, *, editing: str | None = None
) -> tuple[dict[str, Any], SourceForm]:
    """(the declaration the form describes, the form to show again with its values)."""
    source_type = _text(form, "source_type")
    connection_type = _text(form, "connection_type") or DEFAULT_CONNECTION_TYPE.get(
        source_type, "file"
    )
    errors: dict[str, list[str]] = {}
    model = config_model(source_type, connection_type)
    config = parse_config(model, form, errors, t("form.bad_json", error="{error}"))

    secrets: dict[str, str] = {}
    names: list[str] = []
    stored_names: dict[str, bool] = {}
    shown_values: dict[str, str] = {}
    i = 0
    while f"auth.name.{i}" in form:
        name, value = _text(form, f"auth.name.{i}"), form.get(f"auth.value.{i}")
        stored = form.get(f"auth.stored.{i}") == "1"
        value = value if isinstance(value, str) else ""
        if name:
            if value:
                secrets[name] = value
            elif stored:
                secrets[name] = MASK  # keeps the stored value
            names.append(name)
            stored_names[name] = stored
            shown_values[name] = value if is_env_reference(value) else ""
        i += 1
    shown_secrets = secret_rows(connection_type, names, stored_names, shown_values)

    fields: dict[str, Any] = {}
    rows = []
    i = 0
    while f"f.col.{i}" in form:
        row = {k: _text(form, f"f.{k}.{i}") for k in ("col", "from", "type", "expr", "extra")}
        i += 1
        if not row["col"]:
            continue
        rows.append(row)
        spec: dict[str, Any] = {}
        if row["extra"]:
            try:
                spec.update(orjson.loads(row["extra"]))
            except orjson.JSONDecodeError as exc:
                errors.setdefault("fields", []).append(f"{row['col']}: {exc}")
        spec.update({k: row[k] for k in ("from", "type", "expr") if row[k]})
        fields[row["col"]] = spec.get("from", row["col"]) if set(spec) <= {"from"} else spec
    rows += [{"col": "", "from": "", "type": "", "expr": "", "extra": ""}] * FIELD_ROWS

    values = {
        k: _text(form, k)
        for k in (
            "source_id",
            "name",
            "description",
            "category",
            "site",
            "priority",
            "refresh_interval",
            "schedule",
            "target_table",
            "sync_strategy",
            "records_path",
            "primary_key",
            "cursor_field",
            "on_invalid",
            "mapping_extra",
        )
    }
    if editing:
        values["source_id"] = editing
    mapping_config: dict[str, Any] = {}
    if values["mapping_extra"]:
        try:
            extra = orjson.loads(values["mapping_extra"])
            if not isinstance(extra, dict):
                raise ValueError("expected a JSON object")
            mapping_config.update(extra)
        except (orjson.JSONDecodeError, ValueError) as exc:
            errors.setdefault("mapping_extra", []).append(str(exc))
    if values["records_path"]:
        mapping_config["records_path"] = values["records_path"]
    keys = [k.strip() for k in values["primary_key"].split(",") if k.strip()]
    if keys:
        mapping_config["primary_key"] = keys
    if values["cursor_field"]:
        mapping_config["cursor_field"] = values["cursor_field"]
    if values["on_invalid"] and values["on_invalid"] != "quarantine":
        mapping_config["on_invalid"] = values["on_invalid"]
    if fields:
        mapping_config["fields"] = fields

    decl: dict[str, Any] = {
        "source_id": values["source_id"],
        "name": values["name"],
        "description": values["description"] or None,
        "category": values["category"] or None,
        "site": values["site"] or None,
        "source_type": source_type,
        "priority": _number(values["priority"]),
        "refresh_interval": _number(values["refresh_interval"]),
        "schedule": values["schedule"] or None,
        "connections": [
            {
                "connection_name": _text(form, "connection_name") or "primary",
                "connection_type": connection_type,
                "connection_config": config,
                "authentication_config": secrets,
                "is_primary": True,
            }
        ],
        "mappings": [
            {
                "target_table": values["target_table"],
                "sync_strategy": values["sync_strategy"] or "full",
                "mapping_config": mapping_config,
            }
        ],
    }
    if values["sync_strategy"] == "realtime":  # as templates do: values as they change
        decl["mappings"][0]["sync_frequency"] = "realtime"
    shown = SourceForm(
        source_type=source_type,
        connection_type=connection_type,
        values=values,
        fields=config_fields(model, {k: v for k, v in config.items()}),
        secrets=shown_secrets,
        field_rows=rows,
        errors=errors,
        editing=editing,
        template=_text(form, "template") or None,
    )
    for f in shown.fields:  # show what was typed, also where it did not parse
        raw = form.get(f.name)
        if f.widget == "checkbox":
            f.value = raw is not None
        elif isinstance(raw, str):
            f.value = raw
    return decl, shown


def _number(text: str) -> Any:
    return int(text) if re.fullmatch(r"-?\d+", text) else (text or None)


# -- problems next to their fields -----------------------------------------------------
_INDEX = re.compile(r"\[(\d+)\]")


def place_problems(problems: list[str], form: SourceForm) -> None:
    """Attach each 'path: message' problem to the input it names (else to the form)."""
    known = {f.key for f in form.fields}
    for problem in problems:
        text = re.sub(r"^(body|form|source): ", "", problem)
        path, sep, message = text.partition(": ")
        if not sep:
            form.form_errors.append(problem)
            continue
        parts = _INDEX.sub(r".\1", path).split(".")
        key = _key_for(parts, known)
        form.errors.setdefault(key, []).append(message if key != "_form" else text)
    form.form_errors += form.errors.pop("_form", [])


def _key_for(parts: list[str], known: set[str]) -> str:
    if not parts or not parts[0]:
        return "_form"
    head = parts[0]
    if head == "connections":
        rest = parts[2:]
        if rest[:1] == ["connection_config"]:
            return f"cfg.{rest[1]}" if len(rest) > 1 and rest[1] in known else "cfg"
        if rest[:1] == ["authentication_config"]:
            return "auth"
        return "cfg"
    if head == "mappings":
        rest = parts[2:]
        if rest[:1] == ["mapping_config"]:
            inner = rest[1] if len(rest) > 1 else ""
            if inner in ("records_path", "primary_key", "cursor_field", "on_invalid"):
                return inner
            if inner == "fields":
                return "fields"
            return "mapping"
        if rest[:1] and rest[0] in ("target_table", "sync_strategy"):
            return rest[0]
        return "mapping"
    if head in (
        "source_id",
        "name",
        "description",
        "category",
        "site",
        "priority",
        "refresh_interval",
        "schedule",
    ):
        return head
    return "_form"
