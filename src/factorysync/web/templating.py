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
from factorysync.web.forms import ICONS, KIND_LABELS
from factorysync.web.i18n import LANGUAGES, relative, translator
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
    env.globals.update(icons=ICONS, kind_labels=KIND_LABELS, languages=LANGUAGES)
    return env


def render(
    request: Request,
    template: str,
    user: ConsoleUser | None,
    language: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The page, with ``Server-Timing`` telling how long the server took to make it."""
    started = request.scope.get("fs_started") or time.perf_counter()
    settings = request.app.state.ctx.store.settings
    zone = ZoneInfo(settings.timezone)
    now = utcnow()
    t = translator(language)

    def local(when: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return when.astimezone(zone).strftime(fmt) if when else "—"

    def ago(when: datetime | None) -> str:
        return relative(when, now, t)

    html = (
        environment()
        .get_template(template)
        .render(
            t=t,
            lang=language,
            user=user,
            zone=settings.timezone,
            local=local,
            ago=ago,
            now=now,
            version=__version__,
            path=request.url.path,
            refresh_s=settings.console_refresh_s,
            **context,
        )
    )
    elapsed = (time.perf_counter() - started) * 1000
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={"Server-Timing": f"app;dur={elapsed:.1f}", "Cache-Control": "no-store"},
    )
