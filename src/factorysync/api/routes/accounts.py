"""Accounts: log in for a token, who am I, users (admins) and API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from factorysync.api.account_schemas import (
    LoginPublic,
    LoginRequest,
    MePublic,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from factorysync.api.deps import (
    AUTH_RESPONSES,
    Admin,
    AnyToken,
    Context,
    Responses,
    StoreDep,
    TokenHolder,
)
from factorysync.api.schemas import ErrorPublic
from factorysync.security.throttle import LoginThrottled
from factorysync.store import accounts
from factorysync.store.types import utcnow

router = APIRouter(tags=["accounts"])
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"
Username = Annotated[str, Path(pattern=USERNAME)]
NOT_FOUND: Responses = {404: {"model": ErrorPublic, "description": "No such user or token"}}
INVALID: Responses = {
    422: {"model": ErrorPublic, "description": "Invalid request; every problem named"}
}


@router.post(
    "/api/auth/login",
    response_model=LoginPublic,
    responses={
        401: {"model": ErrorPublic, "description": "Wrong user name or password"},
        429: {
            "model": ErrorPublic,
            "description": "Too many failed logins from this address: wait Retry-After s",
        },
    },
)
def login(body: LoginRequest, request: Request, ctx: Context) -> Any:
    """Trade a user name and password for a token that expires (``login_token_ttl_s``).

    Failed attempts are throttled per user name and client address, and per client
    address (see ``factorysync.security.throttle``)."""
    address = request.client.host if request.client else "-"
    try:
        attempt = ctx.logins.admit(body.username, address)
    except LoginThrottled as exc:
        raise HTTPException(
            429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        ) from None
    ttl = ctx.store.settings.login_token_ttl_s
    with attempt, ctx.store.begin() as conn:
        found = accounts.login_token(conn, body.username, body.password, name="login", ttl_s=ttl)
        attempt.ok = found is not None
    if found is None:
        raise HTTPException(401, "wrong user name or password, or the user is disabled")
    token, expires, user = found
    return {"token": token, "expires_at": expires, "user": user}


@router.get("/api/auth/me", response_model=MePublic, responses=AUTH_RESPONSES)
def me(who: AnyToken) -> Any:
    """The user and token making this request."""
    scopes = list(who.scopes) if who.scopes is not None else None
    return {"username": who.username, "role": who.role, "token_id": who.token_id, "scopes": scopes}


# -- users ---------------------------------------------------------------------------
@router.get("/api/users", response_model=list[UserPublic], responses=AUTH_RESPONSES)
def list_users(_: Admin, store: StoreDep) -> Any:
    with store.connect() as conn:
        return accounts.list_users(conn)


@router.post(
    "/api/users",
    status_code=201,
    response_model=UserPublic,
    responses={**AUTH_RESPONSES, 409: {"model": ErrorPublic}, **INVALID},
)
def create_user(body: UserCreate, _: Admin, store: StoreDep) -> Any:
    with store.begin() as conn:
        return accounts.create_user(conn, **body.model_dump())


@router.get(
    "/api/users/{username}", response_model=UserPublic, responses={**AUTH_RESPONSES, **NOT_FOUND}
)
def read_user(username: Username, _: Admin, store: StoreDep) -> Any:
    with store.connect() as conn:
        return accounts.get_user(conn, username)


@router.patch(
    "/api/users/{username}",
    response_model=UserPublic,
    responses={**AUTH_RESPONSES, **NOT_FOUND, **INVALID},
)
def update_user(
    username: Username, body: UserUpdate, _: Admin, store: StoreDep, ctx: Context
) -> Any:
    """Change role, password or details; ``is_active: false`` disables the user (and so
    every token of it)."""
    with store.begin() as conn:
        user = accounts.update_user(conn, username, **body.model_dump(exclude_none=True))
    ctx.accounts_changed()
    return user


# -- tokens --------------------------------------------------------------------------
@router.get("/api/tokens", response_model=list[TokenPublic], responses=AUTH_RESPONSES)
def list_tokens(
    who: TokenHolder,
    store: StoreDep,
    username: Annotated[str | None, Query(pattern=USERNAME)] = None,
) -> Any:
    """Your tokens; admin tokens see everyone's (or one user's with ``username``)."""
    if not who.is_admin:
        username = who.username
    with store.connect() as conn:
        return accounts.list_tokens(conn, username)


@router.post(
    "/api/tokens",
    status_code=201,
    response_model=TokenCreated,
    responses={**AUTH_RESPONSES, **NOT_FOUND, **INVALID},
)
def create_token(body: TokenCreate, who: TokenHolder, store: StoreDep) -> Any:
    """A new token (shown only in this answer). Admins may make one for another user.

    A token cannot make a stronger one: a scoped token only passes on a subset of its
    scopes (so it must send ``scopes``), and the user's role may not exceed the caller's.
    """
    username = body.username or who.username
    expires = body.expires_at
    if body.expires_in_s is not None:
        expires = utcnow() + timedelta(seconds=body.expires_in_s)
    try:
        with store.begin() as conn:
            token, row = accounts.create_token(
                conn, username, name=body.name, expires_at=expires, scopes=body.scopes, creator=who
            )
    except accounts.NotAllowed as exc:
        raise HTTPException(403, str(exc)) from None
    return {**row, "token": token}


@router.delete(
    "/api/tokens/{token_id}",
    response_model=TokenPublic,
    responses={**AUTH_RESPONSES, **NOT_FOUND},
)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    who: TokenHolder,
    store: StoreDep,
    ctx: Context,
) -> Any:
    """Revoke a token: yours, or anyone's for admins. It stops working at once."""
    with store.begin() as conn:
        token = accounts.get_token(conn, token_id)
        if token["username"] != who.username and not who.is_admin:
            raise HTTPException(404, f"no token {token_id} of yours")
        revoked = accounts.revoke_token(conn, token_id)
    ctx.accounts_changed()
    return revoked
