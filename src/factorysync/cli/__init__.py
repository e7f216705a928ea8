"""Command line: parses arguments and calls the same services the API uses.

Every command exits 0 on success and non-zero with a one-line reason on error.
``--json`` prints machine-readable output using the registry's column names.

The package is laid out by layer: :mod:`~factorysync.cli.base` holds the root app, the
global options and the output helpers; one module per command group holds its commands
and imports only ``base`` (and :mod:`~factorysync.cli.runtime`, which builds the
long-running service) and the layers below; this module puts every command on the app,
in the order ``factorysync --help`` lists them, and runs it (:func:`main`).
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading

TYPE_CHECKING = False  # typing is not imported: `source sync` may start in ms
if TYPE_CHECKING:
    from typing import Any, NoReturn, TypeGuard

    import typer
    from pydantic import ValidationError

__all__ = ["app", "main"]

# Every command, in the order ``factorysync --help`` lists them: commands first, then the
# groups. Name → (command module, attribute). A command's module is imported only when
# that command runs (or when the whole app is asked for: --help, tests), so a short
# command does not pay for every other command's dependencies.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("setup", "init"),
    "apply": ("setup", "apply"),
    "import-legacy": ("setup", "import_legacy"),
    "history": ("history", "history"),
    "status": ("status", "status"),
    "run": ("run", "run"),
    "demo": ("demo", "demo"),
    "version": ("version", "version"),
    "serve": ("run", "serve"),
    "central": ("central", "central"),
    "forward": ("forward", "forward"),
    "worker": ("worker", "worker"),
    "export": ("export", "export"),
}
GROUPS: dict[str, tuple[str, str]] = {
    "source": ("source", "source_app"),
    "site": ("sites", "site_app"),
    "quarantine": ("quarantine", "quarantine_app"),
    "user": ("accounts", "user_app"),
    "token": ("accounts", "token_app"),
    "secrets": ("accounts", "secrets_app"),
}
# Commands of a group that live in a module of their own: group → (module, name, attribute).
GROUP_COMMANDS: dict[str, list[tuple[str, str, str]]] = {
    "source": [
        ("source_lifecycle", "delete", "delete"),
        ("source_lifecycle", "duplicate", "duplicate"),
    ],
}

# What the root help lists for each command and group: the first paragraph of its help,
# kept here so that `factorysync --help` (and any command line naming no command) imports
# no command module, about 0.7 s; tests/cli/test_help_listing.py keeps it equal to the
# commands' own help.
SUMMARIES: dict[str, str] = {
    "init": "Create or upgrade the store and the secret key file.",
    "apply": "Make the registry match a YAML file of source declarations (idempotent).",
    "import-legacy": "Register each entry of a front end's default_source_data as a JSON file "
    "source.",
    "history": "Recent sync runs, newest first (of one source, or of one site's sources).",
    "status": "Counts by status, failing sources, runs in progress, scheduler lag (polled "
    "sources),\nthe live state of realtime and push sources, and workers (--site: of one site).",
    "run": "Run the scheduler and workers, and serve the API and console, until stopped.",
    "demo": "Generate a plant data set of 40+ JSON sources, import, sync and (by default) "
    "serve\nthe console, with a login printed once (a new admin password at every start).",
    "version": "Print the version.",
    "serve": "Serve the HTTP API only (syncs started over it run here; the scheduler does not).",
    "central": "Apply the changes every site forwards (FACTORYSYNC_CENTRAL_URL, a NATS server "
    "with\nthe JetStream stream) to this PostgreSQL store, and serve the API and console on it.",
    "forward": "Publish committed changes of the forwarded tables to the central JetStream "
    "stream\n(FACTORYSYNC_FORWARD_URL, _TABLES, _STREAM) until SIGINT/SIGTERM.",
    "worker": "Run due sources together with other workers on the same PostgreSQL store.",
    "export": "Print the registry (or some sources) as a sources file; secrets never in clear.",
    "source": "Inspect and operate single sources.",
    "site": "The sites (plants): zones, shifts, sources. Declared with apply.",
    "quarantine": "Records a source's runs refused: list or export them, replay them, clear "
    "them. 'factorysync quarantine SOURCE' lists them.",
    "user": "User accounts (roles: admin, operator, viewer).",
    "token": "API tokens (shown once, stored hashed).",
    "secrets": "The key that encrypts stored credentials.",
}

_registered: set[str] = set()


def _attribute(module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"factorysync.cli.{module}"), name)


def register(names: set[str] | None = None) -> typer.Typer:
    """Put commands on the app (``None``: all of them), in the order --help lists them;
    each once, however often this is called."""
    from factorysync.cli.base import app

    for name, (module, attribute) in COMMANDS.items():
        if (names is None or name in names) and name not in _registered:
            app.command(name)(_attribute(module, attribute))
            _registered.add(name)
    for name, (module, attribute) in GROUPS.items():
        if (names is None or name in names) and name not in _registered:
            group: typer.Typer = _attribute(module, attribute)
            for sub_module, sub_name, sub_attribute in GROUP_COMMANDS.get(name, []):
                group.command(sub_name)(_attribute(sub_module, sub_attribute))
            app.add_typer(group, name=name)
            _registered.add(name)
    return app


def listing() -> typer.Typer:
    """The app as its root help shows it: every command and group by name and summary,
    none of their modules imported. Enough for any command line that names no command
    (``--help``, no arguments, an unknown command or option): none of them runs one."""
    import typer

    from factorysync.cli.base import app

    for name in COMMANDS:
        app.command(name, help=SUMMARIES[name])(_listed)
    for name in GROUPS:
        app.add_typer(typer.Typer(), name=name, help=SUMMARIES[name])
    return app


def _listed() -> None:
    raise AssertionError("a listed command is never run")  # listing() is for help only


def __getattr__(name: str) -> typer.Typer:
    """``factorysync.cli.app``: the app with every command on it."""
    if name == "app":
        return register()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _command_named(argv: list[str]) -> str | None:
    """The command the arguments run, when it is one of ours: the first word that is not
    an option (the only option before a command is ``--debug``, which takes no value)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS or word in GROUPS else None
        if word != "--debug":
            return None  # --help and the like: the whole app
    return None


def main() -> None:
    argv = sys.argv[1:]
    # An unchanged file source is synced without loading the engine (cli/fast_sync.py).
    if argv[:2] == ["source", "sync"]:
        from factorysync.cli.fast_sync import try_sync

        fast = try_sync(argv)
        if fast is not None:
            _leave(fast)
    import logging

    from factorysync.errors import ConfigError, FactorySyncError
    from factorysync.security.redaction import install_log_redaction

    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Every secret the process decrypts or resolves is masked in every log line, whoever
    # logs it (a driver's message, a traceback).
    install_log_redaction()
    # Foreground commands print their own outcome; the event log echoes only in `run`.
    logging.getLogger("factorysync.infolog").setLevel(logging.CRITICAL)
    command = _command_named(sys.argv[1:])
    app = listing() if command is None else register({command})
    code: object = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    except ConfigError as exc:
        _report(exc, f"error: {exc}")
        code = 2
    except FactorySyncError as exc:
        _report(exc, f"error: {exc}")
        code = 1
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        if _invalid_settings(exc):
            _report(exc, f"error: {settings_problems(exc)}")
            _leave(2)
        # A bug: still one line, the traceback with --debug.
        text = " ".join(str(exc).split())
        _report(
            exc,
            f"error: unexpected {type(exc).__name__}"
            + (f": {text}" if text else "")
            + " (factorysync --debug … prints the traceback)",
        )
        code = 1
    _leave(code)


def _invalid_settings(exc: Exception) -> TypeGuard[ValidationError]:
    """Whether this is pydantic's refusal of the FACTORYSYNC_* settings (pydantic is
    loaded by then: only the settings model raises it this early)."""
    pydantic = sys.modules.get("pydantic")
    return (
        pydantic is not None
        and isinstance(exc, pydantic.ValidationError)
        and exc.title == "Settings"
    )


def settings_problems(exc: ValidationError) -> str:
    """Invalid settings, each named by its environment variable, on one line."""
    found = []
    for e in exc.errors():
        name = "FACTORYSYNC_" + "_".join(str(p) for p in e["loc"]).upper()
        message = str(e["msg"]).removeprefix("Value error, ")
        found.append(message if message.startswith(name) else f"{name}: {message}")
    return "invalid setting " + "; ".join(found)


def _report(exc: BaseException, line: str) -> None:
    """The error's line on stderr, after its whole traceback with ``--debug``."""
    from factorysync.cli.base import Options
    from factorysync.errors import full_traceback

    if Options.debug:
        sys.stderr.write(full_traceback(exc) + "\n")
    sys.stderr.write(line + "\n")


def _leave(code: object) -> NoReturn:
    """End the process: stores closed, exit handlers run and output flushed, then out
    without the interpreter's teardown of every loaded module (about 0.1 s a command).
    A command that left threads running exits the ordinary way."""
    if code is None or isinstance(code, int):
        status = code or 0
    else:
        sys.stderr.write(f"{code}\n")  # as Python prints a SystemExit message
        status = 1
    if threading.active_count() > 1:
        sys.exit(status)
    if (store := sys.modules.get("factorysync.store.store")) is not None:
        store.Store.dispose_all()  # only a command that opened one has the module loaded
    atexit._run_exitfuncs()  # what interpreter shutdown runs first: logging, finalizers
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the output is lost, as Python reports
            status = status or 120
    os._exit(status)
