"""The demo data set: shape, keys, determinism, size scaling and constant.js."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from factorysync.demo import DemoSource, generate_demo

CAMEL = re.compile(r"^[a-z]+[A-Z]")
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+07:00$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MB = 1024 * 1024


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DemoSource]]:
    root = tmp_path_factory.mktemp("demo")
    return root, generate_demo(root, size_mb=2)


def records_of(root: Path, source: DemoSource) -> list[Any]:
    document = json.loads((root / source.file_path).read_text(encoding="utf-8"))
    if source.records_path is None:
        assert isinstance(document, list), source.file_path
        return document
    assert isinstance(document, dict), source.file_path
    return document[source.records_path]


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def json_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.json"))


def test_sources_are_numbered_and_placed(demo: tuple[Path, list[DemoSource]]) -> None:
    root, sources = demo
    assert len(sources) >= 44
    assert [s.id for s in sources] == list(range(1, len(sources) + 1))
    paths = [s.file_path for s in sources]
    assert len(set(paths)) == len(paths)
    for s in sources:
        assert s.file_path.startswith("data/") and "\\" not in s.file_path
        assert s.file_path.endswith("/" + s.file_name)
        assert s.file_path.split("/")[1] == s.category
        assert 1 <= len(s.primary_key) <= 2
        assert (root / s.file_path).is_file()


def test_categories_cover_the_dashboard(demo: tuple[Path, list[DemoSource]]) -> None:
    _, sources = demo
    categories = {s.category for s in sources}
    expected = {
        "production",
        "oee",
        "downtime",
        "quality",
        "energy",
        "equipment",
        "calendar",
        "layout",
        "kpi",
        "product",
    }
    assert expected <= categories
    names = {s.name for s in sources}
    assert {
        "OFM",
        "OFE",
        "NRFC",
        "NRFW",
        "NRDAE",
        "Aktual Produksi",
        "Target Produksi",
        "Kalender Produksi",
        "Jadwal Shift",
        "OEE per Machine",
    } <= names


def test_every_file_parses_with_unique_keys(demo: tuple[Path, list[DemoSource]]) -> None:
    root, sources = demo
    for s in sources:
        records = records_of(root, s)
        assert isinstance(records, list) and records, s.file_path
        assert all(isinstance(r, dict) for r in records), s.file_path
        keys = []
        for r in records:
            key = tuple(r.get(field) for field in s.primary_key)
            assert all(v is not None and not isinstance(v, dict | list) for v in key), (
                s.file_path,
                r,
            )
            keys.append(key)
        assert len(set(keys)) == len(keys), f"duplicate key in {s.file_path}"


def test_wrapped_files_hold_exactly_one_record_list(demo: tuple[Path, list[DemoSource]]) -> None:
    root, sources = demo
    wrapped = [s for s in sources if s.records_path]
    assert len(wrapped) >= 8
    for s in wrapped:
        document = json.loads((root / s.file_path).read_text(encoding="utf-8"))
        assert "updated_at" in document
        lists = [
            k
            for k, v in document.items()
            if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)
        ]
        assert lists == [s.records_path], s.file_path


def test_record_shapes_vary_like_a_front_end(demo: tuple[Path, list[DemoSource]]) -> None:
    root, sources = demo
    nested, camel = set(), set()
    for s in sources:
        for r in records_of(root, s)[:50]:
            if any(isinstance(v, dict | list) for v in r.values()):
                nested.add(s.id)
            if any(CAMEL.match(k) for k in r):
                camel.add(s.id)
    assert len(nested) >= 4
    assert len(camel) >= 5


def test_times_are_jakarta_iso_strings_from_the_base_date(
    demo: tuple[Path, list[DemoSource]],
) -> None:
    root, sources = demo
    by_file = {s.file_name: s for s in sources}
    production = records_of(root, by_file["actual_production.json"])
    assert production[0]["ts"] == "2026-01-05T07:00:00+07:00"
    for s in sources:
        for r in records_of(root, s)[:200]:
            for field, value in r.items():
                if field == "ts" or field.endswith("_ts"):
                    assert TS.match(value), (s.file_path, field, value)
                if field == "date":
                    assert DATE.match(value), (s.file_path, field, value)


def test_oee_is_the_product_of_its_factors(demo: tuple[Path, list[DemoSource]]) -> None:
    root, sources = demo
    source = next(s for s in sources if s.file_name == "oee_machine.json")
    for r in records_of(root, source):
        for field in ("availability", "performance", "quality", "oee"):
            assert 0 < r[field] <= 1
        assert r["oee"] == pytest.approx(
            r["availability"] * r["performance"] * r["quality"], abs=2e-4
        )


def test_production_is_consistent_and_rejects_are_a_few_percent(
    demo: tuple[Path, list[DemoSource]],
) -> None:
    root, sources = demo
    by_file = {s.file_name: s for s in sources}
    hourly = records_of(root, by_file["actual_production.json"])
    daily = records_of(root, by_file["target_vs_actual.json"])
    good: dict[tuple[str, str], int] = {}
    total = rejects = 0
    for r in hourly:
        key = (r["date"], r["line_id"])
        good[key] = good.get(key, 0) + r["qty_good"]
        total += r["qty_actual"]
        rejects += r["qty_reject"]
    assert {(r["date"], r["line_id"]): r["actual"] for r in daily} == good
    assert 0.003 < rejects / total < 0.05


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path) -> None:
    first = all_files(_generate(tmp_path / "a", seed=7))
    second = all_files(_generate(tmp_path / "b", seed=7))
    other = all_files(_generate(tmp_path / "c", seed=8))
    assert first == second
    assert first.keys() == other.keys()
    assert first != other


def _generate(root: Path, seed: int) -> Path:
    generate_demo(root, size_mb=1, seed=seed)
    return root


@pytest.mark.parametrize("size_mb", [2, 20])
def test_total_size_follows_size_mb(tmp_path: Path, size_mb: float) -> None:
    generate_demo(tmp_path, size_mb=size_mb)
    assert json_bytes(tmp_path) == pytest.approx(size_mb * MB, rel=0.3)


def test_progress_reports_every_file(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    sources = generate_demo(tmp_path, size_mb=1, progress=lambda d, t: calls.append((d, t)))
    total = len(sources) + 1
    assert calls == [(done, total) for done in range(1, total + 1)]


def test_constant_js_is_front_end_syntax(demo: tuple[Path, list[DemoSource]]) -> None:
    root, sources = demo
    text = (root / "constant.js").read_text(encoding="utf-8")
    assert text.startswith("// Data sources for the plant dashboard")
    assert "export const default_source_data = [" in text
    assert "/*" in text and "*/" in text
    assert re.search(r"^\s*// ", text, re.MULTILINE)
    assert re.search(r",\s*\n\s*\];", text), "trailing comma before the closing bracket"
    assert re.search(r",\s*\n?\s*}", text), "trailing comma inside an entry"
    assert "export const refresh_ms" in text.split("];", 1)[1]
    array = text[text.index("= [") + 2 : text.index("];") + 1]
    with pytest.raises(json.JSONDecodeError):
        json.loads(array)
    for s in sources:
        assert s.file_name in text and s.file_path in text


def test_constant_js_entries_match_the_sources(demo: tuple[Path, list[DemoSource]]) -> None:
    json5 = pytest.importorskip("json5")
    root, sources = demo
    text = (root / "constant.js").read_text(encoding="utf-8")
    entries = json5.loads(text[text.index("= [") + 2 : text.index("];") + 1])
    assert [(e["id"], e["name"], e["type"], e["fileName"], e["filePath"]) for e in entries] == [
        (s.id, s.name, "json", s.file_name, s.file_path) for s in sources
    ]


def test_rejects_non_positive_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_demo(tmp_path, size_mb=0)
