"""What the API app holds for its lifetime: the store, sync workers, caches, housekeeping.

Housekeeping runs in one background thread while the app is up:

* token ``last_used_at`` times are written every ``USAGE_FLUSH_S`` (requests only note
  them in memory);
* the secret key file is watched: when ``factorysync secrets rotate-key`` rewrites it,
  the store's key set is reloaded, so a running service decrypts values re-encrypted
  under the new key without a restart (see :func:`factorysync.services.rotate_secret_key`).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from factorysync.api.cache import MAKERS, MAKERS_REMOTE, Answers, TtlCache
from factorysync.api.ingest import IngestHub
from factorysync.api.metrics import Metrics
from factorysync.api.tables import TableCache
from factorysync.engine.runner import ClaimedRun, Runner, RunResult
from factorysync.security.throttle import LoginThrottle
from factorysync.store.accounts import Principal, UsageRecorder
from factorysync.store.store import Store

log = logging.getLogger("factorysync.api")
USAGE_FLUSH_S = 30.0
KEY_CHECK_S = 1.0


class ApiContext:
    def __init__(self, store: Store) -> None:
        settings = store.settings
        self.store = store
        self.runner = Runner(store)
        self.tables = TableCache()
        self.usage = UsageRecorder()
        self.logins = LoginThrottle.from_settings(settings)
        self.metrics = Metrics(store)
        self.answers = Answers(
            settings.api_cache_s, MAKERS if store.dialect == "sqlite" else MAKERS_REMOTE
        )
        self.principals: TtlCache[Principal] = TtlCache(settings.api_cache_s, 10_000)
        # Tokens checked against the store lately: still trusted while it is unreachable.
        self.vouched: TtlCache[Principal] = TtlCache(settings.outage_token_trust_s, 10_000)
        self._syncs = ThreadPoolExecutor(settings.concurrent_syncs, thread_name_prefix="api-sync")
        self.ingest = IngestHub(store)
        # Set when the service begins to stop: live streams end, so connections close.
        self.closing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._key_stamp = self._key_file_stamp()

    # -- syncs ---------------------------------------------------------------------
    def start_sync(self, source_id: str, trigger: str) -> int:
        """Claim a run (raises AlreadyRunning) and execute it in a worker; the run id."""
        return self.start_sync_waitable(source_id, trigger)[0]

    def start_sync_waitable(self, source_id: str, trigger: str) -> tuple[int, Future[RunResult]]:
        """As ``start_sync``, with the future that ends with the run."""
        claim = self.runner.claim(source_id, trigger=trigger)
        future = self._syncs.submit(self._execute, claim)
        future.add_done_callback(self._after_sync)
        return claim.run_id, future

    def _execute(self, claim: ClaimedRun) -> RunResult:
        return self.runner.execute(claim)

    def _after_sync(self, future: Future[RunResult]) -> None:
        self.answers.clear()
        exc = future.exception()
        if exc is not None:
            log.error("API-started sync crashed: %s", type(exc).__name__)

    def data_changed(self) -> None:
        """Forget cached data answers (data changed through this process)."""
        self.answers.clear()

    def sources_changed(self) -> None:
        """A source was created, changed or removed through this process."""
        self.answers.clear()
        self.ingest.recheck()

    def accounts_changed(self) -> None:
        """Forget checked tokens (a user or token changed through this process)."""
        self.principals.clear()
        self.vouched.clear()

    # -- housekeeping --------------------------------------------------------------
    def _key_file_stamp(self) -> tuple[int, int] | None:
        if self.store.settings.secret_key:
            return None
        path = Path(self.store.settings.secret_key_file).expanduser()
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def reload_key_if_changed(self) -> bool:
        stamp = self._key_file_stamp()
        if stamp == self._key_stamp:
            return False
        self._key_stamp = stamp
        # Store.box is a cached property: dropping it makes the next use read the file.
        self.store.__dict__.pop("box", None)
        log.info("secret key file changed: keys reloaded")
        return True

    def flush_usage(self) -> None:
        try:
            with self.store.begin() as conn:
                self.usage.flush(conn)
        except Exception as exc:  # best effort: a busy store only delays the timestamps
            log.warning("could not record token use: %s", type(exc).__name__)

    def _housekeeping(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.wait(KEY_CHECK_S):
            self.reload_key_if_changed()
            if time.monotonic() - last_flush >= USAGE_FLUSH_S:
                last_flush = time.monotonic()
                self.flush_usage()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._housekeeping, name="api-housekeeping", daemon=True
            )
            self._thread.start()

    def begin_shutdown(self) -> None:
        self.closing = True

    def close(self) -> None:
        """Stop housekeeping, flush pushed records and wait for API-started syncs."""
        self.closing = True
        self.ingest.close()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._syncs.shutdown(wait=True)
        self.flush_usage()
