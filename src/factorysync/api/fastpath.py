"""Repeated polled requests answered straight from memory, in front of the framework.

Polling dashboards ask for the same answers again and again: pages of
``/api/data/{table}``, the registry, each source's history, the latest runs, the status
(:data:`factorysync.api.answering.POLLED`). Once such an answer is in the answer cache
(:mod:`factorysync.api.cache`) and the caller's token was checked, answering it again
needs only a dictionary look-up, yet routing, dependency injection and parameter
validation cost most of a request's CPU time. This ASGI layer answers exactly those
requests — ``GET``, a bearer token already in the token cache with the role and scope the
route asks for, the same path and query as a kept answer — with that answer (an
``ETag``, ``304`` for ``If-None-Match``, gzip for clients that accept it, compressed once
per answer, and the security headers every answer carries). It also starts the answer's
background refresh, like the route does. Anything else — a first request, a new token, an
unknown question, a cross-origin request when CORS is configured — goes on to the route,
which fills the caches for next time.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from factorysync.api.answering import not_modified, polled, request_key
from factorysync.api.context import ApiContext
from factorysync.store.accounts import hash_token

GZIP_MIN = 1024  # as the GZip middleware
GZIP_ENTRIES = 1024


class _Route:
    """What the request metrics label the answer with: the route's template."""

    def __init__(self, path: str) -> None:
        self.path = path


class CachedDataAnswers:
    def __init__(
        self,
        app: ASGIApp,
        ctx: ApiContext,
        *,
        cors: bool,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.cors = cors
        self.headers = headers  # added to every answer given here
        self._gzipped: OrderedDict[str, bytes] = OrderedDict()  # by ETag
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith("/api/")
            and await self._answered(scope, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _answered(self, scope: Scope, send: Send) -> bool:
        endpoint = polled(scope["path"])
        if endpoint is None:
            return False
        token = tags = encodings = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = value
            elif name == b"if-none-match":
                tags = value
            elif name == b"accept-encoding":
                encodings = value
            elif name == b"origin" and self.cors:
                return False  # CORS headers come from the framework's middleware
        if token is None or token[:7].lower() != b"bearer ":
            return False
        who = self.ctx.principals.get(hash_token(token[7:].decode("latin-1").strip()))
        if who is None or not who.has_role(endpoint.role) or not who.has_scope(endpoint.scope):
            return False
        answer = self.ctx.answers.fast(request_key(scope))
        if answer is None:
            return False
        if who.token_id is not None:
            self.ctx.usage.note(who.token_id)
        scope["route"] = _Route(endpoint.template)
        body, tag = answer
        headers = [(b"etag", tag.encode()), (b"cache-control", b"no-cache"), *self.headers]
        if tags is not None and not_modified(tags.decode("latin-1"), tag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers.append((b"content-type", b"application/json"))
        if len(body) >= GZIP_MIN:
            headers.append((b"vary", b"Accept-Encoding"))
            if encodings is not None and b"gzip" in encodings:
                body = self._gzip(body, tag)
                headers.append((b"content-encoding", b"gzip"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    def _gzip(self, body: bytes, tag: str) -> bytes:
        with self._lock:
            packed = self._gzipped.get(tag)
            if packed is not None:
                self._gzipped.move_to_end(tag)
                return packed
        packed = gzip.compress(body, compresslevel=5, mtime=0)
        with self._lock:
            self._gzipped[tag] = packed
            while len(self._gzipped) > GZIP_ENTRIES:
                self._gzipped.popitem(last=False)
        return packed


def install(
    app: Any, ctx: ApiContext, *, cors: bool, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Add the layer (call after the compression and security-header middleware, before the
    metrics one); ``headers`` are those the security-header middleware adds elsewhere."""
    app.add_middleware(CachedDataAnswers, ctx=ctx, cors=cors, headers=headers)
