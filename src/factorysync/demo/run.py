"""``factorysync demo``: generate the plant data set, import its constant.js, sync it all."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from factorysync import services
from factorysync.demo.generator import generate_demo
from factorysync.engine.runner import RunResult
from factorysync.errors import ConfigError
from factorysync.store.registry import list_sources
from factorysync.store.store import Store


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=console is None,
        transient=False,
    )


DEMO_FOLDER = "factorysync-demo"


def run_demo(
    store: Store,
    directory: Path | None = None,
    *,
    size_mb: float = 5.0,
    console: Console | None = None,
) -> list[RunResult]:
    """``directory`` defaults to ``factorysync-demo`` in the first data root (which
    ``init`` creates when it is the default one)."""
    roots = store.settings.data_root_paths()
    if not roots:
        raise ConfigError("no data roots configured (FACTORYSYNC_DATA_ROOTS is empty)")
    directory = (directory or roots[0] / DEMO_FOLDER).resolve()
    if not any(directory == r or directory.is_relative_to(r) for r in roots):
        raise ConfigError(
            f"demo folder {directory} is outside FACTORYSYNC_DATA_ROOTS; "
            "choose --dir inside a data root or add it to the roots"
        )
    store.settings.check_data_roots()
    services.init_store(store)
    with _progress(console) as progress:
        task = progress.add_task("generating data", total=None)

        def on_file(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        generated = generate_demo(directory, size_mb=size_mb, progress=on_file)
    services.import_legacy(store, directory / "constant.js", directory)
    with store.connect() as conn:
        wanted = {str(s.id) for s in generated}
        ids = [r["source_id"] for r in list_sources(conn) if r["legacy_id"] in wanted]
    with _progress(console) as progress:
        task = progress.add_task("syncing sources", total=len(ids))
        results = services.sync_many(
            store, ids, trigger="demo", progress=lambda _r: progress.advance(task)
        )
    if console is not None:
        _summary(console, results, directory)
    return results


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
