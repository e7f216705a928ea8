"""``status``: the store, sources by status, failing ones, runs in progress, scheduler lag,
live realtime and push sources, and workers, in one look."""

from __future__ import annotations

from rich.markup import escape

from factorysync import services
from factorysync.cli.base import (
    JsonOpt,
    SiteOpt,
    ago,
    live_state,
    open_store,
    out,
    print_json,
)


def status(site: SiteOpt = None, json: JsonOpt = False) -> None:
    """Counts by status, failing sources, runs in progress, scheduler lag (polled sources),
    the live state of realtime and push sources, and workers (--site: of one site)."""
    summary = services.status_summary(open_store(), site)
    if json:
        print_json(summary)
        return
    out.print(f"store            {summary['store']}")
    if site is not None:
        out.print(f"site             {site}", highlight=False)
    else:
        out.print(
            "sites            " + "  ".join(f"{k}={v}" for k, v in summary["by_site"].items()),
            highlight=False,
        )
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
    for lag in summary.get("forward_lag", []):
        behind = lag["lag_messages"]
        out.print(
            f"forwarded        {lag['site']}  "
            + (f"[yellow]{behind} waiting[/]" if behind else "[green]up to date[/]")
            + f"  lag {lag['lag_seconds']:g} s  rows {lag['rows_applied']}"
            + (f"  [red]rejected {lag['messages_rejected']}[/]" if lag["messages_rejected"] else "")
            + f"  counted {ago(lag['checked_at'])}",
            highlight=False,
        )
    fwd = summary.get("forwarding")
    if fwd:
        state = "[green]connected[/]" if fwd["connected"] else "[red]not connected[/]"
        if not fwd["publisher_running"]:
            state = "[yellow]publisher not running[/]"
        out.print(
            f"forwarding       {escape(fwd['url'] or 'off')}  {state}  outbox "
            f"{fwd['outbox_depth']}  oldest {fwd['oldest_entry_age_s']:g} s"
            + (f"  publisher {escape(fwd['publisher'])}" if fwd.get("publisher") else "")
            + (f"  [red]last error: {escape(fwd['last_error'])}[/]" if fwd["last_error"] else ""),
            highlight=False,
        )
    out.print(
        "runs (24 h)      "
        + ("  ".join(f"{k}={v}" for k, v in sorted(summary["runs_last_24h"].items())) or "none")
    )
