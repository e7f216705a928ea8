"""``forward``: publish the plant's outbox to the central stream in the foreground.

``factorysync run`` publishes in a thread of its own when FACTORYSYNC_FORWARD_URL is
set; this command is the same publisher alone (a plant whose syncs run in ``worker``
processes, or a separate service unit), and ``--drain`` empties the outbox once and
exits (after a long outage, or before a planned stop).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Annotated, Any

import typer

from factorysync.cli.base import err, open_store, out


def forward(
    drain: Annotated[
        bool,
        typer.Option(
            "--drain", help="Publish until the outbox is empty, then exit (1 if it could not)."
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(min=1, help="With --drain: give up after this many seconds."),
    ] = 600.0,
) -> None:
    """Publish committed changes of the forwarded tables to the central JetStream stream
    (FACTORYSYNC_FORWARD_URL, _TABLES, _STREAM) until SIGINT/SIGTERM."""
    from factorysync.forward import forward_status
    from factorysync.forward.publisher import Publisher

    store = open_store()
    publisher = Publisher(store)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        err.print(f"stopping ({signal.Signals(signum).name})…")
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    out.print(
        f"forwarding {store.settings.forward_tables} of site {store.settings.site} to "
        f"{publisher.safe_url} (stream {publisher.stream}; Ctrl-C stops)",
        highlight=False,
        markup=False,
    )
    if not drain:
        publisher.run(stop)
        return
    thread = threading.Thread(target=publisher.run, args=(stop,), name="forward", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    left = -1
    while time.monotonic() < deadline and not stop.is_set():
        left = publisher.outbox.depth()["outbox_depth"]
        if left == 0:
            break
        time.sleep(0.2)
    stop.set()
    thread.join(15)
    state = forward_status(store) or {}
    if left != 0:
        shown = publisher.state.snapshot()
        error = shown["last_error"] or "timed out"
        if shown["standby_for"]:  # one publisher per store: the other one sends it
            error = f"timed out while {shown['standby_for']} publishes the outbox"
        err.print(f"error: {left} outbox entries left: {error}", markup=False, highlight=False)
        raise typer.Exit(1)
    out.print(f"outbox empty ({state.get('last_published_at') or 'nothing to publish'})")
