"""File sources with ``auto_reload: true``: a sync soon after their file changes.

The watcher watches the file's folder (for a glob, the folder where the pattern's fixed
part ends, recursively), not the file itself: a file replaced by rename (written to a
temporary name, then moved over the old one, as most exporters do) is seen like one
written in place. Changes are debounced (``file_watch_debounce_ms``): a burst of writes
makes one sync, and changes during a sync make one more after it. The sync is the
ordinary one (:class:`~factorysync.engine.runner.Runner`), so counts, history and
incremental markers are the same as for scheduled runs.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import threading
import time
from pathlib import Path
from typing import Any

from factorysync.config import SourceDecl
from factorysync.connectors.file import OwnFiles, resolve_in_roots
from factorysync.engine.runner import AlreadyRunning, Runner
from factorysync.errors import ConfigError, ConnectorFatal, FactorySyncError
from factorysync.store.store import Store

log = logging.getLogger("factorysync.realtime.filewatch")
INSTALL = "pip install 'watchfiles>=0.21'"
BUSY_RETRY_S = 0.1
BUSY_GIVE_UP_S = 60.0


def _watchfiles() -> Any:
    try:
        import watchfiles
    except ImportError:
        raise ConfigError(
            f"auto_reload on file sources needs the watchfiles package: {INSTALL}"
        ) from None
    return watchfiles


class FileWatcher:
    """``owner``: the worker holding the source's lease (PostgreSQL workers). The lease
    keeps the scheduler of every worker away from the source, so the watcher then also
    syncs it every ``refresh_interval`` seconds without a change, as the schedule would."""

    def __init__(self, store: Store, decl: SourceDecl, owner: str | None = None) -> None:
        self.store = store
        self.owner = owner
        self.interval = float(decl.refresh_interval)
        self._last_sync = time.monotonic()
        self.source_id = decl.source_id
        self.pattern = str(decl.primary().connection_config["file_path"])
        self.runner = Runner(store)
        self.syncs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.folders, self.matchers = self._targets()

    def _targets(self) -> tuple[list[Path], list[str]]:
        """Folders to watch and absolute path patterns a changed file must match.

        Held to the rules of file reads: a folder outside the data roots, or a pattern
        that matches factorysync's own files (the store, its side files, the key file),
        is refused before anything is watched.
        """
        settings = self.store.settings
        own = OwnFiles(settings)
        if not glob.has_magic(self.pattern):
            path = resolve_in_roots(self.pattern, settings, own)
            return [path.parent], [str(path)]
        base = Path(self.pattern).expanduser()
        roots = [Path("/")] if base.is_absolute() else settings.data_root_paths()
        folders, matchers = [], []
        for root in roots:
            full = root / base
            fixed = []
            for part in full.parts:
                if glob.has_magic(part):
                    break
                fixed.append(part)
            folder = Path(*fixed)
            if folder.is_dir():
                rest = full.relative_to(folder)
                for pattern in (str(full), str(folder.resolve() / rest)):
                    for path, what in own.by_path.values():
                        if fnmatch.fnmatch(str(path), pattern):
                            raise ConnectorFatal(
                                f"source {self.source_id!r}: file_path {self.pattern!r} "
                                f"matches {what} {path}: sources may not read factorysync's "
                                "own files"
                            )
                folders.append(resolve_in_roots(str(folder), settings, own))
                matchers.append(str(full))
        return folders, matchers

    def relevant(self, changed: str) -> bool:
        return any(fnmatch.fnmatch(changed, m) for m in self.matchers)

    def start(self) -> None:
        _watchfiles()
        if not self.folders:
            raise ConfigError(f"source {self.source_id!r}: no folder to watch for {self.pattern!r}")
        self._thread = threading.Thread(
            target=self._loop, name=f"watch-{self.source_id}", daemon=True
        )
        self._thread.start()
        self.ready.wait(5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        watchfiles = _watchfiles()
        debounce = max(self.store.settings.file_watch_debounce_ms, 1)
        recursive = glob.has_magic(self.pattern)
        while not self._stop.is_set():
            try:
                self.ready.set()
                for changes in watchfiles.watch(
                    *self.folders,
                    debounce=debounce,
                    step=min(50, debounce),
                    stop_event=self._stop,
                    recursive=recursive,
                    yield_on_timeout=self.owner is not None,
                    rust_timeout=1000,
                ):
                    changed = any(self.relevant(path) for _, path in changes)
                    if changed or self._interval_due():
                        self._sync()
            except FileNotFoundError:
                # The watched folder went away: wait for it to come back.
                self._stop.wait(1.0)
            except Exception:
                log.exception("%s: file watch failed; watching again", self.source_id)
                self._stop.wait(1.0)

    def _interval_due(self) -> bool:
        return self.owner is not None and time.monotonic() - self._last_sync >= self.interval

    def _sync(self) -> None:
        deadline = time.monotonic() + BUSY_GIVE_UP_S
        while not self._stop.is_set():
            try:
                self._last_sync = time.monotonic()
                result = self.runner.sync(self.source_id, trigger="watch", lease_owner=self.owner)
            except AlreadyRunning:
                # A scheduled run is in progress and may have read the old content.
                if time.monotonic() > deadline:
                    return
                self._stop.wait(BUSY_RETRY_S)
                continue
            except FactorySyncError as exc:
                log.warning("%s: sync after a file change failed: %s", self.source_id, exc)
                return
            self.syncs += 1
            log.info(
                "%s: file changed, synced (%s, %d processed)",
                self.source_id,
                result.sync_status,
                result.records_processed,
            )
            return
