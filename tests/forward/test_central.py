"""The central ingest against a real nats-server (JetStream) and PostgreSQL.

Messages are published here by a tiny publisher of the forwarding format (version 1),
as a plant would send them; the central ingest applies them to the central tables."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from factorysync import services
from factorysync.forward import central as central_mod
from factorysync.forward.central import CentralIngest
from factorysync.forward.central_apply import (
    Delivered,
    PositionMoved,
    apply_batch,
    forget_positions_after,
)
from factorysync.forward.central_lag import count_pending, save_pending
from factorysync.store.registry import data_version
from factorysync.store.schema import central_sites, infolog
from factorysync.store.store import Store
from tests.conftest import run_cli
from tests.forward.central_helpers import (
    STREAM,
    Change,
    NatsServer,
    column_types,
    has_table,
    production_deletes,
    production_rows,
    publish,
    publish_raw,
    require_nats_client,
    table_rows,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres

T1, T2, T3 = "2026-12-06T08:00:00+00:00", "2026-12-06T08:01:00+00:00", "2026-12-06T08:02:00+00:00"


@pytest.fixture
def backend() -> str:
    return "postgresql"  # the central store is PostgreSQL


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[NatsServer]:
    require_nats_client()
    server = NatsServer(tmp_path / "hub").start()
    yield server
    server.stop()


@contextmanager
def ingesting(store: Store, hub: NatsServer, **options: Any) -> Iterator[CentralIngest]:
    """A central ingest running in a thread for the block; stopped and joined after it."""
    ingest = CentralIngest(store, url=hub.url, **options)
    thread = threading.Thread(target=ingest.run, name="central-test")
    thread.start()
    try:
        yield ingest
    finally:
        ingest.stop()
        thread.join(60)
        assert not thread.is_alive(), "the central ingest did not stop"


def production(store: Store) -> list[tuple[Any, ...]]:
    return [
        (r["_site"], r["_source_id"], r["machine"], r["ts"].isoformat(), r["qty"])
        for r in table_rows(store, "production")
    ]


def applied(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    with store.connect() as conn:
        return {
            (r.site, r.table_name): dict(r._mapping) for r in conn.execute(select(central_sites))
        }


def test_rows_updates_and_deletes_are_applied(store: Store, hub: NatsServer) -> None:
    publish(
        hub.url,
        [
            production_rows("plant-a", 1, [("M1", T1, 10), ("M1", T2, 11), ("M2", T1, 7)]),
            production_rows("plant-a", 2, [("M1", T2, 12)]),  # an update of one row
            production_deletes("plant-a", 3, [("M2", T1)]),  # a hard delete
        ],
    )
    with ingesting(store, hub) as ingest:
        wait_until(lambda: ingest.state.applied == 3, what="3 messages applied")
    assert production(store) == [
        ("plant-a", "line1", "M1", T1, 10),
        ("plant-a", "line1", "M1", T2, 12),
    ]
    rows = table_rows(store, "production")
    assert [r["_run_id"] for r in rows] == [1, 2]
    assert all(r["_row_hash"] and r["_synced_at"] is not None for r in rows)
    state = applied(store)[("plant-a", "production")]
    assert state["messages_applied"] == 3 and state["last_seq"] == 3
    assert state["rows_applied"] == 5 and state["messages_rejected"] == 0
    assert state["last_published_at"] is not None
    with store.connect() as conn:  # the site is known to the central store
        assert conn.execute(text("SELECT 1 FROM sites WHERE name = 'plant-a'")).scalar() == 1


def test_the_same_message_twice_changes_nothing(store: Store, hub: NatsServer) -> None:
    first = production_rows("a", 1, [("M1", T1, 1), ("M2", T1, 2)])
    again = Change(**{**first.__dict__, "outbox_seq": 9})  # same rows, another message id
    delivered = [Delivered(1, first.subject, first.payload())]
    assert apply_batch(store, delivered, 0).changed == 2
    before = table_rows(store, "production")
    # Applied again from scratch (as if its position were lost): nothing changes.
    with store.begin() as conn:
        assert forget_positions_after(conn, 0) == 1
    result = apply_batch(store, delivered, 0)
    assert (result.applied, result.changed) == (1, 0)
    assert table_rows(store, "production") == before
    # Delivered again after it was applied: recognised by its sequence and skipped.
    assert apply_batch(store, delivered, 1).skipped == 1
    # Published twice over the stream, with the same and with another message id.
    seqs = publish(hub.url, [first, first, again])
    assert seqs == [1, 1, 2]  # JetStream drops the copy with the same id
    with ingesting(store, hub) as ingest:
        wait_until(lambda: ingest.state.position == 2, what="both messages read")
    assert table_rows(store, "production") == before


def test_a_batch_read_before_the_store_moved_on_is_refused(store: Store) -> None:
    """Two ingests at once (one lost its lock): the one whose position is behind the
    store's applies nothing, so no older change lands over a newer one."""
    first = production_rows("a", 1, [("M1", T1, 1)])
    older = production_rows("a", 2, [("M1", T1, 99)])
    assert apply_batch(store, [Delivered(2, first.subject, first.payload())], 0).applied == 1
    with pytest.raises(PositionMoved, match="another central ingest"):
        apply_batch(store, [Delivered(1, older.subject, older.payload())], 0)
    assert [r[-1] for r in production(store)] == [1]


def test_an_ingest_that_lost_its_lock_takes_it_again_and_applies_each_message_once(
    store: Store, hub: NatsServer
) -> None:
    lock_holder = text(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    publish(hub.url, [production_rows("a", 1, [("M1", T1, 1)])])
    with ingesting(store, hub) as ingest:
        wait_until(lambda: ingest.state.position == 1, what="the first message applied")
        with store.begin() as conn:
            pids = conn.execute(lock_holder).scalars().all()
            assert len(pids) == 1
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
        # Another ingest applies message 2 meanwhile (this one's position stays at 1).
        other = production_rows("a", 2, [("M9", T1, 9)])
        apply_batch(store, [Delivered(2, other.subject, other.payload())], 1)
        publish(
            hub.url,
            [production_rows("a", 3, [("M2", T1, 2)]), production_rows("a", 4, [("M3", T1, 3)])],
        )
        wait_until(lambda: ingest.state.position == 3, what="message 3 applied")
        with store.begin() as conn:
            assert len(conn.execute(lock_holder).scalars().all()) == 1  # held again
    machines = sorted(r[2] for r in production(store))
    assert machines == ["M1", "M3", "M9"]  # message 2 of the stream was the other's


class _Crash(BaseException):
    """Ends the ingest's thread like a killed process: nothing after it runs."""


def _crashing(when: str) -> type[CentralIngest]:
    class Crashing(CentralIngest):
        async def _apply(self, msgs: list[Any]) -> None:
            if when == "after commit":
                delivered = [Delivered(m.metadata.sequence.stream, m.subject, m.data) for m in msgs]
                await asyncio.to_thread(apply_batch, self.store, delivered, self.state.position)
            self.crashed = True
            raise _Crash  # no acknowledgement sent

    return Crashing


@pytest.mark.parametrize("when", ["before commit", "after commit"])
def test_crash_before_ack_is_delivered_again_and_applied_once(
    store: Store, hub: NatsServer, when: str
) -> None:
    publish(
        hub.url,
        [production_rows("a", 1, [("M1", T1, 1)]), production_rows("b", 1, [("M1", T1, 2)])],
    )
    crashing = _crashing(when)(store, url=hub.url)
    thread = threading.Thread(target=lambda: _swallow(crashing.run))
    thread.start()
    thread.join(60)
    assert getattr(crashing, "crashed", False)
    crashing._release_lock()  # the process is gone: so is its session's lock
    expected = [("a", "line1", "M1", T1, 1), ("b", "line1", "M1", T1, 2)]
    assert (production(store) if has_table(store, "production") else []) == (
        expected if when == "after commit" else []
    )
    with ingesting(store, hub) as ingest:  # restarted: delivered again from the position
        wait_until(lambda: ingest.state.position == 2, what="position 2")
    assert production(store) == expected
    assert ingest.state.applied == (0 if when == "after commit" else 2)
    assert {k: v["messages_applied"] for k, v in applied(store).items()} == {
        ("a", "production"): 1,
        ("b", "production"): 1,
    }


def _swallow(run: Any) -> None:
    with suppress(_Crash):
        run()


def test_table_is_created_and_its_columns_evolve(store: Store, hub: NatsServer) -> None:
    first = production_rows("a", 1, [("M1", T1, 5)])
    wider = production_rows("a", 2, [("M1", T2, 6)])
    wider.columns = {**wider.columns, "qty": "float", "temp_c": "float"}
    wider.rows = [[*r[:2], 6.5, *r[3:], 21.5] for r in wider.rows]
    with ingesting(store, hub) as ingest:
        publish(hub.url, [first])
        wait_until(lambda: ingest.state.applied == 1, what="the first message")
        assert column_types(store, "production")["qty"] == "bigint"
        publish(hub.url, [wider])
        wait_until(lambda: ingest.state.applied == 2, what="the second message")
    types = column_types(store, "production")
    assert types["qty"] == "double precision" and types["temp_c"] == "double precision"
    assert types["_site"] == "text" and types["ts"] == "timestamp with time zone"
    rows = table_rows(store, "production")
    assert [(r["qty"], r["temp_c"]) for r in rows] == [(5.0, None), (6.5, 21.5)]
    with store.connect() as conn:
        index = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ux_production_key'")
        ).scalar_one()
        changes = (
            conn.execute(select(infolog.c.message).where(infolog.c.event == "schema.changed"))
            .scalars()
            .all()
        )
    assert "(_site, _source_id, machine, ts)" in index and "UNIQUE" in index
    assert any("temp_c" in m for m in changes) and any("qty" in m for m in changes)


def test_two_sites_share_a_table_without_collisions(store: Store, hub: NatsServer) -> None:
    same = [("M1", T1, 1), ("M1", T2, 2)]
    publish(
        hub.url,
        [
            production_rows("plant-a", 1, same),
            production_rows("plant-b", 1, [(m, ts, q * 100) for m, ts, q in same]),
            production_deletes("plant-a", 2, [("M1", T1)]),
            production_rows("plant-b", 2, [("M1", T3, 300)]),
        ],
    )
    with ingesting(store, hub) as ingest:
        wait_until(lambda: ingest.state.applied == 4, what="4 messages")
    assert production(store) == [
        ("plant-a", "line1", "M1", T2, 2),
        ("plant-b", "line1", "M1", T1, 100),
        ("plant-b", "line1", "M1", T2, 200),
        ("plant-b", "line1", "M1", T3, 300),
    ]
    filtered = services.status_summary(store, "plant-b")["forward_lag"]
    assert [s["site"] for s in filtered] == ["plant-b"]


def test_bad_messages_are_rejected_and_the_rest_applied(store: Store, hub: NatsServer) -> None:
    good = production_rows("a", 1, [("M1", T1, 1)])
    wrong_kind = production_rows("a", 2, [("M2", T1, 2)])
    wrong_kind.rows[0][2] = "not a number"
    publish_raw(hub.url, "factorysync.a.production", b"{not json")
    publish(hub.url, [wrong_kind, good])
    publish_raw(hub.url, "factorysync.b.production", good.payload())  # site differs
    with ingesting(store, hub) as ingest:
        wait_until(lambda: ingest.state.position == 4, what="4 messages read")
    assert production(store) == [("a", "line1", "M1", T1, 1)]
    state = applied(store)
    assert state[("a", "production")]["messages_rejected"] == 2
    assert state[("b", "production")]["messages_rejected"] == 1
    assert "site/table differ" in state[("b", "production")]["last_error"]
    with store.connect() as conn:
        events = (
            conn.execute(select(infolog.c.message).where(infolog.c.event == "forward.rejected"))
            .scalars()
            .all()
        )
    assert len(events) == 3 and any("'qty': not a value of kind integer" in e for e in events)


def test_lag_per_site(store: Store, hub: NatsServer, env: dict[str, str]) -> None:
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    first = production_rows("a", 1, [("M1", T1, 1)])
    first.published_at = old
    publish(hub.url, [first])
    with ingesting(store, hub, lag_every_s=0.2) as ingest:
        wait_until(lambda: ingest.state.applied == 1, what="the first message")
    # Three more for site a and two for site b wait while no ingest runs.
    publish(hub.url, [production_rows("a", n, [("M1", T2, n)]) for n in (2, 3, 4)])
    publish(hub.url, [production_rows("b", n, [("M1", T2, n)]) for n in (1, 2)])

    async def count() -> dict[tuple[str, str], int]:
        import nats

        nc = await nats.connect(hub.url)
        try:
            return await count_pending(nc.jetstream(), STREAM, 1)
        finally:
            await nc.close()

    pending = asyncio.run(count())
    assert pending == {("a", "production"): 3, ("b", "production"): 2}
    with store.begin() as conn:
        save_pending(conn, pending, datetime.now(UTC))
    summary = services.status_summary(store)
    lag = {s["site"]: s for s in summary["forward_lag"]}
    assert (lag["a"]["lag_messages"], lag["b"]["lag_messages"]) == (3, 2)
    assert 290 < lag["a"]["lag_seconds"] < 600  # since the last applied message was published
    assert lag["b"]["lag_seconds"] >= 0 and lag["b"]["tables"][0]["last_seq"] is None
    # The same figures in `status --json`, `status` and /metrics.
    shown = run_cli("status", "--json", check=True)
    assert '"lag_messages": 3' in shown.stdout
    assert "forwarded        a  3 waiting" in run_cli("status", check=True).stdout
    from factorysync.api.metrics import Metrics

    metrics = Metrics(store).render().decode()
    assert 'factorysync_forward_lag_messages{site="a"} 3.0' in metrics
    assert 'factorysync_forward_lag_messages{site="b"} 2.0' in metrics
    with ingesting(store, hub, lag_every_s=0.2) as ingest:
        wait_until(
            lambda: (
                [s["lag_messages"] for s in services.status_summary(store)["forward_lag"]] == [0, 0]
            ),
            what="no lag once applied",
        )
    lag = {s["site"]: s for s in services.status_summary(store)["forward_lag"]}
    assert lag["a"]["lag_seconds"] == 0 and lag["b"]["rows_applied"] == 2


def test_api_and_console_show_forwarded_sites(store: Store, hub: NatsServer) -> None:
    from fastapi.testclient import TestClient

    from factorysync.api import create_app
    from tests.web.conftest import PASSWORDS, add_users
    from tests.web.test_pages import csrf_of

    publish(hub.url, [production_rows("plant-a", 1, [("M1", T1, 1)])])
    with ingesting(store, hub) as ingest:
        wait_until(lambda: ingest.state.applied == 1, what="the message")
    admin = services.create_first_admin(store)
    assert admin is not None
    add_users(store)
    bearer = {"Authorization": f"Bearer {admin[1]}"}
    with TestClient(create_app(store)) as client:
        token = csrf_of(client.get("/login").text)
        form = {"username": "viewer1", "password": PASSWORDS["viewer"], "csrf": token}
        assert client.post("/login", data=form, follow_redirects=False).status_code == 303
        status = client.get("/api/status", headers=bearer).json()
        assert status["forward_lag"][0]["site"] == "plant-a"
        assert status["forward_lag"][0]["tables"][0]["messages_applied"] == 1
        sites = {s["name"]: s for s in client.get("/api/sites", headers=bearer).json()}
        assert sites["plant-a"]["forward_lag"]["rows_applied"] == 1
        assert sites["main"]["forward_lag"] is None  # the central store's own site
        one = client.get("/api/sites/plant-a", headers=bearer).json()
        assert one["forward_lag"]["lag_messages"] == 0
        data = client.get("/api/data/production", headers=bearer).json()
        assert [(r["_site"], r["qty"]) for r in data["items"]] == [("plant-a", 1)]
        # A polled table's answer follows the messages applied to it (a cached answer
        # is refreshed when central_sites says the table changed).
        with store.connect() as conn:
            before = data_version(conn, "production")
        assert before == (1, 1)  # one message applied, one site writing the table
        with ingesting(store, hub):
            publish(hub.url, [production_rows("plant-a", 2, [("M1", T1, 2)])])
            wait_until(
                lambda: (
                    [
                        r["qty"]
                        for r in client.get("/api/data/production", headers=bearer).json()["items"]
                    ]
                    == [2]
                ),
                what="the update in the polled answer",
                poll_s=0.3,
            )
        with store.connect() as conn:
            assert data_version(conn, "production") == (2, 1)
        page = client.get("/").text
        assert 'id="forwarded"' in page and 'data-site="plant-a"' in page
        assert "Forwarded sites" in page


def test_central_refuses_sqlite_and_needs_a_url(tmp_path: Path, store: Store) -> None:
    sqlite = {"FACTORYSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'plant.db'}"}
    refused = run_cli("central", "--no-serve", env=sqlite)
    assert refused.returncode != 0
    assert "needs a PostgreSQL store" in refused.stderr
    with pytest.raises(Exception, match="FACTORYSYNC_CENTRAL_URL"):
        CentralIngest(store)
    assert central_mod.stream_name(store) == STREAM


def test_the_central_url_password_is_never_shown(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import closed_port

    require_nats_client()
    secret = "Hub-Pa55word-never-shown"
    with closed_port() as port:
        url = f"nats://ingest:{secret}@127.0.0.1:{port}"
        ingest = CentralIngest(store, url=url)
        assert ingest.safe_urls == f"nats://ingest:***@127.0.0.1:{port}"
        thread = threading.Thread(target=ingest.run)
        with caplog.at_level("DEBUG", logger="factorysync"):
            thread.start()
            wait_until(lambda: ingest.state.last_error, what="the failed connection")
            ingest.stop()
            thread.join(60)
    assert not thread.is_alive()
    assert "the hub failed" in (ingest.state.last_error or "")
    assert secret not in (ingest.state.last_error or "")
    assert secret not in caplog.text
    refused = run_cli("status", env={"FACTORYSYNC_CENTRAL_URL": f"http://u:{secret}@hub"})
    assert refused.returncode != 0 and "FACTORYSYNC_CENTRAL_URL must be nats://" in refused.stderr
    assert secret not in refused.stderr + refused.stdout
