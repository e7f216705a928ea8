"""``status``: the store, sources by status, failing ones, runs in progress, scheduler lag,
live realtime and push sources, and workers, in one look."""

from __future__ import annotations

from factorysync import services
from factorysync.cli.base import JsonOpt, ago, live_state, open_store, out, print_json


def status(json: JsonOpt = False) -> None:
    """Counts by status, failing sources, runs in progress, scheduler lag (polled sources),
    the live state of realtime and push sources, and workers."""
    summary = services.status_summary(open_store())
    if json:
        print_json(summary)
        return
    out.print(f"store            {summary['store']}")
    out.print(
        f"sources          {summary['sources']}  "
        + "  ".join(f"{k}={v}" for k, v in sorted(summary["by_status"].items()))
    )
    failing = summary["failing_sources"]
    out.print(
        f"failing          {summary['failing']}"
        + (
            "  "
            + "  ".join(f"[red]{f['source_id']}[/] ({f['consecutive_failures']})" for f in failing)
            if failing
            else ""
        ),
        highlight=False,
    )
    out.print(f"runs in progress {summary['runs_in_progress']}")
    out.print(f"scheduler lag    {summary['scheduler_lag_s']} s (polled sources)")
    for r in summary["realtime"]:
        out.print(
            f"live             {r['source_id']} ({r['connection_type']})  {live_state(r)}",
            highlight=False,
        )
    for w in summary.get("workers", []):
        out.print(
            f"worker           {w['worker_id']}  {w['status']}  running "
            f"{w['running']}/{w['max_concurrent']}  leases {w['leases']}  heartbeat "
            f"{ago(w['heartbeat_at'])}"
        )
    out.print(
        "runs (24 h)      "
        + ("  ".join(f"{k}={v}" for k, v in sorted(summary["runs_last_24h"].items())) or "none")
    )
