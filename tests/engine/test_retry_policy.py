"""One retry policy: the runner's attempts and the HTTP client's retries compose.

An API source whose server always fails transiently is asked ``1 + retries`` times in a
run (4 with the defaults), not ``retry_attempts × (1 + retries)`` (12); a transient
failure nobody retried yet gets the runner's ``retry_attempts``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from factorysync.connectors import registry as connector_registry
from factorysync.connectors.base import Batch, Connector, ReadRequest
from factorysync.connectors.file import FileConfig
from factorysync.engine.runner import Runner
from factorysync.errors import ConnectorFatal, ConnectorRetriable
from factorysync.retry import Reconnects, RetriesSpent, RetryPolicy
from factorysync.settings import Settings
from factorysync.store.store import Store
from tests.connectors.http_server import HttpServer, Reply, Request
from tests.engine.test_runner import json_source, register


@pytest.fixture
def fast(store: Store) -> Store:
    """The store, with retry back-off in milliseconds (the attempt counts are defaults)."""
    store.settings.retry_backoff_s = 0.01
    return store


def api_source(source_id: str, url: str, **config: Any) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": source_id.title(),
        "source_type": "api",
        "refresh_interval": 60,
        "connections": [{"connection_config": {"url": url, **config}}],
        "mappings": [{"target_table": source_id, "mapping_config": {"primary_key": ["id"]}}],
    }


def test_defaults_give_one_attempt_count_not_a_product() -> None:
    settings = Settings()
    assert (settings.retry_attempts, settings.retry_max_delay_s) == (3, 30.0)
    from factorysync.connectors.api import ApiConfig

    assert ApiConfig.model_fields["retries"].default == 3


@pytest.mark.parametrize("status", [503, 429])
def test_a_server_that_always_fails_is_asked_1_plus_retries_times(
    fast: Store, serve: Callable[..., HttpServer], status: int
) -> None:
    server = serve(lambda req: Reply(status, {"error": "maintenance window"}))
    register(fast, api_source("oee", server.url + "/oee"))
    result = Runner(fast).sync("oee")
    assert result.sync_status == "failed"
    assert "gave up after 4 attempts" in (result.error_message or "")
    # 1 + retries (3) requests in the run; the runner's 3 attempts do not multiply them.
    assert len(server.requests) == 4


def test_the_api_retries_setting_alone_sets_the_count(
    fast: Store, serve: Callable[..., HttpServer]
) -> None:
    server = serve(lambda req: Reply(502, "bad gateway"))
    register(fast, api_source("oee", server.url + "/oee", retries=1))
    assert Runner(fast).sync("oee").sync_status == "failed"
    assert len(server.requests) == 2


def test_a_recovering_server_is_served_within_the_run(
    fast: Store, serve: Callable[..., HttpServer]
) -> None:
    answers = iter([Reply(503, "busy"), Reply(503, "busy")])

    def app(req: Request) -> Reply:
        return next(answers, Reply(200, [{"id": 1}, {"id": 2}]))

    server = serve(app)
    register(fast, api_source("oee", server.url + "/oee"))
    result = Runner(fast).sync("oee")
    assert result.sync_status == "success", result.error_message
    assert result.records_inserted == 2
    # Two refusals and the check's success, then the read: no run-level attempt needed.
    assert len(server.requests) == 4


class FlakySource(Connector):
    """Fails its check with ``failure`` ``failures`` times, then serves one record."""

    type_name = "flakytest"
    config_model = FileConfig
    failures: ClassVar[int] = 0
    failure: ClassVar[type[Exception]] = ConnectorRetriable
    checks: ClassVar[int] = 0

    def _check(self) -> str:
        FlakySource.checks += 1
        if FlakySource.checks <= FlakySource.failures:
            raise FlakySource.failure(f"flaky (check {FlakySource.checks})")
        return "ok"

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        yield Batch([{"id": 1}])


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> type[FlakySource]:
    monkeypatch.setitem(connector_registry.BUILTIN, "command", f"{__name__}:FlakySource")
    FlakySource.checks = 0
    return FlakySource


def flaky_source(sid: str) -> dict[str, Any]:
    src = json_source(sid, Path("unused"), primary_key="id")
    src["source_type"] = "command"
    src["connections"][0]["connection_type"] = "command"
    return src


@pytest.mark.parametrize(
    ("failure", "failures", "checks", "status"),
    [
        (ConnectorRetriable, 2, 3, "success"),  # the third attempt succeeds
        (ConnectorRetriable, 5, 3, "failed"),  # retry_attempts in all
        (RetriesSpent, 5, 1, "failed"),  # the connector spent its retries already
        (ConnectorFatal, 5, 1, "failed"),  # nothing to retry
    ],
)
def test_the_runner_retries_what_no_one_retried(
    fast: Store,
    flaky: type[FlakySource],
    failure: type[Exception],
    failures: int,
    checks: int,
    status: str,
) -> None:
    flaky.failure, flaky.failures = failure, failures
    register(fast, flaky_source("flaky"))
    assert Runner(fast).sync("flaky").sync_status == status
    assert flaky.checks == checks


def test_policy_delays_grow_are_capped_and_jittered() -> None:
    low = RetryPolicy(attempts=5, backoff_s=1.0, max_delay_s=3.0, rand=lambda a, b: a)
    high = RetryPolicy(attempts=5, backoff_s=1.0, max_delay_s=3.0, rand=lambda a, b: b)
    assert [high.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]
    assert [low.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
    assert not high.gives_up(4) and high.gives_up(5)


def test_policy_tells_transient_from_spent_and_fatal() -> None:
    from sqlalchemy.exc import OperationalError

    policy = RetryPolicy(attempts=3)
    assert policy.retriable(ConnectorRetriable("timeout"))
    assert policy.retriable(OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert not policy.retriable(RetriesSpent("gave up after 4 attempts"))
    assert not policy.retriable(ConnectorFatal("HTTP 404"))
    assert isinstance(RetriesSpent("x"), ConnectorRetriable)  # still retriable by nature


def test_reconnect_waits_double_while_connections_keep_failing() -> None:
    waits = Reconnects(first_s=1.0, max_s=8.0, healthy_s=30.0)
    assert [waits.after(0.1) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_connection_that_stayed_up_starts_the_waits_again() -> None:
    """A subscription that ran for an hour and then dropped is not the tenth failing
    retry of last week's outage: it reconnects after the first wait."""
    waits = Reconnects(first_s=1.0, max_s=30.0, healthy_s=30.0)
    for _ in range(10):
        waits.after(0.5)
    assert waits.after(0.5) == 30.0
    assert waits.after(3600.0) == 1.0
    assert waits.after(0.5) == 2.0
    assert waits.after(29.9) == 4.0  # not up long enough to count as healthy
