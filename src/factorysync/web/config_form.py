"""The ``connection_config`` inputs of the source form, generated from the connection
type's config model.

Each field of the model becomes an input chosen by its type (text, number, checkbox, a
select for a ``Literal``, one-per-line for a list of strings, JSON for anything nested).
Required fields and fields that have a value come first; the rest sit under "More
options". Posted back, the inputs become the ``connection_config`` again
(:func:`parse_config`).

Labels and help texts are the model's, in English; a page in another language shows the
built-in types' in that language (:mod:`factorysync.web.i18n_config`), looked up when the
page is rendered, so a field made once reads right on every page.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from starlette.datastructures import FormData

from factorysync.connectors.registry import config_model_of, connector_class, source_kinds
from factorysync.web.i18n_config import config_text
from factorysync.web.messages import page_language


def config_model(source_type: str, connection_type: str) -> type[BaseModel]:
    """The model of ``connection_config`` for a source of this type (a type with one
    model per config picks it by the source type's preset: csv files, Excel files)."""
    found = source_kinds().get(source_type)
    preset = found[0].preset if found is not None and found[1] == connection_type else {}
    return config_model_of(connector_class(connection_type), preset)


@dataclass
class FormField:
    key: str  # the connection_config key (a model alias when it has one)
    widget: str  # text | number | checkbox | select | lines | json | fixed
    required: bool
    default: Any
    options: list[str]
    english_help: str | None  # the model's description
    value: Any  # as shown: str, or bool for a checkbox
    advanced: bool
    english_label: str = ""  # the model's title, or the key made readable
    placeholder: str = ""

    @property
    def name(self) -> str:
        return f"cfg.{self.key}"

    @property
    def label(self) -> str:
        """The label in the language of the page being rendered (templating sets it)."""
        return config_text(self.english_label, page_language.get())

    @property
    def kind(self) -> str:
        """The chosen ``type`` of a JSON box that offers kinds ('' when none is)."""
        if self.widget != "json" or not self.options or not self.value:
            return ""
        try:
            shown = orjson.loads(self.value)
        except orjson.JSONDecodeError:
            return ""
        found = shown.get("type") if isinstance(shown, dict) else None
        return found if isinstance(found, str) and found in self.options else ""

    @property
    def description(self) -> str | None:
        """The help text in the language of the page being rendered."""
        if not self.english_help:
            return self.english_help
        return config_text(self.english_help, page_language.get())


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) == 1:
            return _unwrap(args[0])[0], optional
        return annotation, optional
    return annotation, False


def _widget(annotation: Any) -> tuple[str, list[str]]:
    inner, _ = _unwrap(annotation)
    origin = get_origin(inner)
    if inner is bool:
        return "checkbox", []
    if origin is Literal:
        options = [str(a) for a in get_args(inner)]
        return ("fixed" if len(options) == 1 else "select"), options
    if inner in (int, float):
        return "number", []
    if inner is str:
        return "text", []
    if origin is list and get_args(inner) and get_args(inner)[0] is str:
        return "lines", []
    return "json", _kinds(inner)


def _kinds(annotation: Any) -> list[str]:
    """The ``type`` values of a union of models told apart by their ``type`` (an API's
    authentication: none, bearer, basic …): the form offers them as a choice beside the
    JSON box, so the engineer picks one instead of typing it. Empty for anything else."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, types.UnionType):
        return []
    kinds = []
    for member in get_args(annotation):
        field = getattr(member, "model_fields", {}).get("type")
        literal = get_args(field.annotation) if field is not None else ()
        if field is None or get_origin(field.annotation) is not Literal or len(literal) != 1:
            return []
        kinds.append(str(literal[0]))
    return kinds


def _shown(widget: str, value: Any) -> Any:
    if widget == "checkbox":
        return bool(value)
    if value is None:
        return ""
    if widget == "lines":
        return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if widget == "json":
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    return str(value)


def _group(info: Any) -> str | None:
    """The field's ``json_schema_extra["group"]`` ("connection": shown with what connects)."""
    extra = info.json_schema_extra
    group = extra.get("group") if isinstance(extra, dict) else None
    return group if isinstance(group, str) else None


def _placeholder(examples: list[Any] | None) -> str:
    if not examples:
        return ""
    first = examples[0]
    return first if isinstance(first, str) else orjson.dumps(first).decode()


def config_fields(model: type[BaseModel], config: dict[str, Any]) -> list[FormField]:
    fields = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        widget, options = _widget(info.annotation)
        default = None if info.default is PydanticUndefined else info.default
        if info.default_factory is not None:
            default = info.default_factory()  # type: ignore[call-arg]
        required = info.is_required()
        present = key in config
        value = config.get(key, default if widget in ("checkbox", "fixed") else None)
        fields.append(
            FormField(
                key=key,
                widget=widget,
                required=required,
                default=default,
                options=options,
                english_help=info.description,
                value=_shown(widget, value),
                advanced=not (
                    required or present or widget == "fixed" or _group(info) == "connection"
                ),
                english_label=info.title or key.replace("_", " ").capitalize(),
                placeholder=_placeholder(info.examples),
            )
        )
    fields.sort(key=lambda f: f.advanced)
    return fields


def parse_config(
    model: type[BaseModel], form: FormData, errors: dict[str, list[str]], bad_json: str
) -> dict[str, Any]:
    """``connection_config`` from the posted ``cfg.*`` inputs (empty inputs: defaults)."""
    config: dict[str, Any] = {}
    fields = config_fields(model, {})
    for f in fields:
        raw = form.get(f.name)
        if f.widget == "checkbox":
            checked = raw is not None
            if checked != bool(f.default):
                config[f.key] = checked
            continue
        text = raw.strip() if isinstance(raw, str) else ""
        if not text:
            if f.widget == "fixed":
                config[f.key] = f.options[0]
            continue
        if f.widget == "lines":
            config[f.key] = [line.strip() for line in text.splitlines() if line.strip()]
        elif f.widget == "json":
            try:
                config[f.key] = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                errors.setdefault(f.name, []).append(bad_json.format(error=exc))
        elif f.widget in ("select", "fixed"):
            inner, _ = _unwrap(model.model_fields[_field_name(model, f.key)].annotation)
            literal = {str(a): a for a in get_args(inner)}
            config[f.key] = literal.get(text, text)
        else:
            config[f.key] = text
    for f in fields:
        # A kind chosen beside a JSON box: the object's type (the JSON's other keys kept).
        chosen = form.get(f"{f.name}.type") if f.widget == "json" and f.options else None
        if isinstance(chosen, str) and chosen in f.options:
            given = config.get(f.key)
            kept = given if isinstance(given, dict) else {}
            config[f.key] = {**kept, "type": chosen}
    return config


def _field_name(model: type[BaseModel], key: str) -> str:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return name
    return key
