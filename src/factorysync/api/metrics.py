"""Prometheus metrics (text format at ``/metrics``).

Run metrics are read from the store when Prometheus scrapes, so they count the runs of
every process that syncs (scheduler, CLI, API) and survive restarts: runs by source and
status, run duration, rows by action, seconds since each source's last success, runs in
progress, scheduler lag (polled sources), sources by status, failing sources and the age
of each realtime and push source's latest data. The history table is read incrementally:
after the first scrape only new rows and rows still running are fetched.

Process metrics are observed where they happen: HTTP request latency (by the API's
middleware) and realtime messages and latency (by the realtime ingest).

Spool metrics are read from the spool files of this host at scrape time (messages by
source, bytes and the bound of each file), and so is nothing of the store: they are
served while the store is unreachable too, with ``factorysync_store_up`` 0 and the store's
metrics left out.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Connection, or_, select
from sqlalchemy.exc import SQLAlchemyError

from factorysync import services
from factorysync.realtime.spools import local_spools
from factorysync.store.db import store_unreachable
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow

PROCESS = CollectorRegistry(auto_describe=True)
HTTP_LATENCY = Histogram(
    "factorysync_http_request_duration_seconds",
    "HTTP request latency by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=PROCESS,
)
REALTIME_MESSAGES = Counter(
    "factorysync_realtime_messages",
    "Realtime messages received, by source.",
    ["source_id"],
    registry=PROCESS,
)
REALTIME_LATENCY = Histogram(
    "factorysync_realtime_latency_seconds",
    "Delay from a realtime message's own timestamp to its commit in the store.",
    ["source_id"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=PROCESS,
)
RUN_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
ROW_ACTIONS = ("processed", "inserted", "updated", "deleted", "rejected")


class RunTotals:
    """Totals over the history table, brought up to date by :meth:`update`."""

    def __init__(self) -> None:
        self.watermark = 0  # highest history id seen
        self.running: set[int] = set()  # ids seen while running: fetched again
        self.runs: dict[tuple[str, str], int] = defaultdict(int)
        self.rows: dict[tuple[str, str], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = {}
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def update(self, conn: Connection) -> None:
        with self._lock:
            new = or_(hist_t.c.id > self.watermark, hist_t.c.id.in_(sorted(self.running)))
            stmt = (
                select(
                    hist_t.c.id,
                    hist_t.c.source_id,
                    hist_t.c.sync_status,
                    hist_t.c.sync_duration_ms,
                    *(hist_t.c[f"records_{a}"] for a in ROW_ACTIONS),
                )
                .where(new)
                .order_by(hist_t.c.id)
                .execution_options(yield_per=5000)
            )
            for row in conn.execute(stmt):
                self.watermark = max(self.watermark, row.id)
                if row.sync_status == "running":
                    self.running.add(row.id)
                    continue
                self.running.discard(row.id)
                self._count(row)

    def _count(self, row: Any) -> None:
        sid = row.source_id
        self.runs[(sid, row.sync_status)] += 1
        for action in ROW_ACTIONS:
            self.rows[(sid, action)] += int(getattr(row, f"records_{action}") or 0)
        seconds = (row.sync_duration_ms or 0) / 1000
        counts = self.buckets.setdefault(sid, [0] * (len(RUN_BUCKETS) + 1))
        for i, bound in enumerate(RUN_BUCKETS):
            if seconds <= bound:
                counts[i] += 1
        counts[-1] += 1
        self.seconds[sid] += seconds

    def families(self) -> Iterator[Metric]:
        with self._lock:
            runs = CounterMetricFamily(
                "factorysync_runs",
                "Finished sync runs by source and status.",
                labels=["source_id", "status"],
            )
            for (sid, status), n in sorted(self.runs.items()):
                runs.add_metric([sid, status], n)
            rows = CounterMetricFamily(
                "factorysync_rows",
                "Records by source and action (processed, inserted, updated, deleted, rejected).",
                labels=["source_id", "action"],
            )
            for (sid, action), n in sorted(self.rows.items()):
                rows.add_metric([sid, action], n)
            duration = HistogramMetricFamily(
                "factorysync_run_duration_seconds",
                "Duration of finished sync runs.",
                labels=["source_id"],
            )
            for sid, counts in sorted(self.buckets.items()):
                bounds = [*(str(b) for b in RUN_BUCKETS), "+Inf"]
                duration.add_metric(
                    [sid], list(zip(bounds, counts, strict=True)), sum_value=self.seconds[sid]
                )
        yield from (runs, rows, duration)


class StoreCollector(Collector):
    """Collects the run and registry metrics of one store at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.totals = RunTotals()

    def collect(self) -> Iterator[Metric]:
        with self.store.connect() as conn:
            self.totals.update(conn)
            sources = conn.execute(select(reg_t.c.source_id, reg_t.c.last_sync)).all()
        summary = services.status_summary(self.store)
        yield from self.totals.families()
        now = utcnow()
        since = GaugeMetricFamily(
            "factorysync_seconds_since_last_success",
            "Seconds since each source's last successful sync (sources that never "
            "succeeded are left out).",
            labels=["source_id"],
        )
        for sid, last in sorted(sources, key=lambda r: r.source_id):
            if last is not None:
                since.add_metric([sid], max((now - last).total_seconds(), 0.0))
        yield since
        by_status = GaugeMetricFamily(
            "factorysync_sources", "Registered sources by status.", labels=["status"]
        )
        for status, n in sorted(summary["by_status"].items()):
            by_status.add_metric([status], n)
        yield by_status
        yield GaugeMetricFamily(
            "factorysync_runs_in_progress",
            "Runs in progress (all processes).",
            value=summary["runs_in_progress"],
        )
        yield GaugeMetricFamily(
            "factorysync_sources_failing",
            "Active sources whose last run failed (before the circuit opens).",
            value=summary["failing"],
        )
        failures = GaugeMetricFamily(
            "factorysync_source_consecutive_failures",
            "Consecutive failed runs of each failing active source.",
            labels=["source_id"],
        )
        for f in summary["failing_sources"]:
            failures.add_metric([f["source_id"]], f["consecutive_failures"])
        yield failures
        yield GaugeMetricFamily(
            "factorysync_scheduler_lag_seconds",
            "How late the most overdue polled source is (subscription and push sources "
            "have no schedule).",
            value=summary["scheduler_lag_s"],
        )
        message_age = GaugeMetricFamily(
            "factorysync_realtime_last_message_age_seconds",
            "Seconds since the latest data of each subscription (MQTT, OPC UA) and push "
            "source was committed (sources without data yet are left out).",
            labels=["source_id"],
        )
        for r in summary["realtime"]:
            if r["last_message_age_s"] is not None:
                message_age.add_metric([r["source_id"]], r["last_message_age_s"])
        yield message_age
        lag_messages = GaugeMetricFamily(
            "factorysync_forward_lag_messages",
            "Central store: messages of each site waiting on the stream, not applied yet.",
            labels=["site"],
        )
        lag_seconds = GaugeMetricFamily(
            "factorysync_forward_lag_seconds",
            "Central store: while a site's messages wait, seconds since the last applied "
            "one was published (0 when none waits).",
            labels=["site"],
        )
        for lag in summary.get("forward_lag", []):
            lag_messages.add_metric([lag["site"]], lag["lag_messages"])
            lag_seconds.add_metric([lag["site"]], lag["lag_seconds"])
        yield from (lag_messages, lag_seconds)
        workers = [w for w in summary["workers"] if w["status"] == "alive"]
        yield GaugeMetricFamily(
            "factorysync_workers_alive",
            "Scheduler processes (run, worker) with a recent heartbeat (PostgreSQL store).",
            value=len(workers),
        )
        families = {
            "leases": GaugeMetricFamily(
                "factorysync_worker_leases",
                "Sources each worker holds a lease on (runs and realtime subscriptions).",
                labels=["worker_id", "host"],
            ),
            "running": GaugeMetricFamily(
                "factorysync_worker_running", "Runs in progress per worker.",
                labels=["worker_id", "host"],
            ),
            "max_concurrent": GaugeMetricFamily(
                "factorysync_worker_max_concurrent", "Runs at once each worker allows.",
                labels=["worker_id", "host"],
            ),
            "heartbeat_age": GaugeMetricFamily(
                "factorysync_worker_heartbeat_age_seconds",
                "Seconds since each worker's last heartbeat.",
                labels=["worker_id", "host"],
            ),
        }  # fmt: skip
        for w in workers:
            labels = [w["worker_id"], w["host"]]
            families["leases"].add_metric(labels, w["leases"])
            families["running"].add_metric(labels, w["running"])
            families["max_concurrent"].add_metric(labels, w["max_concurrent"])
            age = max((now - w["heartbeat_at"]).total_seconds(), 0.0)
            families["heartbeat_age"].add_metric(labels, age)
        yield from families.values()


class SpoolCollector(Collector):
    """The local spools of this host, read at scrape time (no store needed)."""

    def __init__(self, store: Store) -> None:
        self.settings = store.settings

    def collect(self) -> Iterator[Metric]:
        labels = ["spool"]
        used = GaugeMetricFamily(
            "factorysync_spool_bytes",
            "Bytes the messages in each local spool file take (realtime and push data "
            "waiting for the store).",
            labels=labels,
        )
        bound = GaugeMetricFamily(
            "factorysync_spool_max_bytes",
            "The bound of each local spool file (FACTORYSYNC_SPOOL_MAX_MB); an alert opens "
            "at 80 %.",
            labels=labels,
        )
        messages = GaugeMetricFamily(
            "factorysync_spool_messages",
            "Messages waiting in the local spools for the store, by spool file and source.",
            labels=["spool", "source_id"],
        )
        limit = self.settings.spool_max_mb * 1024 * 1024
        for spool in local_spools(self.settings):
            name = spool.path.stem
            used.add_metric([name], spool.used_bytes)
            bound.add_metric([name], limit)
            for sid, held in sorted(spool.sources.items()):
                messages.add_metric([name, sid], held.messages)
        yield from (used, bound, messages)


class Metrics:
    """The metrics of one API app: process-wide ones, the host's spools, its store's."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StoreCollector(store))
        self.local = CollectorRegistry(auto_describe=False)
        self.local.register(SpoolCollector(store))

    def render(self) -> bytes:
        head = generate_latest(PROCESS) + generate_latest(self.local)
        try:
            stored = generate_latest(self.registry)
        except SQLAlchemyError as exc:
            if not store_unreachable(exc):
                raise
            return head + _store_up(0)
        return head + _store_up(1) + stored


def _store_up(value: int) -> bytes:
    return (
        b"# HELP factorysync_store_up Whether the store answered this scrape (its metrics "
        b"are left out when not).\n# TYPE factorysync_store_up gauge\n"
        + f"factorysync_store_up {value}\n".encode()
    )


def observe_http(method: str, route: str, status: int, started: float) -> None:
    HTTP_LATENCY.labels(method, route, str(status)).observe(time.perf_counter() - started)
