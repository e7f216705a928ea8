"""Read answers that dashboards poll: made once, kept briefly, sent with an ``ETag``.

The polled read endpoints — the registry (``/api/sources``), each source's history, the
latest runs, ``/api/status`` and pages of target tables — give every caller allowed to
read them the same answer, so it is made once and kept in the answer cache
(:class:`factorysync.api.cache.Answers`, ``api_cache_s``) under the request's path and
query, parameters in any order. The fast path (:mod:`factorysync.api.fastpath`) answers
repeated requests from there, after the same token, role and scope checks
(:data:`POLLED`).

An answer is the JSON its response model gives (validated and written by pydantic in one
step, so the same bytes as the framework would send, without its generic encoder), with a
weak ``ETag``; a client sending it back in ``If-None-Match`` gets ``304 Not Modified``
while the answer is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from pydantic import TypeAdapter
from starlette.types import Scope

if TYPE_CHECKING:
    from factorysync.api.context import ApiContext


@dataclass(frozen=True)
class Polled:
    """A read endpoint whose answers are kept: what the caller must hold, and the route
    template request metrics label it with."""

    pattern: re.Pattern[str]
    role: str
    scope: str
    template: str


# Roles and scopes as the routes' dependencies (api.deps) ask them.
POLLED = (
    Polled(
        re.compile(r"^/api/data/[a-z_][a-z0-9_]{0,62}$"),
        "viewer",
        "read",
        "/api/data/{target_table}",
    ),
    Polled(re.compile(r"^/api/status$"), "viewer", "read", "/api/status"),
    Polled(re.compile(r"^/api/sources$"), "operator", "operate", "/api/sources"),
    Polled(
        re.compile(r"^/api/sources/[^/]{1,100}/history$"),
        "operator",
        "operate",
        "/api/sources/{source_id}/history",
    ),
    Polled(re.compile(r"^/api/runs$"), "operator", "operate", "/api/runs"),
)


def polled(path: str) -> Polled | None:
    """The kept endpoint ``path`` is, or None."""
    for endpoint in POLLED:
        if endpoint.pattern.match(path):
            return endpoint
    return None


def request_key(scope: Scope) -> Hashable:
    """The answer cache's key of a request: its path and its query parameters, sorted (as
    the framework parses them), so the same question asked in another order is one."""
    query = scope["query_string"].decode("latin-1")
    return (scope["path"], tuple(sorted(parse_qsl(query, keep_blank_values=True))))


def not_modified(sent: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``tag`` (or is ``*``)."""
    if sent is None:
        return False
    return sent.strip() == "*" or tag in (t.strip() for t in sent.split(","))


def respond(request: Request, body: bytes, tag: str) -> Response:
    """The body with its ETag, or 304 when the client has it already."""
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if not_modified(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


async def answer(
    request: Request,
    ctx: ApiContext,
    make: Callable[[], bytes],
    version: Callable[[], Hashable] | None = None,
) -> Response:
    """The answer to ``request``: kept, or ``make()`` run in a worker thread (see
    :meth:`Answers.get` for ``version``)."""
    return respond(request, *await ctx.answers.get(request_key(request.scope), make, version))


class Shape:
    """Writes values as a response model's JSON (``Shape(list[RunPublic]).json(rows)``)."""

    def __init__(self, model: Any) -> None:
        self.adapter: TypeAdapter[Any] = TypeAdapter(model)

    def json(self, value: Any) -> bytes:
        return self.adapter.dump_json(self.adapter.validate_python(value))
