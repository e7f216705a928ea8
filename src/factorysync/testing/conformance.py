"""The conformance suite: what every connection type does, checked against a real medium.

A connection type (built in or a plugin) passes it by calling :func:`check_conformance`
from its tests, under any test runner: the function raises :class:`ConformanceError` (an
AssertionError) naming the type, the step and what went wrong, and returns the steps it
ran. The caller supplies a :class:`Medium`: the type's name, a ``connection_config`` that
reaches the medium, and how to write rows into it. The suite writes rows of a
:class:`Sample` (production counts by default), builds connectors through the registry,
as runs do, and checks, by capability (see :mod:`factorysync.connectors.base`):

every type
    *bad config*: the medium's config is valid, and one with an unknown key is refused by
    ``validate_connection_config`` and ``build_connector``, naming that key;
    *check*: ``check()`` returns a message and a latency.
polled types (``polls``)
    *discover*: the fields of the rows, with their kinds and samples of their values;
    *full read*: every row once, as written, in batches of at most ``batch_size``;
    *incremental resume*: see below;
    *columnar read* (types with ``columnar``): the full read and the incremental resume
    again, through Arrow batches (as the engine reads when the mapping allows).
other types
    *read refused*: ``read()`` raises a ConnectorError saying why (what ``source sync``
    of such a source shows).
streaming types (``streams``)
    *discover*, as above, of what the medium holds;
    *subscribe*: ``subscribe(sink, stop)`` in a thread says it is subscribed
    (``sink.status(None, subscribed=...)``), hands every row written after that to the
    sink (a :class:`~factorysync.testing.sink.MemorySink`), only rows of the medium, and
    returns once ``stop`` is set.
pushed types (``pushes``)
    *push*: rows written the way the type receives them (one, then several) all arrive
    (``Medium.received``).

Incremental resume. A connector may narrow a read by its own state (files: a marker per
file) or by the stored cursor (databases: ``WHERE cursor >= :value``; APIs: the
``{{cursor}}`` parameter). Every built-in type that resumes satisfies, and a reader that
ignores ``ReadRequest.state`` and ``ReadRequest.cursor_value`` fails, this rule: the
first incremental read returns every row once; read again from the state it returned
and the newest cursor value, with nothing new in the medium, it returns only rows at or
after that cursor (ties are read again; a file that did not change, nothing); after new
rows are written it returns each of them once (and may return older ones of the same
unit: a file that changed is read whole); and read again from that read's state and the
new newest cursor, only rows at or after it. Each read is made by a new connector, as
each run makes one, and gets the state back as the store keeps it (JSON), so state kept
in the instance does not count and state that cannot be stored fails. A type or config that
cannot narrow (a command, an API without ``{{cursor}}``) declares
``Medium(resumes=False)`` and must then return every row of the medium on every read:
the engine filters by the cursor.

Example, in a plugin's tests::

    from factorysync.settings import Settings
    from factorysync.testing.conformance import Medium, check_conformance

    def test_weather_conforms(tmp_path):
        station = FakeStation()  # the plugin's own test double of a weather station
        medium = Medium("weather", {"url": station.url}, write=station.add_rows)
        steps = check_conformance(medium, settings=Settings(data_roots=str(tmp_path)))
        assert "incremental resume" in steps

The suite's parts: what it is given and reports (:mod:`.conformance_medium`), one run's
rows and reads (:mod:`.conformance_run`), and the steps (:mod:`.conformance_polled`,
:mod:`.conformance_streams`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from factorysync.connectors.base import Connector
from factorysync.settings import Settings
from factorysync.testing import conformance_polled as polled
from factorysync.testing import conformance_streams as streams
from factorysync.testing.conformance_medium import (
    BAD_CONFIG,
    CHECK,
    COLUMNAR_READ,
    DISCOVER,
    FULL_READ,
    INCREMENTAL,
    PUSH,
    READ_REFUSED,
    SETUP,
    SUBSCRIBE,
    ConformanceError,
    Medium,
    Sample,
    production_row,
)
from factorysync.testing.conformance_run import Run
from factorysync.testing.sink import MemorySink

__all__ = [
    "BAD_CONFIG",
    "CHECK",
    "COLUMNAR_READ",
    "DISCOVER",
    "FULL_READ",
    "INCREMENTAL",
    "PUSH",
    "READ_REFUSED",
    "SETUP",
    "SUBSCRIBE",
    "ConformanceError",
    "Medium",
    "MemorySink",
    "Sample",
    "check_conformance",
    "production_row",
]
Step = tuple[str, Callable[[], None]]


def check_conformance(
    medium: Medium,
    *,
    settings: Settings | None = None,
    make_connector: Callable[[], Connector] | None = None,
    sample: Sample | None = None,
    batch_size: int = 7,
    patience: float = 60.0,
) -> list[str]:
    """Check the connection type of ``medium`` (see the module docstring); return the
    steps run, in order. Raises ConformanceError at the first step that fails.

    Connectors are built through the registry with ``settings`` (default: the process's)
    and ``batch_size`` records per batch, or by ``make_connector``. ``patience``: seconds
    to wait for streamed or pushed rows and for a stream to stop."""
    run = Run(medium, settings, make_connector, sample or Sample(), batch_size, patience)
    try:
        run.write(run.sample.size)
        steps = plan(run, run.make())
    except ConformanceError:
        raise
    except Exception as exc:
        raise run.fail(SETUP, f"raised {type(exc).__name__}: {exc}") from exc
    for step, check in steps:
        try:
            check()
        except ConformanceError:
            raise
        except Exception as exc:
            raise run.fail(step, f"raised {type(exc).__name__}: {exc}") from exc
    return [step for step, _ in steps]


def plan(run: Run, connector: Connector) -> list[Step]:
    """The steps for what the type does (see the module docstring)."""
    cls = type(connector)
    if not (cls.polls or cls.streams or cls.pushes):
        raise run.fail(SETUP, "it neither polls, streams nor pushes")
    steps: list[Step] = [
        (BAD_CONFIG, partial(polled.bad_config, run)),
        (CHECK, partial(polled.check, run)),
    ]
    if cls.polls:
        steps += [
            (DISCOVER, partial(polled.discover, run)),
            (FULL_READ, partial(polled.full_read, run)),
            (INCREMENTAL, partial(polled.incremental, run)),
        ]
        if connector.columnar:
            steps.append((COLUMNAR_READ, partial(polled.columnar_read, run)))
    else:
        steps.append((READ_REFUSED, partial(polled.read_refused, run)))
    if cls.streams:
        if not cls.polls:
            steps.append((DISCOVER, partial(polled.discover, run)))
        steps.append((SUBSCRIBE, partial(streams.subscribe, run)))
    if cls.pushes:
        steps.append((PUSH, partial(streams.push, run)))
    return steps
