"""A source that fails 3 times in a row raises one alert, announced on a real webhook
receiver and a real SMTP server; its recovery announces the resolution on both."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from factorysync.alerts import records
from factorysync.alerts.monitor import AlertMonitor
from factorysync.engine.runner import Runner
from factorysync.store.store import Store
from tests.alerts.conftest import Mailbox, Webhook, file_source
from tests.conftest import closed_port
from tests.waiting import wait_until


def channels_on(store: Store, webhook_url: str, smtp_port: int | None) -> None:
    # A generous timeout: the receivers run in this process, on a possibly busy machine.
    update = {"alert_webhook_url": webhook_url, "alert_webhook_timeout_s": 60.0}
    if smtp_port is not None:
        update |= {
            "alert_smtp_host": "127.0.0.1",
            "alert_smtp_port": smtp_port,
            "alert_email_from": "factorysync@plant.example",
            "alert_email_to": "ot-oncall@plant.example, it@plant.example",
        }
    store.settings = store.settings.model_copy(update=update)


def test_three_failures_alert_and_recovery_resolves(
    store: Store, data_dir: Path, webhook: Webhook, mailbox: Mailbox
) -> None:
    path = file_source(store, data_dir)
    channels_on(store, webhook.url, mailbox.port)
    monitor = AlertMonitor(store, retry_delays=(0.1,))
    monitor.start()
    try:
        runner = Runner(store)
        assert runner.sync("press_line").sync_status == "success"
        path.write_text('[{"id": 1, "qty": ', encoding="utf-8")  # a truncated export
        for attempt in (1, 2):
            assert runner.sync("press_line").sync_status == "failed"
            with store.connect() as conn:
                assert records.list_alerts(conn) == [], f"alert after {attempt} failure(s)"
        assert runner.sync("press_line").sync_status == "failed"

        wait_until(lambda: webhook.bodies, what="the webhook POST")
        wait_until(lambda: mailbox.messages, what="the e-mail")
        opened = webhook.bodies[0]
        assert opened["event"] == "alert.opened"
        assert webhook.paths == ["/hooks/plant-alerts"]
        alert = opened["alert"]
        assert alert["source_id"] == "press_line"
        assert alert["rule"] == "consecutive_failures"
        assert alert["severity"] == "critical" and alert["state"] == "open"
        assert "3 failed runs in a row" in alert["message"]
        assert opened["plant_timezone"] == "Asia/Jakarta"
        mail = mailbox.messages[0]
        assert mail["Subject"] == "[factorysync] CRITICAL: consecutive_failures on press_line"
        assert mail["From"] == "factorysync@plant.example"
        assert mailbox.recipients[0] == ["ot-oncall@plant.example", "it@plant.example"]
        body = mail.get_payload()
        assert "3 failed runs in a row" in body and "WIB" in body  # times in the plant's zone

        # A fourth failure counts on the same alert and announces nothing new.
        assert runner.sync("press_line").sync_status == "failed"
        with store.connect() as conn:
            alerts = records.list_alerts(conn)
        assert len(alerts) == 1 and alerts[0]["occurrences"] == 2
        assert "4 failed runs in a row" in alerts[0]["message"]

        path.write_text('[{"id": 1, "qty": 5}]', encoding="utf-8")
        assert runner.sync("press_line").sync_status == "success"
        wait_until(lambda: len(webhook.bodies) >= 2, what="the resolve POST")
        wait_until(lambda: len(mailbox.messages) >= 2, what="the resolve e-mail")
        assert webhook.events() == ["alert.opened", "alert.resolved"]
        resolved = webhook.bodies[1]["alert"]
        assert resolved["state"] == "resolved" and resolved["resolved_at"]
        assert resolved["id"] == alert["id"]
        assert mailbox.subjects()[1] == "[factorysync] RESOLVED: consecutive_failures on press_line"
    finally:
        monitor.stop()
    assert monitor.delivered == 4 and monitor.failed == 0


def test_failed_delivery_is_logged_without_the_url_and_never_fails_a_sync(
    store: Store, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = file_source(store, data_dir)
    with closed_port() as port:
        secret_url = f"http://127.0.0.1:{port}/hooks/T0KEN-s3cr3t"  # nobody listens
        channels_on(store, secret_url, None)
        path.write_text("not json", encoding="utf-8")
        runner = Runner(store)
        for _ in range(3):
            assert runner.sync("press_line").sync_status == "failed"
        monitor = AlertMonitor(store, retry_delays=(0.01, 0.01))
        with caplog.at_level(logging.ERROR, logger="factorysync.alerts"):
            assert monitor.deliver() == 1
    assert monitor.failed == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not delivered after 3 attempt(s): webhook: ConnectError" in logged
    assert "T0KEN" not in logged and "127.0.0.1" not in logged
    # Claimed once: the next round does not send it again.
    assert monitor.deliver() == 0


def test_two_monitors_on_one_store_send_each_notice_once(
    store: Store, data_dir: Path, webhook: Webhook
) -> None:
    path = file_source(store, data_dir)
    channels_on(store, webhook.url, None)
    path.write_text("[", encoding="utf-8")
    for _ in range(3):
        Runner(store).sync("press_line")
    first, second = AlertMonitor(store), AlertMonitor(store)
    assert first.deliver() + second.deliver() == 1
    assert webhook.events() == ["alert.opened"]
