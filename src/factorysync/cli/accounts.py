"""``user …``, ``token …`` and ``secrets …``: who may use the API, and the key that
encrypts stored credentials."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from factorysync import services
from factorysync.cli.base import JsonOpt, open_store, out, print_json
from factorysync.errors import ConfigError
from factorysync.store import accounts
from factorysync.store.types import utcnow

user_app = typer.Typer(help="User accounts (roles: admin, operator, viewer).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)
secrets_app = typer.Typer(help="The key that encrypts stored credentials.", no_args_is_help=True)


# -- users -------------------------------------------------------------------------------
# Never an argument: it would be kept in the shell's history and shown by `ps`.
PasswordStdinOpt = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]


def _new_password(from_stdin: bool) -> str:
    """The first line of stdin, or asked twice with the input hidden."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ConfigError("--password-stdin: the first line of standard input is empty")
        return line
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


def _read_password(prompt: bool, from_stdin: bool) -> str | None:
    return _new_password(from_stdin) if prompt or from_stdin else None


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")] = "viewer",
    password: Annotated[bool, typer.Option("--password", help="Ask for a password.")] = False,
    password_stdin: PasswordStdinOpt = False,
    email: Annotated[str | None, typer.Option()] = None,
    full_name: Annotated[str | None, typer.Option()] = None,
    json: JsonOpt = False,
) -> None:
    """Add a user (without a password it can only use tokens)."""
    secret = _read_password(password, password_stdin)
    with open_store().begin() as conn:
        user = accounts.create_user(
            conn, username, role, password=secret, email=email, full_name=full_name
        )
    if json:
        print_json(user)
        return
    out.print(f"user {username!r} added with role {role}")


@user_app.command("list")
def user_list(json: JsonOpt = False) -> None:
    """List users."""
    with open_store().connect() as conn:
        users = accounts.list_users(conn)
    if json:
        print_json(users)
        return
    table = Table("username", "role", "active", "password", "last login", box=None)
    for u in users:
        table.add_row(
            u["username"],
            u["role"],
            "yes" if u["is_active"] else "[red]no[/]",
            "set" if u.get("has_password") else "",
            str(u["last_login"] or ""),
        )
    out.print(table)


@user_app.command("set-password")
def user_set_password(
    username: str, password_stdin: PasswordStdinOpt = False, json: JsonOpt = False
) -> None:
    """Give a user a new password (asked twice, hidden); its login sessions end.

    Console and API logins of the old password stop working; API tokens made with
    'token create' stay valid (revoke them with 'token revoke').
    """
    store = open_store()
    with store.connect() as conn:
        accounts.get_user(conn, username)  # an unknown user before asking for a password
    secret = _new_password(password_stdin)
    with store.begin() as conn:
        ended = accounts.set_password(conn, username, secret)
        user = accounts.get_user(conn, username)
    if json:
        print_json({**user, "sessions_ended": ended})
        return
    out.print(f"user {username!r}: password changed, {ended} login session(s) ended")
    if not user["is_active"]:
        out.print(f"the user is disabled: 'factorysync user enable {username}' lets it log in")


def _set_active(username: str, active: bool) -> None:
    with open_store().begin() as conn:
        accounts.update_user(conn, username, is_active=active)
    out.print(f"user {username!r} {'enabled' if active else 'disabled'}")


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable a user: every token of it stops working at once."""
    _set_active(username, False)


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Enable a disabled user again."""
    _set_active(username, True)


# -- tokens ------------------------------------------------------------------------------
@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="The user the token acts as.")],
    name: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 90m, 12h, 30d, 2w (default: none).")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Limit the token to a scope (repeatable): read, operate, admin, …"),
    ] = None,
) -> None:
    """Create a token; it is printed alone on the last line, and only this once."""
    expires = utcnow() + accounts.parse_duration(expires_in) if expires_in else None
    with open_store().begin() as conn:
        token, row = accounts.create_token(conn, user, name=name, expires_at=expires, scopes=scope)
    until = f", expires {row['expires_at']:%Y-%m-%d %H:%M} UTC" if expires else ""
    scopes = f", scopes {', '.join(row['scopes'])}" if row["scopes"] else ""
    out.print(f"token {row['id']} ({row['token_prefix']}…) for {user!r}{until}{scopes}:")
    sys.stdout.write(token + "\n")
    sys.stdout.flush()


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    json: JsonOpt = False,
) -> None:
    """List tokens (never the tokens themselves)."""
    with open_store().connect() as conn:
        tokens = accounts.list_tokens(conn, user)
    if json:
        print_json(tokens)
        return
    table = Table("id", "prefix", "user", "name", "scopes", "expires", "last used", "", box=None)
    now = utcnow()
    for t in tokens:
        state = "revoked" if t["revoked_at"] else ""
        if not state and t["expires_at"] and t["expires_at"] <= now:
            state = "expired"
        table.add_row(
            str(t["id"]),
            t["token_prefix"],
            t["username"],
            t["name"] or "",
            ",".join(t["scopes"] or []),
            str(t["expires_at"] or ""),
            str(t["last_used_at"] or ""),
            f"[red]{state}[/]" if state else "",
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    token: Annotated[str, typer.Argument(help="The token's id or its prefix (fs_…).")],
) -> None:
    """Revoke a token; it stops working at once."""
    with open_store().begin() as conn:
        row = accounts.revoke_token(conn, accounts.find_token(conn, token)["id"])
    out.print(f"token {row['id']} ({row['token_prefix']}…) of {row['username']!r} revoked")


# -- secrets -----------------------------------------------------------------------------
@secrets_app.command("rotate-key")
def secrets_rotate_key(
    grace: Annotated[
        float,
        typer.Option(min=0, help="Seconds for running services to load the new key first."),
    ] = 5.0,
    keep_old: Annotated[bool, typer.Option(help="Keep the old key in the key file.")] = False,
) -> None:
    """Re-encrypt every stored secret under a new key, without stopping services."""
    store = open_store()
    if store.settings.secret_key:
        out.print("key from FACTORYSYNC_SECRET_KEY: re-encrypting under its first key")
    else:
        out.print(f"new key first in the key file; waiting {grace:g} s for running services…")
    result = services.rotate_secret_key(store, grace_s=grace, keep_old=keep_old)
    out.print(f"{result.values} stored secret value(s) re-encrypted under the new key")
    if result.key_file is None:
        out.print("remove the old key from FACTORYSYNC_SECRET_KEY on every process when done")
    elif result.old_keys_dropped:
        out.print(f"old key removed from {result.key_file}")
    else:
        out.print(f"old key kept in {result.key_file} (--keep-old)")


@secrets_app.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new key (for FACTORYSYNC_SECRET_KEY='NEW,OLD' before rotate-key)."""
    from cryptography.fernet import Fernet

    sys.stdout.write(Fernet.generate_key().decode("ascii") + "\n")
