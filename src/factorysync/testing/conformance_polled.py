"""The steps of every type (*bad config*, *check*) and of polled types (*discover*,
*full read*, *incremental resume*, *columnar read*), and the *read refused* of the
others (see :mod:`factorysync.testing.conformance`)."""

from __future__ import annotations

import math
from typing import Any

from factorysync.connectors.base import CheckResult, ReadRequest, describe_records
from factorysync.connectors.registry import build_connector, validate_connection_config
from factorysync.errors import ConfigError, ConnectorError
from factorysync.kinds import infer_kind, merge_kinds
from factorysync.testing.conformance_medium import (
    BAD_CONFIG,
    CHECK,
    COLUMNAR_READ,
    DISCOVER,
    FULL_READ,
    INCREMENTAL,
    READ_REFUSED,
    Row,
)
from factorysync.testing.conformance_run import Run

UNKNOWN_KEY = "no_such_setting"
DISCOVER_LIMIT = 10


def bad_config(run: Run) -> None:
    m, settings = run.medium, run.context.settings
    problems = validate_connection_config(m.connection_type, m.config, settings)
    if problems:
        raise run.fail(BAD_CONFIG, f"the medium's own config is refused: {problems}")
    bad = {**m.config, UNKNOWN_KEY: 1}
    problems = validate_connection_config(m.connection_type, bad, settings)
    if len(problems) != 1 or not problems[0].startswith(f"{UNKNOWN_KEY}: "):
        raise run.fail(
            BAD_CONFIG,
            f"a config with the unknown key {UNKNOWN_KEY!r} gave {problems!r}, "
            "not one problem naming the key",
        )
    try:
        build_connector(m.connection_type, bad, m.auth, run.context)
    except ConfigError as exc:
        if not any(p.startswith(f"{UNKNOWN_KEY}: ") for p in exc.problems):
            raise run.fail(BAD_CONFIG, f"building refused it without naming it: {exc}") from None
    else:
        raise run.fail(BAD_CONFIG, f"a connector was built with {UNKNOWN_KEY!r} in its config")


def check(run: Run) -> None:
    result = run.make().check()
    if not isinstance(result, CheckResult):
        raise run.fail(CHECK, f"returned {result!r}, not a CheckResult")
    if not isinstance(result.message, str) or not result.message.strip():
        raise run.fail(CHECK, f"the message is empty: {result.message!r}")
    latency = result.latency_ms
    if not isinstance(latency, int | float) or not math.isfinite(latency) or latency < 0:
        raise run.fail(CHECK, f"latency_ms is {latency!r}")


def discover(run: Run) -> None:
    fields = run.make().discover(limit=DISCOVER_LIMIT)
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise run.fail(DISCOVER, f"a field named twice: {names}")
    rows = list(run.written.values())
    declared = run.medium.fields
    kinds = declared or {f.name: f.kind for f in describe_records(rows)}
    if set(names) != set(kinds):
        raise run.fail(DISCOVER, f"found fields {sorted(names)}; expected {sorted(kinds)}")
    for info in fields:
        expected = kinds[info.name]
        if info.kind != expected:
            raise run.fail(DISCOVER, f"field {info.name!r} is {info.kind!r}; expected {expected!r}")
        if declared is not None:
            stray = [s for s in info.samples if merge_kinds(expected, infer_kind(s)) != expected]
            if stray:
                raise run.fail(DISCOVER, f"samples {stray!r} of {info.name!r} are no {expected}")
            continue
        values = [row.get(info.name) for row in rows]
        if not info.samples and any(v is not None for v in values):
            raise run.fail(DISCOVER, f"no sample values of field {info.name!r}")
        stray = [s for s in info.samples if s not in values]
        if stray:
            raise run.fail(
                DISCOVER, f"samples {stray!r} of {info.name!r} are not values of the rows"
            )


def full_read(run: Run) -> None:
    rows, _ = run.read(FULL_READ, ReadRequest())
    run.every(FULL_READ, rows, "a full read")


def incremental(run: Run) -> None:
    resume(run, INCREMENTAL, columnar=False)


def columnar_read(run: Run) -> None:
    """The full read and the incremental resume again, as the engine reads when its
    mapping can take Arrow batches."""
    rows, _ = run.read(COLUMNAR_READ, ReadRequest(columnar=True))
    run.every(COLUMNAR_READ, rows, "a full columnar read")
    resume(run, COLUMNAR_READ, columnar=True)


def resume(run: Run, step: str, *, columnar: bool) -> None:
    """The incremental rule (see the module docstring), from the medium as it is."""

    def resumed(state: dict[str, Any] | None, value: Any) -> ReadRequest:
        return ReadRequest(
            state=state or {},
            strategy="incremental",
            cursor_path=run.sample.cursor,
            cursor_value=value,
            columnar=columnar,
        )

    rows, state = run.read(step, resumed(None, None))
    run.every(step, rows, "the first incremental read")
    if not run.medium.resumes:
        rows, _ = run.read(step, resumed(state, run.newest()))
        run.every(step, rows, "a resumed read of a type that reads everything")
        run.write(run.sample.more)
        rows, _ = run.read(step, resumed(state, run.newest()))
        run.every(step, rows, "a resumed read after new rows")
        return
    newest = run.newest()
    rows, later = run.read(step, resumed(state, newest))
    only_from(run, step, rows, newest, "with nothing new in the medium")
    state = later or state
    new = run.write(run.sample.more)
    rows, later = run.read(step, resumed(state, newest))
    missing = {row[run.sample.key] for row in new} - run.known(
        step, rows, "a resumed read after new rows"
    )
    if missing:
        raise run.fail(step, f"resumed after new rows were written, it missed {run.keys(missing)}")
    state = later or state
    newest = run.newest()
    rows, _ = run.read(step, resumed(state, newest))
    only_from(run, step, rows, newest, "from the state of the read that took the new rows")


def only_from(run: Run, step: str, rows: list[Row], value: Any, when: str) -> None:
    """Resumed at cursor ``value``: only rows at or after it, each once."""
    cursor = run.sample.cursor
    keys = run.known(step, rows, "a resumed read")
    before = [key for key in keys if run.written[key][cursor] < value]
    if before:
        raise run.fail(
            step,
            f"resumed {when} (ReadRequest.state as its last read left it, cursor_value "
            f"{cursor} = {value!r}), it returned {len(before)} row(s) from before the "
            f"cursor ({run.keys(before)}): it ignores its saved state and cursor. A type "
            "that cannot narrow its reads declares Medium(resumes=False)",
        )


def read_refused(run: Run) -> None:
    try:
        batches = list(run.make().read(ReadRequest()))
    except ConnectorError:
        return
    except Exception as exc:
        raise run.fail(
            READ_REFUSED,
            f"read() raised {type(exc).__name__} ({exc}); a type that does not poll "
            "refuses reads with a ConnectorError saying why",
        ) from exc
    raise run.fail(
        READ_REFUSED, f"read() gave {len(batches)} batch(es) though the type does not poll"
    )
