"""Bounded expressions: refused at apply when they cannot work, stopped per record at a
limit (the record quarantined with the field and the limit named, the run going on), and
a server that keeps answering while records with expensive expressions are mapped."""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from factorysync import expressions
from factorysync.engine.mapping import Mapper, MappingConfig
from factorysync.engine.runner import Runner
from factorysync.errors import MappingError
from factorysync.expressions import MAX_CPU_S, compile_expression
from factorysync.intake import parse_source, parse_sources
from factorysync.store.registry_save import apply_declarations
from factorysync.store.schema import data_source_quarantine as quarantine_t
from factorysync.store.store import Store
from factorysync.store.targets import read_rows
from tests.conftest import write_json

ATTACK = "(9**4000000) * (9**4000000) > 1"
DATA_ATTACK = "(value**4000000) * (value**4000000) > 1"
# Within every size limit, but about 64 million comparisons: only the CPU limit stops it.
SLOW = "max([max(row['xs']) for x in row['xs']])"
SLOW_XS = list(range(8000))


def source(source_id: str, path: Path, **mapping: Any) -> dict[str, Any]:
    strategy = mapping.pop("sync_strategy", "full")
    return {
        "source_id": source_id,
        "name": source_id,
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [
            {"target_table": source_id, "sync_strategy": strategy, "mapping_config": mapping}
        ],
    }


def register(store: Store, *sources: dict[str, Any]) -> None:
    with store.begin() as conn:
        apply_declarations(conn, parse_sources({"sources": list(sources)}), store.box)


def quarantined(store: Store, source_id: str) -> list[tuple[Any, list[str]]]:
    with store.connect() as conn:
        rows = conn.execute(
            select(quarantine_t.c.record, quarantine_t.c.reasons)
            .where(quarantine_t.c.source_id == source_id)
            .order_by(quarantine_t.c.id)
        ).all()
    return [(r.record, r.reasons) for r in rows]


def rows_by_id(store: Store, table: str) -> dict[Any, dict[str, Any]]:
    with store.connect() as conn:
        return {r["id"]: r for r in read_rows(conn, table)}


def evaluate(source: str, value: Any = None, row: Any = None) -> Any:
    return compile_expression(source, "col", storable=True)(value, row)


# -- at apply ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        (ATTACK, "exponent 4000000 is above the limit of 4096"),
        ("10**1000000", "exponent 1000000 is above the limit of 4096"),
        ("value + 3**3000", "3 ** 3000 has more than 4096 bits, the integer limit"),
        ("value + " + "9" * 1300, "an integer of 4319 bits is above the limit of 4096"),
        ("1 << 100000", "has more than 4096 bits"),
        ("value + 1/0", "'1 / 0' fails: division by zero"),
        ("f'{value:>99999999}'", "format width 99999999 in '>99999999' is above the limit"),
        ("value +", "is not valid"),
        ("valeu * 2", "unknown name 'valeu'"),
        ("system('x')", "unknown name 'system'"),
        ("value @ value", "operator MatMult is not available"),
        ("value + " * 300 + "1", "characters long: the limit is 2000"),
        ("-" * 150 + "value", "nests deeper than 100 levels"),
    ],
)
def test_expressions_that_cannot_work_are_refused_at_apply(expr: str, reason: str) -> None:
    raw = source("limits", Path("x.json"), fields={"id": "id", "temp_c": {"expr": expr}})
    decl, problems = parse_source(raw)
    assert decl is None
    assert len(problems) == 1, problems
    path, _, message = problems[0].partition(": ")
    assert path == "source" and message.startswith("mappings.0.mapping_config.fields.temp_c.")
    assert reason in message


def test_a_huge_constant_is_refused_at_apply() -> None:
    raw = source("limits", Path("x.json"), fields={"id": "id", "n": {"value": 10**20}})
    _, problems = parse_source(raw)
    assert problems == [
        "source: mappings.0.mapping_config.fields.n.spec.value: 100000000000000000000 does "
        "not fit a 64-bit integer column (-9223372036854775808 to 9223372036854775807); "
        "write it as text or a decimal number"
    ]


# -- per evaluation ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "value", "row", "reason"),
    [
        (DATA_ATTACK, 9, None, "exponent 4000000 is above the limit of 4096"),
        ("10 ** value", 1000000, None, "exponent 1000000 is above the limit of 4096"),
        ("value ** 4000", 3, None, "3 ** 4000 has more than 4096 bits"),
        ("(value ** 4000) * (value ** 4000)", 2, None, "has more than 4096 bits"),
        ("value << 5000", 1, None, "1 << 5000 has more than 4096 bits"),
        ("'ab' * value", 10**6, None, "repeating a str 1000000 times makes more than 100000"),
        ("[row] * value", 10**9, {"a": "x" * 100}, "repeating a list 1000000000 times"),
        ("value.ljust(10**9)", "a", None, "ljust(1000000000) is above the limit 100000"),
        (
            "value.replace('a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')",
            "a" * 5000,
            None,
            "replace would make a text longer than 100000",
        ),
        ("'x' * 60000 + value", "y" * 60000, None, "a text of more than 100000 characters"),
        ("'%999999999d' % value", 1, None, "format width 999999999 in '%999999999d'"),
        ("'%*d' % (value, 1)", 5, None, "a '*' width in '%*d' is not allowed"),
        ("f'{value:>{row}}'", 1, 99999999, "format width 99999999"),
        ("value.strftime('%99999999Y')", date(2026, 1, 5), None, "format width 99999999"),
        ("value.year.real", date(2026, 1, 5), None, "'.real' is not available on int values"),
        ("int(value)", Decimal("1E+999999999"), None, "has more than 1233 digits"),
        ("round(value, -10**6)", 123, None, "round to -1000000 digits: the limit is 1000"),
        ("[value * 50 for x in row]", "a" * 2000, list(range(100)), "built more than 1000000"),
        ("str([row] * 100)", None, list(range(5000)), "repeating a list 100 times"),
        (SLOW, None, {"xs": SLOW_XS}, f"more than {MAX_CPU_S} s of CPU time, the limit"),
        ("(-8) ** 0.5", None, None, "it gives a complex, which no column can hold"),
        ("{value}", 1, None, "it gives a set, which no column can hold"),
        ("[value]", 2**70, None, "holding an integer beyond 64 bits"),
        ("row['missing'] * 2", None, {}, "no field or key 'missing'"),
        ("row['xs'][10]", None, {"xs": [1]}, "list index out of range"),
    ],
)
def test_a_limit_or_an_error_stops_one_evaluation(
    expr: str, value: Any, row: Any, reason: str
) -> None:
    run = compile_expression(expr, "col", storable=True)
    started = time.thread_time()
    with pytest.raises(MappingError) as info:
        run(value, row)
    assert time.thread_time() - started < MAX_CPU_S + 0.5
    message = str(info.value)
    assert message.startswith("col: expression ")
    assert reason in message
    assert len(message) < 600  # huge values are described, not printed


def test_the_step_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expressions, "MAX_STEPS", 1_000)
    run = compile_expression("[x + x + x for x in row]", "col")
    assert len(run(None, list(range(50)))) == 50
    with pytest.raises(MappingError, match="it took more than 1000 steps, the limit"):
        run(None, list(range(500)))


def test_limits_are_per_evaluation() -> None:
    """Counters start again for every record (a comprehension of 6000 items, twice, is
    within the 10000 items simpleeval allows one evaluation)."""
    run = compile_expression("len([x for x in row])", "col")
    assert [run(None, list(range(6000))) for _ in range(3)] == [6000] * 3


def test_ordinary_expressions_still_work() -> None:
    cases: list[tuple[str, Any, Any, Any]] = [
        ("round((value - 32) * 5 / 9, 1)", 212, None, 100.0),
        ("value * 10**18", 9, None, 9 * 10**18),
        ("2 ** 62 + value", 1, None, 2**62 + 1),
        ("row.machine + '-' + str(value).zfill(3)", 7, {"machine": "M1"}, "M1-007"),
        ("row.items[0] if row.items else None", None, {"items": [4]}, 4),
        ("row.get('qty', 0) * 2", None, {"qty": 3}, 6),
        ("value.replace(',', '.')", "1,5", None, "1.5"),
        ("'-'.join([str(x) for x in row])", None, [1, 2], "1-2"),
        ("'Batch 2026-%05d' % value", 5, None, "Batch 2026-00005"),
        ("f'{value:.2f}'", 1.005, None, "1.00"),
        ("[x * 2 for x in row]", None, [1, 2], [2, 4]),
        ("max(row) if row else 0", None, [3, 9], 9),
    ]
    for expr, value, row, expected in cases:
        assert evaluate(expr, value, row) == expected, expr


def test_expressions_cannot_change_the_record() -> None:
    for expr in ("row.clear()", "row.pop('a')", "row.update({'a': 2})", "row.setdefault('b')"):
        with pytest.raises(ValueError, match="unknown method"):
            compile_expression(expr)
    run = compile_expression("row.a.count(1)")
    record = {"a": [1, 1]}
    assert run(None, record) == 2 and record == {"a": [1, 1]}


def test_mapper_rejects_what_no_column_can_hold() -> None:
    config = MappingConfig.model_validate(
        {
            "fields": {
                "qty": {"from": "q", "type": "integer", "expr": "value * 10**18"},
                "big": {"from": "q", "type": "decimal", "expr": "int(value) * 10**30"},
            }
        }
    )
    mapper = Mapper(config)
    assert mapper.map({"q": 9}) == {"qty": 9 * 10**18, "big": Decimal(9 * 10**30)}
    with pytest.raises(MappingError) as info:
        mapper.map({"q": 100})
    assert str(info.value) == (
        "qty: the integer 100000000000000000000 does not fit a 64-bit integer column "
        "(-9223372036854775808 to 9223372036854775807)"
    )
    where = Mapper(MappingConfig.model_validate({"where": "row['n'] ** row['e'] > 0"}))
    with pytest.raises(MappingError, match=r"^where: expression .* exponent 5000"):
        where.expand({"n": 10, "e": 5000})


# -- in a run ---------------------------------------------------------------------------
def test_a_record_at_a_limit_is_quarantined_and_the_run_goes_on(
    store: Store, data_dir: Path
) -> None:
    mapping: dict[str, Any] = {
        "sync_strategy": "incremental",
        "primary_key": ["id"],
        "cursor_field": "ts",
        "fields": {
            "id": "id",
            "ts": {"from": "ts", "type": "integer"},
            "scaled": {"from": "e", "type": "integer", "expr": "10 ** value"},
        },
    }
    path = write_json(data_dir / "scale.json", [{"id": i, "ts": 1, "e": i} for i in (1, 2, 3)])
    register(
        store,
        source("scale", path, **mapping),
        source("scale_skip", path, **mapping, on_invalid="skip"),
        source("scale_fail", path, **mapping, on_invalid="fail"),
    )
    runner = Runner(store)
    first = runner.sync("scale")
    assert (first.sync_status, first.records_inserted, first.records_rejected) == ("success", 3, 0)
    before = rows_by_id(store, "scale")

    # A later version of every record: 2's exponent is now far beyond the limit, 3's
    # result beyond an integer column; 1 is ordinary.
    write_json(
        path,
        [{"id": 1, "ts": 2, "e": 4}, {"id": 2, "ts": 2, "e": 1000000}, {"id": 3, "ts": 2, "e": 30}],
    )
    second = runner.sync("scale")
    assert second.sync_status == "success", second.error_message
    assert (second.records_processed, second.records_updated) == (3, 1)
    assert second.records_rejected == 2
    after = rows_by_id(store, "scale")
    assert after[1]["scaled"] == 10_000
    assert after[2] == before[2] and after[3] == before[3]  # earlier rows untouched
    reasons = {record["id"]: reasons for record, reasons in quarantined(store, "scale")}
    assert reasons == {
        2: [
            "scaled: expression '10 ** value' stopped for value 1000000: exponent 1000000 "
            "is above the limit of 4096"
        ],
        3: [
            "scaled: the integer 1000000000000000000000000000000 does not fit a 64-bit "
            "integer column (-9223372036854775808 to 9223372036854775807)"
        ],
    }

    skipped = runner.sync("scale_skip")
    assert (skipped.sync_status, skipped.records_inserted, skipped.records_rejected) == (
        "success",
        1,
        2,
    )
    assert quarantined(store, "scale_skip") == []
    failed = runner.sync("scale_fail")
    assert failed.sync_status == "failed"
    assert "exponent 1000000 is above the limit of 4096" in (failed.error_message or "")


# -- a real server --------------------------------------------------------------------
class HealthProbe:
    """Asks /api/health over and over in a thread; keeps each answer's latency."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[tuple[float, float]] = []  # (sent at, seconds)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx2

        with httpx2.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    ok = client.get("/api/health").status_code == 200
                except httpx2.TransportError as exc:
                    ok = False
                    self.failures.append(repr(exc))
                self.latencies.append((sent, time.monotonic() - sent))
                if not ok:
                    self.failures.append("health did not answer 200")
                self._stop.wait(0.05)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def during(self, start: float, end: float) -> list[float]:
        return [latency for sent, latency in self.latencies if start <= sent <= end]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_server_answers_while_expensive_expressions_run(
    store: Store, env: dict[str, str], data_dir: Path
) -> None:
    import httpx2

    from factorysync.store import accounts as auth
    from tests.api.conftest import start_server

    password = "Expr-Limits-2026"
    with store.begin() as conn:
        auth.create_user(conn, "admin1", "admin", password=password)
        token, _ = auth.create_token(conn, "admin1", name="tests")
    slow = [{"id": i, "xs": SLOW_XS, "v": 1} for i in range(10)]
    attack = [{"id": 100 + i, "xs": [1], "v": 9} for i in range(3)]
    good = [{"id": 200 + i, "xs": [i], "v": 1} for i in range(5)]
    path = write_json(data_dir / "slow.json", {"data": slow + attack + good})
    mapping = {
        "records_path": "data",
        "primary_key": ["id"],
        "fields": {
            "id": "id",
            "slow": {"from": "id", "expr": SLOW},
            "big": {"from": "v", "expr": DATA_ATTACK},
        },
    }
    headers = {"Authorization": f"Bearer {token}"}
    server = start_server("serve", env=env)
    try:
        with (
            httpx2.Client(base_url=server.url, timeout=120) as client,
            HealthProbe(server.url) as probe,
        ):
            created = client.post(
                "/api/sources", json=source("slow", path, **mapping), headers=headers
            )
            assert created.status_code == 201, created.text

            # A sync through the API.
            started = time.monotonic()
            run = client.post("/api/sources/slow/sync", headers=headers).json()
            while True:
                done = client.get(f"/api/runs/{run['run_id']}", headers=headers).json()
                if done["sync_status"] != "running":
                    break
                time.sleep(0.1)
            synced = time.monotonic()

            # A preview from the console's source form: the first 10 records (the slow).
            page = client.get("/login").text
            csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            login = client.post(
                "/login",
                data={"username": "admin1", "password": password, "csrf": csrf, "next": "/sources"},
            )
            assert login.status_code == 303, login.text
            sources = client.get("/sources").text
            csrf = sources.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            form = {
                "csrf": csrf,
                "intent": "preview",
                "source_type": "json",
                "connection_type": "file",
                "source_id": "slow_preview",
                "name": "slow preview",
                "priority": "2",
                "refresh_interval": "300",
                "cfg.file_path": str(path),
                "target_table": "slow_preview",
                "records_path": "data",
                "f.col.0": "id",
                "f.col.1": "slow",
                "f.from.1": "id",
                "f.expr.1": SLOW,
            }
            previewed_from = time.monotonic()
            preview = client.post("/sources/new", data=form, headers={"X-Fragment": "probe"})
            previewed = time.monotonic()
    finally:
        server.stop()

    assert done["sync_status"] == "success", done
    assert (done["records_inserted"], done["records_rejected"]) == (5, 13)
    reasons = {record["id"]: r for record, r in quarantined(store, "slow")}
    assert all(
        reasons[i][0].startswith(f"slow: expression {SLOW!r} stopped for value {i}: it took ")
        and reasons[i][0].endswith(f"more than {MAX_CPU_S} s of CPU time, the limit")
        for i in range(10)
    ), reasons
    assert all(
        reasons[100 + i]
        == [
            f"big: expression {DATA_ATTACK!r} stopped for value 9: exponent "
            "4000000 is above the limit of 4096"
        ]
        for i in range(3)
    ), reasons
    assert preview.status_code == 200, preview.text
    assert "record 1: slow: expression" in preview.text and "s of CPU time, the limit" in (
        preview.text
    )

    assert not probe.failures, probe.failures
    # The sync ran at least 10 × MAX_CPU_S of CPU, the preview as much: the probe asked
    # many times meanwhile, and every answer came quickly.
    for start, end in ((started, synced), (previewed_from, previewed)):
        assert end - start >= 10 * MAX_CPU_S
        during = probe.during(start, end)
        assert len(during) >= 5, (len(during), end - start)
        assert max(during) < 2.0, sorted(during)[-5:]
