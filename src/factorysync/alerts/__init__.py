"""Alerts: rules that watch the sources, alert records, and the channels that announce them.

    rules.py     the conditions: consecutive failures, staleness, rejected rows, realtime
                 silence, schema changes, a filling spool; evaluated when a run ends,
                 when a spool crosses its alert level, and periodically
    records.py   the ``alerts`` table: open (de-duplicated), acknowledge, resolve, list
    channels.py  webhook (JSON POST) and e-mail (SMTP), configured by FACTORYSYNC_ALERT_*
    monitor.py   the background thread that runs the periodic rules and delivers
                 notifications, so a slow channel never holds up a sync

An alert is ``open`` while its condition holds, ``acknowledged`` once a person has seen
it, and ``resolved`` when the condition clears. While an alert is not resolved, the same
condition on the same source counts ``occurrences`` on it instead of making a new alert.
Opening and resolving are announced once each on every configured channel.

The run-driven rules listen to the engine's run-finished events
(:mod:`factorysync.engine.events`): importing this package subscribes them, so every
process that reaches alerts (the API, the console, the services the CLI calls) evaluates
each run it finishes, in a transaction of its own right after the run's commit.
"""

from __future__ import annotations

from factorysync.engine import events

RULES = (
    "consecutive_failures",
    "stale",
    "rejected_rows",
    "realtime_silence",
    "schema_change",
    "spool_filling",
)
STATES = ("open", "acknowledged", "resolved")


def _on_run_finished(event: events.RunFinished) -> None:
    from factorysync.alerts import monitor

    monitor.run_finished(event)


def _on_spool_level(event: events.SpoolLevel) -> None:
    from factorysync.alerts import monitor

    monitor.spool_level(event)


events.subscribe(_on_run_finished)
events.subscribe_spool(_on_spool_level)
