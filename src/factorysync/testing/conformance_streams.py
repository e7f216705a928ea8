"""The steps of streaming and pushed types: *subscribe* and *push* (see
:mod:`factorysync.testing.conformance`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from factorysync.testing.conformance_medium import PUSH, SUBSCRIBE, ConformanceError, Row
from factorysync.testing.conformance_run import Run
from factorysync.testing.sink import MemorySink

POLL_S = 0.05


def subscribe(run: Run) -> None:
    step, connector, sink = SUBSCRIBE, run.make(), MemorySink()
    stop = threading.Event()
    raised: list[BaseException] = []

    def listen() -> None:
        try:
            connector.subscribe(sink, stop)
        except BaseException as exc:  # reported below, with the step
            raised.append(exc)

    def arrived(keys: set[Any]) -> bool:
        got = set()
        for record in sink.records():
            try:
                got.add(run.row(step, record)[run.sample.key])
            except ConformanceError:
                continue  # reported by the final check
        return keys <= got

    def ended() -> str:
        why = f"raised {raised[0]!r}" if raised else "returned"
        return f"subscribe() {why} before stop was set; statuses: {sink.statuses}"

    # A daemon: a stream that never stops fails the step, not the process's exit.
    thread = threading.Thread(target=listen, name=f"conformance-{connector.type_name}", daemon=True)
    thread.start()
    try:
        wait(lambda: sink.subscribed.is_set() or not thread.is_alive(), run.patience)
        if not thread.is_alive():
            raise run.fail(step, ended())
        if not sink.subscribed.is_set():
            raise run.fail(
                step,
                f"not subscribed after {run.patience:g} s (a stream says so with "
                f"sink.status(None, subscribed=...)); statuses: {sink.statuses}",
            )
        wanted = {row[run.sample.key] for row in run.write(run.sample.more)}
        wait(lambda: arrived(wanted) or not thread.is_alive(), run.patience)
        if not thread.is_alive():
            raise run.fail(step, ended())
        if not arrived(wanted):
            got = {run.row(step, r)[run.sample.key] for r in sink.records()}
            raise run.fail(
                step,
                f"rows written once it was subscribed did not arrive within "
                f"{run.patience:g} s: {run.keys(wanted - got)}; statuses: {sink.statuses}",
            )
    finally:
        stop.set()
        thread.join(run.patience)
    if thread.is_alive():
        raise run.fail(step, f"still running {run.patience:g} s after stop was set")
    sink.close()
    sink.drain()
    if raised:
        raise run.fail(step, f"subscribe() raised {raised[0]!r} when stopped")
    errors = [m.error for m in sink.messages if m.error is not None]
    if errors:
        raise run.fail(step, f"{len(errors)} message(s) refused: {errors[0]}")
    if sink.late:
        raise run.fail(step, f"{sink.late} message(s) put after subscribe() returned")
    rows = [run.row(step, record) for record in sink.records()]
    run.known(step, rows, "the stream", repeats=True)  # at least once: repeats allowed


def push(run: Run) -> None:
    received = run.medium.received
    if received is None:
        raise run.fail(PUSH, "the medium does not say what arrived (Medium.received)")
    run.write(1)
    run.write(run.sample.more - 1)

    def arrived() -> list[Row]:
        return [run.row(PUSH, row, decode=False) for row in received()]

    wait(lambda: set(run.written) <= {row[run.sample.key] for row in arrived()}, run.patience)
    run.every(PUSH, arrived(), "the destination")


def wait(condition: Callable[[], bool], patience: float) -> bool:
    """Whether ``condition()`` held within ``patience`` seconds (polled)."""
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True
