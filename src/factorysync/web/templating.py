"""Rendering the console's Jinja2 templates (shipped in the package, autoescaped)."""

from __future__ import annotations

import time
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from factorysync import __version__
from factorysync.store.types import utcnow
from factorysync.web import messages
from factorysync.web.forms import ICONS, KIND_LABELS
from factorysync.web.i18n import LANGUAGES, relative, translator
from factorysync.web.samples import sample_text
from factorysync.web.session import ConsoleUser


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("factorysync.web", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        icons=ICONS, kind_labels=messages.KindLabels(KIND_LABELS), languages=LANGUAGES
    )
    # What happened, said in the user's language: ``{{ alert_message(a, t) }}`` …
    env.globals.update(
        alert_title=messages.alert_title,
        alert_message=messages.alert_message,
        run_error=messages.run_error,
        probe_message=messages.probe_message,
        problem_text=messages.problem_text,
        reasons_text=messages.reasons_text,
        cadence_text=messages.cadence_text,
        trigger_text=messages.trigger_text,
        code_word=messages.code_word,
        template_text=messages.template_text,
    )
    env.filters["sample"] = sample_text  # any source value as text (dates, Decimal, bytes)
    return env


def render(
    request: Request,
    template: str,
    user: ConsoleUser | None,
    language: str,
    status_code: int = 200,
    time_zone: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """The page, with ``Server-Timing`` telling how long the server took to make it.
    Times are shown in ``time_zone`` (a site's), else in the plant's."""
    started = request.scope.get("fs_started") or time.perf_counter()
    settings = request.app.state.ctx.store.settings
    shown_zone = time_zone or settings.timezone
    zone = ZoneInfo(shown_zone)
    now = utcnow()
    t = translator(language)

    def local(when: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return when.astimezone(zone).strftime(fmt) if when else "—"

    def ago(when: datetime | None) -> str:
        return relative(when, now, t)

    said_in = messages.page_language.set(language)  # for the labels macros show
    try:
        html = _render(
            template,
            t=t,
            lang=language,
            user=user,
            zone=shown_zone,
            local=local,
            ago=ago,
            now=now,
            version=__version__,
            path=request.url.path,
            refresh_s=settings.console_refresh_s,
            **context,
        )
    finally:
        messages.page_language.reset(said_in)
    elapsed = (time.perf_counter() - started) * 1000
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={"Server-Timing": f"app;dur={elapsed:.1f}", "Cache-Control": "no-store"},
    )


def _render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
