"""Dependencies of the routes, as ``Annotated`` aliases.

``Viewer``, ``Operator`` and ``Admin`` authenticate the bearer token and require at least
that role; a scoped token must also hold the endpoint's scope (``read``, ``operate``,
``admin``). Missing or bad token → 401, too little role or scope → 403.
"""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError

from factorysync.api.context import ApiContext
from factorysync.store.accounts import Principal, authenticate, hash_token
from factorysync.store.db import describe_db_error, store_unreachable
from factorysync.store.store import Store

bearer = HTTPBearer(
    auto_error=False,
    description="An API token: `factorysync token create --user NAME`, or POST /api/auth/login.",
)


async def get_context(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Context = Annotated[ApiContext, Depends(get_context)]


async def get_store(ctx: Context) -> Store:
    return ctx.store


StoreDep = Annotated[Store, Depends(get_store)]


async def plant_zone(ctx: Context) -> ZoneInfo:
    return ZoneInfo(ctx.store.settings.timezone)


PlantZone = Annotated[ZoneInfo, Depends(plant_zone)]
# ``?site=``: only the sources (runs, rows) of one site; an unknown one is a 404.
SiteQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=32, description="Only the sources of this site (plant)."),
]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def _lookup(ctx: ApiContext, token: str) -> Principal | None:
    with ctx.store.connect_autocommit() as conn:  # one SELECT
        return authenticate(conn, token)


async def current_principal(
    ctx: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing token: send 'Authorization: Bearer <token>'")
    token = credentials.credentials
    key = hash_token(token)
    who = ctx.principals.get(key)
    if who is None:
        try:
            who = await run_in_threadpool(_lookup, ctx, token)
        except SQLAlchemyError as exc:
            if not store_unreachable(exc):
                raise
            # The store is away: a token checked lately stays trusted (pushes then reach
            # the spool); any other cannot be checked now.
            who = ctx.vouched.get(key)
            if who is None:
                raise HTTPException(
                    503,
                    f"the token cannot be checked now: the store is unreachable "
                    f"({describe_db_error(exc)})",
                ) from None
            return who
        if who is None:
            ctx.vouched.discard(key)
            raise _unauthorized(
                "invalid token (unknown, expired or revoked, or its user is disabled)"
            )
        ctx.principals.put(key, who)
        ctx.vouched.put(key, who)
    if who.token_id is not None:
        ctx.usage.note(who.token_id)
    return who


class Require:
    """At least ``role``; for a scoped token also ``scope`` (None: any token of the role)."""

    def __init__(self, role: str, scope: str | None) -> None:
        self.role = role
        self.scope = scope

    async def __call__(self, who: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not who.has_role(self.role):
            raise HTTPException(
                403, f"needs role {self.role!r}; {who.username!r} has role {who.role!r}"
            )
        if not who.has_scope(self.scope):
            raise HTTPException(
                403, f"this token's scopes {list(who.scopes or [])} do not include {self.scope!r}"
            )
        return who


Viewer = Annotated[Principal, Depends(Require("viewer", "read"))]
Operator = Annotated[Principal, Depends(Require("operator", "operate"))]
Admin = Annotated[Principal, Depends(Require("admin", "admin"))]
# Managing one's own tokens: any role, but a scoped token needs the 'tokens' scope.
TokenHolder = Annotated[Principal, Depends(Require("viewer", "tokens"))]
AnyToken = Annotated[Principal, Depends(current_principal)]

Responses = dict[int | str, dict[str, Any]]  # an operation's documented answers
AUTH_RESPONSES: Responses = {
    401: {"description": "Missing or invalid token"},
    403: {"description": "The token's role or scopes do not allow this"},
}
