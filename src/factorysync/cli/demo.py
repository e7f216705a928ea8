"""``demo``: generate the plant data set, import and sync it, then keep serving.

Before it serves, the demo prints the console's address and a login: the admin with a new
random password, shown once on this terminal (see :mod:`factorysync.demo.login`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from factorysync.cli import runtime
from factorysync.cli.base import (
    HostOpt,
    JsonOpt,
    PortOpt,
    announce_admin,
    open_store,
    out,
    print_json,
)
from factorysync.errors import FactorySyncError

if TYPE_CHECKING:
    from factorysync.demo.login import DemoLogin
    from factorysync.engine.runner import RunResult


def demo(
    serve: Annotated[bool, typer.Option(help="Keep running the scheduler afterwards.")] = True,
    size_mb: Annotated[float, typer.Option(min=0.1, max=10000, help="Size of the data set.")] = 5.0,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where the demo files go, inside a data root "
            "[default: factorysync-demo in the first data root].",
        ),
    ] = None,
    host: HostOpt = None,
    port: PortOpt = None,
    json: JsonOpt = False,
) -> None:
    """Generate a plant data set of 40+ JSON sources, import, sync and (by default) serve
    the console, with a login printed once (a new admin password at every start)."""
    # Imported here: the data set's modules are large, and other commands never need them.
    from factorysync.demo.login import demo_login
    from factorysync.demo.run import demo_folder, run_demo

    store = open_store(ready=False)
    folder = demo_folder(store, directory)
    bars = None if json else _Bars(out)
    try:
        results = run_demo(store, folder, size_mb=size_mb, progress=bars)
    finally:
        if bars is not None:
            bars.close()
    if json:
        print_json([r.as_dict() for r in results])
    else:
        _summary(out, results, folder)
    failed = [r for r in results if r.sync_status != "success"]
    if failed:
        raise FactorySyncError(f"{len(failed)} demo source(s) failed to sync")
    if serve:
        host = host or store.settings.api_host
        port = store.settings.api_port if port is None else port
        _announce_login(demo_login(store), f"http://{_browsable(host)}:{port}/")
        runtime.run(store, host, port)


def _browsable(host: str) -> str:
    """The address a browser on this machine uses for a server listening on ``host``."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _announce_login(login: DemoLogin, url: str) -> None:
    """The console's address and the demo admin's password, on this terminal only (never
    through logging); written plainly, one value a line, for scripts to read."""
    if login.token is not None:
        announce_admin(login.username, login.token)
    if login.reset:
        out.print(f"login     user {login.username!r} existed: new password, the old one is void")
    else:
        out.print(f"login     user {login.username!r} for the console, password shown once:")
    sys.stdout.write(f"console   {url}\nusername  {login.username}\npassword  {login.password}\n")
    sys.stdout.flush()


class _Bars:
    """The demo's stages as Rich progress bars: one bar a stage, ended (and, on a
    terminal that is not interactive, printed) when the stage ends."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._stage: str | None = None
        self._ended: set[str] = set()
        self._progress: Progress | None = None
        self._task = TaskID(0)

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage in self._ended:
            return
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._progress = _progress(self.console)
            self._progress.start()
            self._task = self._progress.add_task(stage, total=total)
        assert self._progress is not None
        self._progress.update(self._task, completed=done, total=total)
        if total is not None and done >= total:
            self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._stage is not None:
            self._ended.add(self._stage)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _summary(console: Console, results: list[RunResult], directory: Path) -> None:
    table = Table(
        "source_id",
        "status",
        "rows",
        "inserted",
        "updated",
        "deleted",
        "ms",
        title="demo sync",
        box=None,
    )
    for r in results:
        style = "green" if r.sync_status == "success" else "red"
        table.add_row(
            r.source_id,
            f"[{style}]{r.sync_status}[/]",
            str(r.records_processed),
            str(r.records_inserted),
            str(r.records_updated),
            str(r.records_deleted),
            str(r.sync_duration_ms),
        )
    console.print(table)
    ok = sum(1 for r in results if r.sync_status == "success")
    rows = sum(r.records_processed for r in results)
    console.print(f"{ok}/{len(results)} sources synced, {rows:,} records, data in {directory}")
