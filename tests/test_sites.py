"""Sites (DESIGN §8): the ``sites:`` list of a sources file and ``site:`` on sources,
applied, exported and read back unchanged; their validation; ``FACTORYSYNC_SITE``; and
the ``--site`` filters of ``source list``, ``status`` and ``history``, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import select

from factorysync import services
from factorysync.config.sites import SiteDecl
from factorysync.engine.runner import Runner
from factorysync.errors import ConfigError
from factorysync.export import export_sources
from factorysync.services import sites as site_service
from factorysync.settings import Settings
from factorysync.store.schema import data_source_registry as reg_t
from factorysync.store.schema import sites as sites_t
from factorysync.store.store import Store
from tests.conftest import run_cli, write_json

SHIFTS = [
    {"name": "A", "start": "06:00", "end": "14:00"},
    {"name": "B", "start": "14:00", "end": "22:00"},
    {"name": "C", "start": "22:00", "end": "06:00"},
]


def source(sid: str, data_dir: Path, **over: Any) -> dict[str, Any]:
    path = write_json(data_dir / f"{sid}.json", [{"id": 1, "qty": 3}])
    return {
        "source_id": sid,
        "name": sid.upper(),
        "source_type": "json",
        "connections": [{"connection_config": {"file_path": str(path)}}],
        "mappings": [{"target_table": sid, "mapping_config": {"primary_key": ["id"]}}],
        **over,
    }


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def plants(data_dir: Path) -> dict[str, Any]:
    return {
        "sites": [
            {
                "name": "cikarang",
                "time_zone": "Asia/Jakarta",
                "description": "Plant 1",
                "shifts": SHIFTS,
            },
            {
                "name": "surabaya",
                "time_zone": "Asia/Jakarta",
                "shifts": [
                    {"name": "day", "start": "07:00", "end": "19:00", "days": ["mon", "tue"]},
                ],
            },
        ],
        "sources": [
            source("press", data_dir, site="cikarang"),
            source("oven", data_dir, site="surabaya"),
            source("lab", data_dir),
        ],
    }


def sites_of(store: Store) -> dict[str, str]:
    with store.connect() as conn:
        return dict(conn.execute(select(reg_t.c.source_id, reg_t.c.site)).all())


def test_apply_upserts_sites_and_export_reads_back_unchanged(
    store: Store, data_dir: Path, tmp_path: Path
) -> None:
    path = write(tmp_path / "plants.yaml", plants(data_dir))
    changes = services.apply_file(store, path, dry_run=True)
    assert [(c.kind, c.source_id, c.action) for c in changes[:2]] == [
        ("site", "cikarang", "created"),
        ("site", "surabaya", "created"),
    ]
    assert "time_zone: 'Asia/Jakarta'" in changes[0].details
    with store.connect() as conn:  # a dry run keeps nothing
        assert conn.execute(select(sites_t.c.name)).scalars().all() == ["main"]

    services.apply_file(store, path)
    assert sites_of(store) == {"press": "cikarang", "oven": "surabaya", "lab": "main"}
    again = services.apply_file(store, path)
    assert [(c.kind, c.action) for c in again] == [("source", "unchanged")] * 3

    exported = export_sources(store)
    document = yaml.safe_load(exported.text)
    assert [s["name"] for s in document["sites"]] == ["cikarang", "main", "surabaya"]
    assert document["sites"][0]["shifts"] == SHIFTS
    assert {s["source_id"]: s["site"] for s in document["sources"]} == sites_of(store)
    back = write(tmp_path / "export.yaml", document)
    assert {c.action for c in services.apply_file(store, back)} == {"unchanged"}

    # Exporting some sources writes only their sites.
    one = yaml.safe_load(export_sources(store, ["oven"]).text)
    assert [s["name"] for s in one["sites"]] == ["surabaya"]

    # A changed zone and shift are reported, in the dry run too.
    changed = plants(data_dir)
    changed["sites"][0]["time_zone"] = "Asia/Makassar"
    changed["sites"][0]["shifts"] = SHIFTS[:2]
    changed["sources"][2]["site"] = "surabaya"
    path = write(tmp_path / "changed.yaml", changed)
    dry = services.apply_file(store, path, dry_run=True)
    site_change = next(c for c in dry if c.kind == "site")
    assert site_change.source_id == "cikarang" and site_change.action == "updated"
    assert "time_zone: 'Asia/Jakarta' → 'Asia/Makassar'" in site_change.details
    assert "shifts changed" in site_change.details
    lab = next(c for c in dry if c.source_id == "lab")
    assert lab.details == ["site: 'main' → 'surabaya'"]
    assert sites_of(store)["lab"] == "main"


def test_a_source_keeps_its_site_when_the_file_names_none(
    store: Store, data_dir: Path, tmp_path: Path
) -> None:
    services.apply_file(store, write(tmp_path / "a.yaml", plants(data_dir)))
    left_out = plants(data_dir)
    del left_out["sources"][0]["site"]
    changes = services.apply_file(store, write(tmp_path / "b.yaml", left_out))
    assert {c.source_id: c.action for c in changes}["press"] == "unchanged"
    assert sites_of(store)["press"] == "cikarang"


def test_an_undeclared_site_is_refused_naming_the_source(
    store: Store, data_dir: Path, tmp_path: Path
) -> None:
    document = {
        "sources": [
            source("press", data_dir, site="nowhere"),
            source("oven", data_dir, site="elsewhere"),
        ]
    }
    with pytest.raises(ConfigError) as caught:
        services.apply_file(store, write(tmp_path / "s.yaml", document))
    assert caught.value.problems == [
        "sources[0] (source_id 'press'): site: site 'nowhere' is neither declared (in the "
        "file's 'sites:' list) nor registered (known sites: main)",
        "sources[1] (source_id 'oven'): site: site 'elsewhere' is neither declared (in the "
        "file's 'sites:' list) nor registered (known sites: main)",
    ]
    assert sites_of(store) == {}
    # Through the API's way (one source) too.
    with pytest.raises(ConfigError, match="source 'press': site 'nowhere' is neither"):
        services.create_source(store, source("press", data_dir, site="nowhere"))


def test_the_process_site_is_made_on_demand(
    store: Store, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTORYSYNC_SITE", "line-7")
    here = Store(Settings())
    try:
        services.apply_file(here, write(tmp_path / "s.yaml", {"sources": [source("a", data_dir)]}))
        services.create_source(here, source("b", data_dir, site="line-7"))
        assert sites_of(here) == {"a": "line-7", "b": "line-7"}
        assert site_service.get_site(here, "line-7")["time_zone"] is None
    finally:
        here.dispose()


@pytest.mark.parametrize(
    ("site", "problem"),
    [
        ({"name": "Plant.A"}, "sites[0] (name 'Plant.A'): name: name 'Plant.A' is not a valid"),
        ({"name": "x" * 33}, "is not a valid site name: use 1 to 32 lower-case letters"),
        ({"name": "a", "time_zone": "Mars/Olympus"}, "time_zone: unknown time zone 'Mars/Olympus'"),
        (
            {"name": "a", "shifts": [{"name": "A", "start": "6:00", "end": "14:00"}]},
            "sites[0] (name 'a'): shifts.0.start: '6:00' is not a time of day: use HH:MM",
        ),
        (
            {"name": "a", "shifts": [{"name": "A", "start": "06:00", "end": "24:00"}]},
            "shifts.0.end: '24:00' is not a time of day",
        ),
        (
            {"name": "a", "shifts": [{"start": "06:00", "end": "14:00"}]},
            "sites[0] (name 'a'): shifts.0.name: Field required",
        ),
        (
            {"name": "a", "shifts": [{"name": " ", "start": "06:00", "end": "14:00"}]},
            "shifts.0.name: a shift needs a name",
        ),
        (
            {"name": "a", "shifts": [*SHIFTS, {"name": "D", "start": "13:00", "end": "15:00"}]},
            "sites[0] (name 'a'): shifts[3] ('D') overlaps shifts[0] ('A')",
        ),
        (
            {
                "name": "a",
                "shifts": [
                    {"name": "night", "start": "22:00", "end": "06:00", "days": ["sun"]},
                    {"name": "early", "start": "05:00", "end": "07:00", "days": ["mon"]},
                ],
            },
            "shifts[1] ('early') overlaps shifts[0] ('night')",
        ),
        (
            {
                "name": "a",
                "shifts": [{"name": "A", "start": "06:00", "end": "14:00", "days": ["mo"]}],
            },
            "shifts.0.days.0: Input should be 'mon'",
        ),
        ({"name": "a", "colour": "red"}, "sites[0] (name 'a'): colour: Extra inputs"),
    ],
)
def test_bad_sites_are_refused_with_the_path_of_the_field(
    store: Store, data_dir: Path, tmp_path: Path, site: dict[str, Any], problem: str
) -> None:
    document = {"sites": [site], "sources": [source("a", data_dir)]}
    with pytest.raises(ConfigError) as caught:
        services.apply_file(store, write(tmp_path / "s.yaml", document))
    assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert sites_of(store) == {}


def test_a_repeated_site_and_a_bad_source_site_are_refused(
    store: Store, data_dir: Path, tmp_path: Path
) -> None:
    document = {
        "sites": [{"name": "a"}, {"name": "a"}],
        "sources": [source("x", data_dir, site="Bad Site")],
    }
    with pytest.raises(ConfigError) as caught:
        services.apply_file(store, write(tmp_path / "s.yaml", document))
    problems = caught.value.problems
    assert "sites[1] (name 'a'): name repeats sites[0]" in problems
    assert any(
        p.startswith("sources[0] (source_id 'x'): site: site 'Bad Site' is not a valid site name")
        for p in problems
    ), problems


def test_unquoted_yaml_times_are_read_as_times() -> None:
    """YAML 1.1 reads an unquoted 22:30 as the number 1350 (base 60); 06:00 stays text."""
    from factorysync.yamlsafe import load

    raw = load("name: a\nshifts: [{name: C, start: 22:30, end: 06:00}]", "test")
    assert raw["shifts"][0]["start"] == 1350
    site = SiteDecl.model_validate(raw)
    assert (site.shifts[0].start, site.shifts[0].end) == ("22:30", "06:00")


def test_the_shift_at_an_instant_in_the_site_zone() -> None:
    site = SiteDecl.model_validate({"name": "a", "time_zone": "Asia/Jakarta", "shifts": SHIFTS})
    # 23:30 UTC on a Sunday is 06:30 on Monday in Jakarta (UTC+7).
    shift, local = site.shift_at(datetime(2026, 12, 6, 23, 30, tzinfo=UTC))
    assert shift is not None and shift.name == "A" and local.hour == 6
    shift, local = site.shift_at(datetime(2026, 12, 6, 20, 0, tzinfo=UTC))  # 03:00 Monday
    assert shift is not None and shift.name == "C"
    assert site.shift_start(shift, local).isoformat() == "2026-12-06T22:00:00+07:00"
    weekdays = SiteDecl.model_validate(
        {
            "name": "b",
            "shifts": [{"name": "day", "start": "07:00", "end": "19:00", "days": ["mon"]}],
        }
    )
    assert weekdays.shift_at(datetime(2026, 12, 7, 8, 0, tzinfo=UTC))[0] is not None  # Monday
    assert weekdays.shift_at(datetime(2026, 12, 8, 8, 0, tzinfo=UTC))[0] is None  # Tuesday


def test_the_site_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    for good in ("main", "plant-2", "line_7", "a" * 32):
        assert Settings(site=good).site == good
    for bad in ("", "Plant", "a.b", "a b", "a*", "a" * 33):
        with pytest.raises(ValidationError, match="not a valid site name"):
            Settings(site=bad)
    monkeypatch.setenv("FACTORYSYNC_SITE", "factorysync.>")
    failed = run_cli("status")
    assert failed.returncode == 2
    assert failed.stderr.strip() == (
        "error: invalid setting FACTORYSYNC_SITE: site 'factorysync.>' is not a valid site "
        "name: use 1 to 32 lower-case letters, digits, '-' or '_'"
    )


def test_cli_filters_by_site(store: Store, data_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "plants.yaml", plants(data_dir))
    applied = run_cli("apply", str(path), check=True)
    assert "+ site cikarang (created)" in applied.stdout
    assert "sites: 2 created, 0 updated" in applied.stdout
    assert Runner(store).sync("press").sync_status == "success"
    assert Runner(store).sync("oven").sync_status == "success"

    listed = json.loads(
        run_cli("source", "list", "--site", "cikarang", "--json", check=True).stdout
    )
    assert [(s["source_id"], s["site"]) for s in listed] == [("press", "cikarang")]
    table = run_cli("source", "list", "--site", "surabaya", check=True).stdout
    assert "oven" in table and "press" not in table
    shown = json.loads(run_cli("source", "show", "press", "--json", check=True).stdout)
    assert shown["site"] == "cikarang"

    status = json.loads(run_cli("status", "--site", "surabaya", "--json", check=True).stdout)
    assert status["site"] == "surabaya" and status["sources"] == 1
    assert status["runs_last_24h"] == {"success": 1}
    everything = json.loads(run_cli("status", "--json", check=True).stdout)
    assert everything["sources"] == 3
    assert everything["by_site"] == {"cikarang": 1, "main": 1, "surabaya": 1}

    runs = json.loads(run_cli("history", "--site", "cikarang", "--json", check=True).stdout)
    assert [r["source_id"] for r in runs] == ["press"]

    for args in (("source", "list"), ("status",), ("history",)):
        unknown = run_cli(*args, "--site", "nowhere")
        assert unknown.returncode == 1
        assert (
            unknown.stderr.strip()
            == "error: no site 'nowhere' (known sites: cikarang, main, surabaya)"
        )

    sites = json.loads(run_cli("site", "list", "--json", check=True).stdout)
    assert [(s["name"], s["sources"]) for s in sites] == [
        ("cikarang", 1),
        ("main", 1),
        ("surabaya", 1),
    ]
    assert sites[0]["shifts"] == SHIFTS
    at = json.loads(
        run_cli(
            "site", "shift", "cikarang", "--at", "2026-12-07T15:00:00+07:00", "--json", check=True
        ).stdout
    )
    assert at["shift"]["name"] == "B" and at["started_at"] == "2026-12-07T14:00:00+07:00"
    bad = run_cli("site", "shift", "cikarang", "--at", "yesterday")
    assert bad.returncode == 2 and "--at: 'yesterday' is not an ISO 8601 instant" in bad.stderr
