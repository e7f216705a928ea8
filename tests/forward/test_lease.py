"""The outbox lease: one publisher per store holds it; another stands by and takes over
when it is released, runs out, or its holder's process is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta

from sqlalchemy import delete, insert, update

from factorysync.forward.lease import LEASE_KEY, LEASE_SOURCE, PublisherLease, lease_holder
from factorysync.store.processes import PROCESS_STARTED
from factorysync.store.schema import data_source_sync_state as state_t
from factorysync.store.store import Store
from factorysync.store.types import utcnow

WHERE = (state_t.c.source_id == LEASE_SOURCE, state_t.c.state_key == LEASE_KEY)


def test_one_holder_the_other_stands_by_until_released(store: Store) -> None:
    first, second = PublisherLease(store), PublisherLease(store)
    assert first.owner != second.owner
    assert lease_holder(store) is None
    assert first.acquire() is None
    assert second.acquire() == first.owner
    assert first.acquire() is None  # renewed
    assert lease_holder(store) == first.owner

    second.release()  # not the holder: nothing changes
    assert lease_holder(store) == first.owner
    first.release()
    assert lease_holder(store) is None
    assert second.acquire() is None
    assert first.acquire() == second.owner


def test_a_lease_that_ran_out_is_taken_over(store: Store) -> None:
    first, second = PublisherLease(store), PublisherLease(store)
    assert first.acquire() is None
    with store.begin() as conn:
        old = utcnow() - timedelta(seconds=first.lease_s + 1)
        conn.execute(update(state_t).where(*WHERE).values(updated_at=old))
    assert lease_holder(store) is None
    assert second.acquire() is None
    assert first.acquire() == second.owner  # the old holder stands by in its turn


def test_a_holder_of_this_host_whose_process_is_gone_is_taken_over(store: Store) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    dead = f"{socket.gethostname()}:{int(gone.stdout)}:abc123"
    elsewhere = "other-host.plant:4242:abc123"
    # A restarted container's service often has the id its predecessor had: a lease this
    # process id took before this process started was the predecessor's.
    before = f"{socket.gethostname()}:{os.getpid()}:prev01"
    earlier = (PROCESS_STARTED - timedelta(minutes=5)).isoformat()
    cases = ((elsewhere, None, False), (dead, None, True), (before, earlier, True))
    for holder, since, taken in cases:
        with store.begin() as conn:
            conn.execute(delete(state_t).where(*WHERE))
            conn.execute(
                insert(state_t).values(
                    source_id=LEASE_SOURCE,
                    mapping_id=0,
                    state_key=LEASE_KEY,
                    state={"owner": holder, "since": since or utcnow().isoformat()},
                    run_id=0,
                    updated_at=utcnow(),
                )
            )
        lease = PublisherLease(store)
        assert lease.acquire() == (None if taken else holder), holder
        assert lease_holder(store) == (lease.owner if taken else holder)


def test_publishers_racing_for_a_free_lease_get_one_holder(store: Store) -> None:
    leases = [PublisherLease(store) for _ in range(3)]
    for _ in range(10):
        with store.begin() as conn:
            conn.execute(delete(state_t).where(*WHERE))
        start = threading.Barrier(len(leases))
        won: list[str] = []
        errors: list[BaseException] = []

        def take(
            lease: PublisherLease,
            start: threading.Barrier = start,
            won: list[str] = won,
            errors: list[BaseException] = errors,
        ) -> None:
            start.wait()
            try:
                if lease.acquire() is None:
                    won.append(lease.owner)
            except BaseException as exc:  # surfaced below: the race must not raise
                errors.append(exc)

        threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert len(won) == 1 and lease_holder(store) == won[0]
