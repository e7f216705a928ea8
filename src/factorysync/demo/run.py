"""``factorysync demo``: generate the plant data set, import its constant.js, sync it all.

How it is shown is the caller's: :func:`run_demo` reports its stages to a ``progress``
callback (the command line draws them as bars) and returns the runs' results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from factorysync import services
from factorysync.demo.generator import generate_demo
from factorysync.engine.runner import RunResult
from factorysync.errors import ConfigError
from factorysync.store.registry import list_sources
from factorysync.store.store import Store

DEMO_FOLDER = "factorysync-demo"
GENERATING = "generating data"
SYNCING = "syncing sources"

DemoProgress = Callable[[str, int, int | None], None]
"""``progress(stage, done, total)``: a stage (:data:`GENERATING`, then :data:`SYNCING`)
starts with ``done`` 0 and ends when ``done`` reaches ``total``; ``total`` is None while
it is not known yet."""


def demo_folder(store: Store, directory: Path | None = None) -> Path:
    """Where the demo's files go: ``directory``, by default ``factorysync-demo`` in the
    first data root (which ``init`` creates when it is the default one), and always
    inside a data root, where sources may read them."""
    roots = store.settings.data_root_paths()
    if not roots:
        raise ConfigError("no data roots configured (FACTORYSYNC_DATA_ROOTS is empty)")
    folder = (directory or roots[0] / DEMO_FOLDER).resolve()
    if not any(folder == r or folder.is_relative_to(r) for r in roots):
        raise ConfigError(
            f"demo folder {folder} is outside FACTORYSYNC_DATA_ROOTS; "
            "choose --dir inside a data root or add it to the roots"
        )
    return folder


def run_demo(
    store: Store,
    directory: Path | None = None,
    *,
    size_mb: float = 5.0,
    progress: DemoProgress | None = None,
) -> list[RunResult]:
    """Generate the data set in :func:`demo_folder`, register its sources from the
    generated constant.js and sync each once; returns the runs' results."""
    report: DemoProgress = progress or (lambda _stage, _done, _total: None)
    directory = demo_folder(store, directory)
    store.settings.check_data_roots()
    services.init_store(store)
    report(GENERATING, 0, None)
    generated = generate_demo(
        directory, size_mb=size_mb, progress=lambda done, total: report(GENERATING, done, total)
    )
    services.import_legacy(store, directory / "constant.js", directory)
    with store.connect() as conn:
        wanted = {str(s.id) for s in generated}
        ids = [r["source_id"] for r in list_sources(conn) if r["legacy_id"] in wanted]
    synced = 0
    report(SYNCING, synced, len(ids))

    def _advance(_result: RunResult) -> None:
        nonlocal synced
        synced += 1
        report(SYNCING, synced, len(ids))

    return services.sync_many(store, ids, trigger="demo", progress=_advance)
