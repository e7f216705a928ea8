"""Arrow columns as PostgreSQL binary COPY (``store/pgbinary.py``): what the server stores
is exactly what the columns hold, and tables whose column types differ get CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from sqlalchemy import text

from factorysync.store import bulk, pgbinary
from factorysync.store.store import Store
from factorysync.store.targets import TargetTable
from tests.conftest import PgServer

UTC = dt.UTC


@pytest.fixture
def pg(pg_server: PgServer | Exception) -> Iterator[psycopg.Connection[Any]]:
    if isinstance(pg_server, Exception):
        from tests.conftest import need_service

        need_service("PostgreSQL", str(pg_server))
    assert not isinstance(pg_server, Exception)
    url = pg_server.new_database()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        yield conn
    pg_server.drop(url)


def copy_binary(conn: psycopg.Connection[Any], table: str, body: bytes) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(pgbinary.SIGNATURE + body + pgbinary.TRAILER)


def test_every_kind_round_trips_with_nulls(pg: psycopg.Connection[Any]) -> None:
    rows = 1000
    start = dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)  # before both epochs
    columns = [
        pa.array(range(-500, rows - 500), pa.int64()),
        pa.array([None if i % 7 == 0 else f"M-{i:04d} ü€ 😀"[: i % 12] for i in range(rows)]),
        pa.array([None if i % 5 == 0 else start + dt.timedelta(hours=i) for i in range(rows)]),
        pa.array([None if i % 3 == 0 else i / 7 for i in range(rows)], pa.float64()),
        pa.array([None if i % 4 == 0 else i % 2 == 0 for i in range(rows)]),
        pa.array([dt.date(1999, 12, 30) + dt.timedelta(days=i) for i in range(rows)]),
        pa.nulls(rows),
        pa.array(range(rows), pa.int32()),  # any integer width goes to BIGINT
        pa.array(["x" * (i % 3) for i in range(rows)], pa.large_string()),
    ]
    columns[2] = columns[2].cast(pa.timestamp("us", "UTC"))
    kinds = ["integer", "string", "datetime", "float", "boolean", "date", "integer"]
    kinds += ["integer", "string"]
    pg.execute(
        "CREATE TABLE t (a bigint, b text, c timestamptz, d double precision, e boolean, "
        "f date, g bigint, h bigint, i text)"
    )
    body = pgbinary.encode(columns, kinds)
    assert body is not None
    copy_binary(pg, "t", body)
    got = pg.execute("SELECT * FROM t ORDER BY a").fetchall()
    assert got == list(zip(*(c.to_pylist() for c in columns), strict=True))


def test_sliced_columns_keep_their_own_rows(pg: psycopg.Connection[Any]) -> None:
    names = pa.array([f"name-{i}" if i % 2 else None for i in range(100)])
    numbers = pa.array(range(100), pa.int64())
    part = [numbers.slice(37, 20), names.slice(37, 20)]
    pg.execute("CREATE TABLE t (a bigint, b text)")
    body = pgbinary.encode(part, ["integer", "string"])
    assert body is not None
    copy_binary(pg, "t", body)
    assert pg.execute("SELECT * FROM t ORDER BY a").fetchall() == list(
        zip(*(c.to_pylist() for c in part), strict=True)
    )


def test_fixed_width_runs_and_constant_fields(pg: psycopg.Connection[Any]) -> None:
    """Adjacent fixed-width columns without nulls are encoded together, and fields that are
    the same in every row come once as a suffix: the rows are the same bytes either way."""
    rows = 500
    when = dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    columns = [
        pa.array(range(rows), pa.int64()),
        pa.array([i / 3 for i in range(rows)], pa.float64()),
        pa.array([i % 2 == 1 for i in range(rows)]),
        pa.array([dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(rows)]),
        pa.array([when + dt.timedelta(seconds=i) for i in range(rows)]).cast(
            pa.timestamp("us", "UTC")
        ),
        pa.array([None if i % 9 == 0 else i for i in range(rows)], pa.int64()),
        pa.array([f"line {i % 4}" for i in range(rows)]),
        pa.array(range(rows, 2 * rows), pa.int64()),
    ]
    kinds = ["integer", "float", "boolean", "date", "datetime", "integer", "string", "integer"]
    fixed = [
        pa.scalar("plant-a", pa.string()),
        pa.scalar(42, pa.int64()),
        pa.scalar(when, pa.timestamp("us", "UTC")),
    ]
    fixed_kinds = ["string", "integer", "datetime"]
    suffix = pgbinary.constants([v.as_py() for v in fixed], [v.type for v in fixed], fixed_kinds)
    body = pgbinary.encode(columns, kinds, suffix=suffix, suffix_fields=3)
    repeated = [pa.repeat(v, rows) for v in fixed]
    assert body is not None
    assert bytes(body) == bytes(pgbinary.encode([*columns, *repeated], kinds + fixed_kinds) or b"")
    pg.execute(
        "CREATE TABLE t (a bigint, b double precision, c boolean, d date, e timestamptz, "
        "f bigint, g text, h bigint, s text, r bigint, w timestamptz)"
    )
    copy_binary(pg, "t", bytes(body))
    got = pg.execute("SELECT * FROM t ORDER BY a").fetchall()
    assert got == list(zip(*(c.to_pylist() for c in [*columns, *repeated]), strict=True))


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        (pa.array([1.5]), "integer"),  # a value of another kind
        (pa.array([1]), "float"),
        (pa.array(["2026-01-01"]), "date"),
        (pa.array([dt.datetime(2026, 1, 1)]), "datetime"),  # no time zone
        (pa.array([2**64 - 1], pa.uint64()), "integer"),  # beyond BIGINT
        (pa.array([1]), "decimal"),
        (pa.array([1]), "json"),
    ],
)
def test_what_binary_cannot_carry_is_declined(column: pa.Array, kind: str) -> None:
    assert pgbinary.encode([column], [kind]) is None


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_table_with_other_column_types_gets_csv(store: Store) -> None:
    """An INTEGER or a TIMESTAMP without time zone takes other binary forms: such a table
    is written as CSV, which the server converts like any text."""
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE made_elsewhere (id INTEGER, at TIMESTAMP)"))
        conn.execute(text("CREATE TABLE ours (id BIGINT, at TIMESTAMPTZ)"))
        conn.execute(text("SET LOCAL TIME ZONE 'UTC'"))
        target = TargetTable(conn, "made_elsewhere", source_id="s", key=["id"])
        target.kinds.update(id="integer", at="datetime")
        moment = dt.datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
        columns = [
            pa.array([1, 2], pa.int64()),
            pa.array([moment, None], pa.timestamp("us", "UTC")),
        ]
        for table in ("made_elsewhere", "ours"):
            bulk._copy_into(target, table, ["id", "at"], columns)
        assert target.binary_layouts == {
            ("made_elsewhere", ("id", "at"), ("integer", "datetime")): False,
            ("ours", ("id", "at"), ("integer", "datetime")): True,
        }
        elsewhere = conn.execute(text("SELECT id, at FROM made_elsewhere ORDER BY id")).all()
        assert [tuple(r) for r in elsewhere] == [(1, moment.replace(tzinfo=None)), (2, None)]
        ours = conn.execute(text("SELECT id, at FROM ours ORDER BY id")).all()
        assert [tuple(r) for r in ours] == [(1, moment), (2, None)]
