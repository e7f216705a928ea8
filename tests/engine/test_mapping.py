"""Mapping: column names, paths, casts, transforms, validation; bad values named clearly."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from factorysync.engine.mapping import FieldSpec, Mapper, MappingConfig, parse_path, snake_case
from factorysync.engine.quality import Validator
from factorysync.errors import MappingError


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("machineId", "machine_id"),
        ("qtyGood", "qty_good"),
        ("OEE %", "oee"),
        ("Temp (C)", "temp_c"),
        ("HTTPStatus", "http_status"),
        ("2nd_shift", "c_2nd_shift"),
        ("__id", "id"),
        ("", "field"),
        ("Produksi Aktual", "produksi_aktual"),
    ],
)
def test_snake_case(name: str, column: str) -> None:
    assert snake_case(name) == column


def test_paths() -> None:
    assert parse_path("a.b[0].c") == ("a", "b", 0, "c") == parse_path("a.b.0.c")
    with pytest.raises(ValueError, match="empty segment"):
        parse_path("a..b")


def mapper(fields: dict[str, object], **extra: object) -> Mapper:
    return Mapper(MappingConfig.model_validate({"fields": fields, **extra}))


def test_explicit_fields_and_casts() -> None:
    m = mapper(
        {
            "machine_id": "machine.id",
            "first_axis": "machine.axes[0]",
            "ts": {"from": "time", "type": "datetime", "timezone": "Asia/Jakarta"},
            "day": {"from": "day", "type": "date", "format": "%d/%m/%Y"},
            "qty": {"from": "qty", "type": "integer"},
            "price": {"from": "price", "type": "decimal"},
            "ok": {"from": "ok", "type": "boolean"},
            "line": {"value": "LINE-A"},
            "shift": {"from": "shift", "map": {"1": "S1", "2": "S2"}},
            "code": {"from": "code", "trim": True, "case": "upper"},
            "temperature_c": {
                "from": "temp_f",
                "type": "float",
                "expr": "round((value - 32) * 5 / 9, 1)",
            },
            "missing": {"from": "nope", "default": 0},
        }
    )
    row = m.map(
        {
            "machine": {"id": "M1", "axes": [3, 4]},
            "time": "2026-01-05 07:00:00",
            "day": "05/01/2026",
            "qty": "12",
            "price": "1.10",
            "ok": "ya",
            "shift": 2,
            "code": "  ab-1 ",
            "temp_f": 212,
        }
    )
    assert row == {
        "machine_id": "M1",
        "first_axis": 3,
        "ts": datetime(2026, 1, 5, 0, 0, tzinfo=UTC),
        "day": date(2026, 1, 5),
        "qty": 12,
        "price": Decimal("1.10"),
        "ok": True,
        "line": "LINE-A",
        "shift": "S2",
        "code": "AB-1",
        "temperature_c": 100.0,
        "missing": 0,
    }


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        ({"type": "integer"}, "12.5", "qty: cannot convert '12.5' to integer: not an integer"),
        ({"type": "integer"}, True, "qty: cannot convert True to integer"),
        ({"type": "float"}, "abc", "qty: cannot convert 'abc' to float"),
        ({"type": "boolean"}, "maybe", "qty: cannot convert 'maybe' to boolean: not a boolean"),
        ({"type": "date"}, "2026-13-45", "qty: cannot convert '2026-13-45' to date"),
        (
            {"type": "datetime", "format": "%Y/%m/%d"},
            "05-01-2026",
            "qty: cannot convert '05-01-2026' to datetime",
        ),
        ({"type": "decimal"}, "1,5", "qty: cannot convert '1,5' to decimal"),
        (
            {"type": "float", "expr": "value / 0"},
            5,
            "qty: expression 'value / 0' failed for value 5.0",
        ),
        ({"expr": "row['missing'] + 1"}, 5, "qty: expression \"row['missing'] + 1\" failed"),
    ],
)
def test_bad_values_name_the_column(spec: dict[str, object], value: object, message: str) -> None:
    m = mapper({"qty": {"from": "q", **spec}})
    with pytest.raises(MappingError) as info:
        m.map({"q": value})
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("__import__('os').system('true')", "unknown name '__import__'"),
        ("open('/etc/passwd').read()", "unknown name 'open'"),
        ("value.__class__", "'.__class__' is not available"),
        ("row.clear()", "unknown method 'clear'"),
        ("(lambda: 1)()", "only the listed functions and methods can be called"),
        ("[f for f in (lambda: 1,)]", "Lambda is not available"),
    ],
)
def test_expression_cannot_reach_python(source: str, reason: str) -> None:
    """Refused when the mapping is applied, before any record is read."""
    with pytest.raises(ValidationError) as info:
        mapper({"x": {"from": "v", "expr": source}})
    assert reason in str(info.value)
    assert "fields.x.spec.expr" in str(info.value).replace("\n", ".")


def test_auto_mode_and_include_unmapped() -> None:
    auto = Mapper(MappingConfig())
    assert auto.map({"machineId": "M1", "nested": {"a": [1]}}) == {
        "machine_id": "M1",
        "nested": {"a": [1]},
    }
    with pytest.raises(MappingError, match="both map to column 'machine_id'"):
        auto.map({"machineId": "M1", "machine_id": "M2"})
    mixed = mapper({"qty": {"from": "qtyGood", "type": "integer"}}, include_unmapped=True)
    assert mixed.map({"qtyGood": "3", "lineName": "A"}) == {"qty": 3, "line_name": "A"}


def test_non_object_record() -> None:
    with pytest.raises(MappingError, match="record is a list, not an object"):
        Mapper(MappingConfig()).map([1, 2])


@pytest.mark.parametrize(
    ("rule", "value", "message"),
    [
        ({"rule": "required"}, None, "qty is required"),
        ({"rule": "min", "value": 0}, -1, "qty = -1 is below the minimum 0"),
        ({"rule": "max", "value": 10}, 11, "qty = 11 is above the maximum 10"),
        ({"rule": "max", "value": 10}, "x", "qty = 'x' is not a number"),
        ({"rule": "regex", "value": "M-[0-9]+"}, "X-1", "qty = 'X-1' does not match 'M-[0-9]+'"),
        ({"rule": "allowed", "value": ["S1", "S2"]}, "S4", "qty = 'S4' is not one of ['S1', 'S2']"),
    ],
)
def test_validation_rules(rule: dict[str, object], value: object, message: str) -> None:
    from factorysync.engine.mapping import ValidationRule

    validator = Validator([ValidationRule.model_validate({"field": "qty", **rule})])
    assert validator.check({"qty": value}) == [message]


def test_unique_rule_within_run() -> None:
    from factorysync.engine.mapping import ValidationRule

    validator = Validator([ValidationRule(field="id", rule="unique")])
    assert validator.check({"id": 1}) == []
    assert validator.check({"id": 1}) == ["id = 1 appears more than once in this run"]


def test_field_spec_accepts_from_alias() -> None:
    assert FieldSpec.model_validate({"from": "a.b"}).from_ == "a.b"
