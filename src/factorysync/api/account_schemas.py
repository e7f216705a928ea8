"""Request and response models of users, tokens and logins (the accounts routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from factorysync.api.schemas import Open

Role = Literal["admin", "operator", "viewer"]


class UserPublic(Open):
    id: int
    username: str
    email: str | None = None
    full_name: str | None = None
    role: Role
    is_active: bool
    has_password: bool
    last_login: datetime | None = None
    created_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    role: Role = "viewer"
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    email: str | None = Field(default=None, max_length=255)
    full_name: str | None = Field(default=None, max_length=255)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    email: str | None = Field(default=None, max_length=255)
    full_name: str | None = Field(default=None, max_length=255)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    username: str | None = Field(
        default=None, max_length=100, description="Admins only: make the token for this user."
    )
    expires_at: datetime | None = None
    expires_in_s: int | None = Field(default=None, ge=60, le=10 * 365 * 86400)
    scopes: list[str] | None = Field(
        default=None, max_length=50, description="e.g. ['read'] or ['ingest:SOURCE_ID']"
    )


class TokenPublic(BaseModel):
    id: int
    user_id: int
    username: str
    name: str | None = None
    token_prefix: str
    scopes: list[str] | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class TokenCreated(TokenPublic):
    token: str = Field(description="The token itself: shown this once, stored only hashed.")


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class LoginPublic(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: UserPublic


class MePublic(BaseModel):
    username: str
    role: Role
    token_id: int | None
    scopes: list[str] | None
