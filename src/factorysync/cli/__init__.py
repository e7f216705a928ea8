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
import logging
import os
import sys
import threading
from typing import NoReturn

from factorysync.cli import (
    accounts,
    demo,
    export,
    history,
    quarantine,
    run,
    setup,
    source,
    source_lifecycle,
    status,
    version,
    worker,
)
from factorysync.cli.base import Options, app
from factorysync.errors import ConfigError, FactorySyncError, full_traceback
from factorysync.security.redaction import install_log_redaction
from factorysync.store.store import Store

__all__ = ["app", "main"]

# Commands first, then the groups, which is also how --help lists them.
app.command("init")(setup.init)
app.command("apply")(setup.apply)
app.command("import-legacy")(setup.import_legacy)
app.command("history")(history.history)
app.command("status")(status.status)
app.command("run")(run.run)
app.command("demo")(demo.demo)
app.command("version")(version.version)
app.command("serve")(run.serve)
app.command("worker")(worker.worker)
app.command("export")(export.export)
app.add_typer(source.source_app, name="source")
source.source_app.command("delete")(source_lifecycle.delete)
source.source_app.command("duplicate")(source_lifecycle.duplicate)
app.add_typer(quarantine.quarantine_app, name="quarantine")
app.add_typer(accounts.user_app, name="user")
app.add_typer(accounts.token_app, name="token")
app.add_typer(accounts.secrets_app, name="secrets")


def main() -> None:
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
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        text = " ".join(str(exc).split())
        _report(
            exc,
            f"error: unexpected {type(exc).__name__}"
            + (f": {text}" if text else "")
            + " (factorysync --debug … prints the traceback)",
        )
        code = 1
    _leave(code)


def _report(exc: BaseException, line: str) -> None:
    """The error's line on stderr, after its whole traceback with ``--debug``."""
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
    Store.dispose_all()
    atexit._run_exitfuncs()  # what interpreter shutdown runs first: logging, finalizers
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the output is lost, as Python reports
            status = status or 120
    os._exit(status)
