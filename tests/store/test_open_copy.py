"""A bulk first load on PostgreSQL keeps one COPY open across batches (``OpenCopy``):
whatever else then happens on the connection ends it first, and a rollback aborts it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, text

from factorysync.store.open_copy import OpenCopy
from factorysync.store.store import Store

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])
COPY = "COPY readings (machine, value) FROM STDIN (FORMAT CSV)"


@pytest.fixture
def conn(store: Store) -> Iterator[Connection]:
    with store.connect() as c:
        with c.begin():
            c.execute(text("CREATE TABLE readings (machine TEXT, value BIGINT)"))
            c.execute(text("CREATE TABLE other (machine TEXT)"))
        yield c


def count(conn: Connection, table: str = "readings") -> int:
    return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def committed(conn: Connection, table: str = "readings") -> int:
    """Rows visible outside any transaction of the test's own."""
    with conn.begin():
        return count(conn, table)


def test_batches_written_to_one_copy_are_all_there_after_commit(
    store: Store, conn: Connection
) -> None:
    with conn.begin():
        first = OpenCopy.get(conn, COPY)
        first.write(b"M1,1\nM2,2\n")
        assert OpenCopy.get(conn, COPY) is first  # the same COPY takes the next batch
        first.write(b"M3,3\n")
    with store.connect() as other:
        assert count(other) == 3


def test_a_statement_ends_the_copy_first(conn: Connection) -> None:
    with conn.begin():
        OpenCopy.get(conn, COPY).write(b"M1,1\nM2,2\n")
        assert count(conn) == 2  # the SELECT ended the COPY, then saw its rows
        OpenCopy.get(conn, COPY).write(b"M3,3\n")  # a new COPY in the same transaction
        with conn.begin_nested():
            conn.execute(text("INSERT INTO other VALUES ('x')"))
        assert count(conn) == 3


def test_another_copy_on_the_connection_ends_the_first(conn: Connection) -> None:
    with conn.begin():
        OpenCopy.get(conn, COPY).write(b"M1,1\n")
        OpenCopy.get(conn, "COPY other (machine) FROM STDIN (FORMAT CSV)").write(b"A\nB\n")
        OpenCopy.get(conn, COPY).write(b"M2,2\n")
    assert (committed(conn), committed(conn, "other")) == (2, 2)


def test_a_rollback_aborts_the_copy_and_leaves_the_connection_usable(
    conn: Connection,
) -> None:
    with pytest.raises(ZeroDivisionError), conn.begin():
        OpenCopy.get(conn, COPY).write(b"M1,1\nM2,2\n")
        raise ZeroDivisionError  # the run failed half-way
    assert committed(conn) == 0
    with conn.begin():
        OpenCopy.get(conn, COPY).write(b"M9,9\n")
    assert committed(conn) == 1


def test_data_the_server_refuses_fails_the_statement_that_ends_the_copy(
    conn: Connection,
) -> None:
    import psycopg
    from sqlalchemy.exc import DataError

    with pytest.raises(DataError) as failed, conn.begin():
        OpenCopy.get(conn, COPY).write(b"M1,not a number\n")
        count(conn)
    assert isinstance(failed.value.orig, psycopg.errors.InvalidTextRepresentation)
    assert committed(conn) == 0
