"""``spool_filling``: a local spool past 80 % is announced on the channels at once, without
the store (which is away: that is why the spool fills), recorded in the store once it is
back without being announced twice, and resolved when the spool is below the level."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from factorysync.alerts import monitor
from factorysync.alerts.channels import WebhookChannel
from factorysync.alerts.monitor import AlertMonitor
from factorysync.engine import events
from factorysync.store.schema import alerts as alerts_t
from factorysync.store.store import Store
from tests.alerts.conftest import Webhook
from tests.waiting import wait_until

SPOOL = "/var/lib/factorysync/spool/spool-line-a.sqlite"


def level(filling: bool, used_mb: int) -> events.SpoolLevel:
    return events.SpoolLevel(SPOOL, filling, used_mb * 2**20, 1024 * 2**20,
                             {"press-1": 120_000, "oven-2": 4_000})  # fmt: skip


@pytest.fixture
def hook() -> Iterator[Webhook]:
    receiver = Webhook()
    yield receiver
    receiver.close()
    monitor.forget_spools()


def alerts(store: Store) -> list[tuple[str, str, str, str | None]]:
    with store.connect() as conn:
        found = conn.execute(
            select(
                alerts_t.c.source_id, alerts_t.c.rule, alerts_t.c.state, alerts_t.c.notified_state
            ).order_by(alerts_t.c.source_id)
        ).all()
    return [tuple(a) for a in found]  # type: ignore[misc]


def test_a_filling_spool_is_announced_at_once_and_recorded_once_the_store_is_back(
    store: Store, hook: Webhook
) -> None:
    channel = WebhookChannel(hook.url, 5, "UTC")
    watcher = AlertMonitor(store, channels=[channel], retry_delays=(0.1,))

    events.publish_spool(level(True, 830))  # the realtime service's spool crossed 80 %
    # The store cannot take the alert: the monitor announces it on its own.
    assert watcher.announce_spools() == 2
    assert hook.events() == ["alert.opened", "alert.opened"]
    opened = {b["alert"]["source_id"]: b["alert"] for b in hook.bodies}
    assert opened["press-1"]["rule"] == "spool_filling"
    assert "81% full" in opened["press-1"]["message"]
    assert "120000 message(s) of press-1" in opened["press-1"]["message"]
    assert watcher.announce_spools() == 0  # once

    # The store is back: the alerts are recorded as announced, and not sent again.
    watcher.check()
    assert alerts(store) == [
        ("oven-2", "spool_filling", "open", "open"),
        ("press-1", "spool_filling", "open", "open"),
    ]
    assert watcher.deliver() == 0 and len(hook.bodies) == 2

    # Drained below the level: resolved, and that is announced.
    events.publish_spool(level(False, 300))
    watcher.check()
    assert {a[2] for a in alerts(store)} == {"resolved"}
    assert watcher.deliver() == 2
    wait_until(lambda: hook.events().count("alert.resolved") == 2, what="two resolutions")


def test_a_spool_that_filled_and_drained_between_checks_is_still_recorded(
    store: Store, hook: Webhook
) -> None:
    watcher = AlertMonitor(store, channels=[WebhookChannel(hook.url, 5, "UTC")])
    events.publish_spool(level(True, 900))
    events.publish_spool(level(False, 100))
    watcher.check()
    assert {(a[0], a[2]) for a in alerts(store)} == {
        ("press-1", "resolved"),
        ("oven-2", "resolved"),
    }
    watcher.check()  # nothing left to do for that spool
    assert len(alerts(store)) == 2
