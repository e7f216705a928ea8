"""Adding and editing sources in the console (admins), with inline probes.

The form posts one of these intents: ``test`` (check the connection), ``discover``
(fields and sample values, and the target table, key and fields they suggest; an OPC UA
server's variables), ``preview`` (the first records, raw and mapped), ``use_nodes`` (the
ticked variables of a browse listing into ``nodes``, for browsers without JavaScript) or
``save``. Probes work on the form as typed, before anything is stored; ``test`` and
``discover`` need its connection only (:mod:`factorysync.web.form_guide`). A probe asked
for as a fragment (``X-Fragment: probe``) answers its result only; otherwise the whole
form comes back, filled with what discovery found. ``save`` goes through
``services.create_source`` / ``services.update_source`` like the API, so the problems
reported are the same, shown next to their fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from factorysync import services
from factorysync.connectors.registry import DEFAULT_CONNECTION_TYPE, validate_connection_config
from factorysync.errors import ConfigError, NotFoundError
from factorysync.intake import parse_source
from factorysync.store.accounts import AlreadyExists
from factorysync.store.registry import get_source
from factorysync.store.sites import site_names
from factorysync.store.templates import get_template, list_templates
from factorysync.web import form_guide, forms, probe
from factorysync.web.forms import KINDS, SourceForm
from factorysync.web.i18n import MESSAGES, translator
from factorysync.web.messages import problem_texts
from factorysync.web.messages import quote as said
from factorysync.web.pages import User, _ctx, _not_found, _stamp
from factorysync.web.session import ConsoleUser, check_csrf
from factorysync.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(_stamp)])
PROBES = ("test", "discover", "preview")


def _blank(source_type: str) -> dict[str, Any]:
    return {
        "source_type": source_type,
        "connections": [
            {"connection_type": DEFAULT_CONNECTION_TYPE[source_type], "connection_config": {}}
        ],
        "mappings": [{}],
    }


def _page(
    request: Request,
    user: ConsoleUser,
    form: SourceForm,
    status: int = 200,
    result: dict[str, Any] | None = None,
    action: str | None = None,
) -> Response:
    store = _ctx(request).store
    with store.connect() as conn:
        sites = site_names(conn)
    return render(
        request,
        "source_form.html",
        user,
        user.language,
        status,
        sites=sites,
        default_site=store.settings.site,
        form=form,
        csrf=user.csrf,
        result=result,
        action=action,
        say=_say(user.language),
        field_types=forms.FIELD_TYPES,
        strategies=forms.STRATEGIES,
        on_invalid=forms.ON_INVALID,
    )


@router.get("/sources/new")
def new_source(request: Request, user: User) -> Response:
    user.require("admin")
    store = _ctx(request).store
    source_type = request.query_params.get("type")
    template_name = request.query_params.get("template")
    if template_name:
        with store.connect() as conn:
            try:
                template = get_template(conn, template_name)
            except NotFoundError:
                message = translator(user.language)("error.not_found", what=said(template_name))
                return render(request, "error.html", user, user.language, 404, message=message)
        decl = {
            "source_type": template["source_type"],
            "connections": [
                {
                    "connection_type": template["connection_type"],
                    "connection_config": template["connection_config"],
                    "authentication_config": template["authentication_config"],
                }
            ],
            "mappings": [{"mapping_config": template["mapping_config"]}],
        }
        return _page(request, user, forms.form_from_declaration(decl, template=template_name))
    if source_type is not None and source_type in forms.ICONS:
        return _page(request, user, forms.form_from_declaration(_blank(source_type)))
    with store.connect() as conn:
        templates = list_templates(conn)
    return render(
        request,
        "source_pick.html",
        user,
        user.language,
        kinds=KINDS,
        templates=templates,
        summaries=forms.SUMMARIES,
        say=_say(user.language),
    )


def _say(language: str) -> Callable[[str, str], str]:
    """``t(key)`` for a key the i18n table has, else ``fallback`` (a plugin type's own
    sentence, a secret key the table does not name)."""
    t = translator(language)
    return lambda key, fallback: t(key) if key in MESSAGES else fallback


@router.post("/sources/new")
async def post_new(request: Request, user: User) -> Response:
    return await _post(request, user, None)


@router.get("/sources/{source_id}/edit")
def edit_source(request: Request, source_id: str, user: User) -> Response:
    user.require("admin")
    store = _ctx(request).store
    try:
        with store.connect() as conn:
            shown = services.public_source(store, get_source(conn, source_id))
    except NotFoundError:
        return _not_found(request, user, source_id)
    return _page(request, user, forms.form_from_declaration(shown, editing=source_id))


@router.post("/sources/{source_id}/edit")
async def post_edit(request: Request, source_id: str, user: User) -> Response:
    return await _post(request, user, source_id)


async def _post(request: Request, user: ConsoleUser, editing: str | None) -> Response:
    data = await request.form()
    check_csrf(user, data.get("csrf"))
    user.require("admin")
    ctx = _ctx(request)
    store = ctx.store
    t = translator(user.language)
    intent = str(data.get("intent") or "save")
    fragment = request.headers.get("x-fragment") == "probe"
    if str(data.get("source_type") or "") not in forms.ICONS:
        return Response("source_type: choose one of the listed types", status_code=422)
    raw, form = forms.declaration_from_form(data, t, editing=editing)
    if intent == "use_nodes":  # no-JS "Use ticked nodes" of an OPC UA browse listing
        form_guide.use_nodes(form, [str(v) for v in data.getlist("pick")])
        return _page(request, user, form)
    connection_only = intent in form_guide.PROBE_INTENTS
    if editing is not None:
        raw = await run_in_threadpool(_with_other_parts, store, editing, raw)
    if connection_only:
        raw = form_guide.connection_only(raw)
        form_guide.connection_problems(form)
    # Validation compiles the mapping's expressions (and folds their constant parts):
    # bounded, but work all the same, so not on the event loop.
    decl, problems = await run_in_threadpool(parse_source, raw, "form")
    if decl is None:  # the connection's own problems too, so all are shown at once
        connection = raw["connections"][0]
        problems += [
            p.within("connections[0].connection_config")
            for p in validate_connection_config(
                connection["connection_type"], connection["connection_config"]
            )
        ]
    forms.place_problems(problem_texts(problems, t), form)
    if connection_only:
        form_guide.connection_problems(form)
    if form.errors or form.form_errors or decl is None:
        form.form_errors.insert(0, t("form.fix"))
        return _page(request, user, form, 422)

    if intent in PROBES:
        if editing is not None:
            decl = await run_in_threadpool(probe.with_stored_secrets, store, decl, editing)
        run = {"test": probe.test, "discover": probe.discover, "preview": probe.preview}[intent]
        result = await run_in_threadpool(run, store, decl)
        if fragment:
            return render(request, "_probe.html", user, user.language, action=intent, result=result)
        if intent == "discover":
            form_guide.apply_discovery(form, result)
        return _page(request, user, form, result=result, action=intent)

    try:
        if editing is None:
            change = await run_in_threadpool(
                services.create_source, store, raw, created_by=user.username
            )
        else:
            change = await run_in_threadpool(services.update_source, store, editing, raw)
    except ConfigError as exc:
        forms.place_problems(problem_texts(exc.problems, t) or [str(exc)], form)
        form.form_errors.insert(0, t("form.fix"))
        return _page(request, user, form, 422)
    except AlreadyExists:
        form.errors.setdefault("source_id", []).append(t("problem.source_exists"))
        form.form_errors.insert(0, t("form.fix"))
        return _page(request, user, form, 409)
    ctx.data_changed()
    return RedirectResponse(
        f"/sources/{quote(change.source_id)}?notice={quote(t('source.saved'))}", status_code=303
    )


def _with_other_parts(store: Any, source_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The edited primary connection and first mapping, with the source's other
    connections and mappings kept as stored (their secrets as "***": kept on save)."""
    with store.connect() as conn:
        shown = services.public_source(store, get_source(conn, source_id))
    edited_conn, edited_map = raw["connections"][0], raw["mappings"][0]
    primary = next((c for c in shown["connections"] if c["is_primary"]), None)
    if primary is not None:
        edited_conn["connection_name"] = primary["connection_name"]
    connections = [edited_conn] + [
        {
            "connection_name": c["connection_name"],
            "connection_type": c["connection_type"],
            "connection_config": c["connection_config"],
            "authentication_config": c["authentication_config"],
            "is_primary": False,
            "is_backup": c["is_backup"],
            "status": c["status"],
        }
        for c in shown["connections"]
        if primary is None or c["connection_name"] != primary["connection_name"]
    ]
    first = shown["mappings"][0]["target_table"] if shown["mappings"] else None
    mappings = [edited_map] + [
        {
            "target_table": m["target_table"],
            "mapping_config": m["mapping_config"],
            "sync_strategy": m["sync_strategy"],
            "sync_frequency": m["sync_frequency"],
            "data_retention_days": m["data_retention_days"],
            "is_active": m["is_active"],
        }
        for m in shown["mappings"]
        if m["target_table"] != first and m["target_table"] != edited_map["target_table"]
    ]
    if shown["mappings"]:
        keep = shown["mappings"][0]
        edited_map.setdefault("sync_frequency", keep["sync_frequency"])
        edited_map.setdefault("data_retention_days", keep["data_retention_days"])
        edited_map.setdefault("is_active", keep["is_active"])
    return {**raw, "status": shown["status"], "connections": connections, "mappings": mappings}
