"""Errors as HTTP answers: ``{"detail": ...}`` bodies, the status saying what to do next.

    NotFoundError             404  the source, run, user or table does not exist
    AlreadyExists             409  choose another name
    AlreadyRunning            409  wait for the run in progress
    NotPolled                 409  a realtime source: its rows arrive by subscription
    ConfigError               422  fix the request; ``detail`` lists every problem
    request validation        422  same shape, without echoing the submitted values
    a value the store refuses 422  (e.g. out of range for its column)
    StoreError, DB errors     503  the store is unreachable or refused; try again
    anything else             500  logged (redacted), answered without details

Text that leaves here passes :func:`redact_known`: the request's error may carry a
source's secrets from anywhere, and every secret the process holds is masked.

A 422 ``detail`` is a list of ``{"loc": [...], "msg": "field: problem", "type": ...}``;
``msg`` always names the field, so it reads well on its own.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError

from factorysync.api.headers import SECURITY_HEADERS
from factorysync.engine.runner import AlreadyRunning, NotPolled
from factorysync.errors import ConfigError, FactorySyncError, NotFoundError, StoreError
from factorysync.security.redaction import redact_known
from factorysync.store.accounts import AlreadyExists
from factorysync.store.db import describe_db_error

log = logging.getLogger("factorysync.api")
_PATH = re.compile(r"^[A-Za-z_][\w.\[\]]*$")


def problem(loc: list[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def invalid(loc: list[str | int], msg: str) -> RequestValidationError:
    """A 422 for one request value, e.g. ``invalid(["query", "limit"], "limit: ...")``."""
    return RequestValidationError([problem(loc, msg)])


def _location(text: str, where: str) -> tuple[list[str | int], str]:
    """``"body: connections[0].connection_config.file_path: Field required"`` →
    (["body", "connections", 0, "connection_config", "file_path"], "connections[0]...")."""
    text = text.removeprefix(f"{where}: ")
    head, sep, _ = text.partition(": ")
    loc: list[str | int] = [where]
    if sep and _PATH.match(head):
        for part in re.split(r"[.\[\]]+", head):
            if part:
                loc.append(int(part) if part.isdigit() else part)
    return loc, text


def config_problems(exc: ConfigError, where: str = "body") -> list[dict[str, Any]]:
    lines = exc.problems or [str(exc)]
    return [problem(*_location(redact_known(line), where)) for line in lines]


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        field = ".".join(str(p) for p in loc[1:]) or (str(loc[0]) if loc else "request")
        msg = str(err.get("msg", "invalid"))
        if not msg.startswith(f"{field}:"):
            msg = f"{field}: {msg.removeprefix('Value error, ')}"
        # The submitted value is left out on purpose: it may be a password.
        detail.append(problem(loc, msg, str(err.get("type", "value_error"))))
    return JSONResponse({"detail": detail}, status_code=422)


async def _factorysync(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, NotFoundError):
        return JSONResponse({"detail": str(exc)}, status_code=404)
    if isinstance(exc, AlreadyExists | AlreadyRunning | NotPolled):
        return JSONResponse({"detail": str(exc)}, status_code=409)
    if isinstance(exc, ConfigError):
        return JSONResponse({"detail": config_problems(exc)}, status_code=422)
    if isinstance(exc, StoreError):
        return JSONResponse({"detail": redact_known(str(exc))}, status_code=503)
    return JSONResponse({"detail": redact_known(str(exc))}, status_code=400)


async def _database(request: Request, exc: Exception) -> JSONResponse:
    message = redact_known(describe_db_error(exc))
    log.error("store error on %s %s: %s", request.method, request.url.path, message)
    if isinstance(exc, DataError):
        return JSONResponse({"detail": f"a value does not fit the store: {message}"}, 422)
    if isinstance(exc, OperationalError):
        return JSONResponse({"detail": f"store unavailable: {message}"}, status_code=503)
    return JSONResponse({"detail": "store error"}, status_code=500)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unexpected error on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        redact_known(str(exc)),
    )
    # Starlette answers an unexpected error outside every middleware: the security
    # headers are added here.
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    return JSONResponse({"detail": "internal error (logged)"}, status_code=500, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(FactorySyncError, _factorysync)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(Exception, _unexpected)
