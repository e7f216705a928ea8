"""The real ``factorysync`` command: exit codes, one-line errors, --json output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli, write_json


@pytest.fixture
def sources_file(tmp_path: Path, data_dir: Path) -> Path:
    write_json(
        data_dir / "prod.json",
        {
            "data": [
                {
                    "machine": "M1",
                    "timestamp": "2026-01-05T07:00:00+07:00",
                    "good": 10,
                    "temp_f": 212,
                },
                {
                    "machine": "M2",
                    "timestamp": "2026-01-05T07:00:00+07:00",
                    "good": 12,
                    "temp_f": 50,
                },
            ]
        },
    )
    doc = {
        "sources": [
            {
                "source_id": "actual_production",
                "name": "Aktual Produksi",
                "source_type": "json",
                "priority": 1,
                "refresh_interval": 300,
                "connections": [
                    {
                        "connection_name": "primary",
                        "connection_type": "file",
                        "is_primary": True,
                        "connection_config": {"file_path": "prod.json", "file_type": "json"},
                    }
                ],
                "mappings": [
                    {
                        "target_table": "production_data",
                        "sync_strategy": "full",
                        "mapping_config": {
                            "records_path": "data",
                            "primary_key": ["machine_id", "ts"],
                            "fields": {
                                "machine_id": "machine",
                                "ts": {
                                    "from": "timestamp",
                                    "type": "datetime",
                                    "timezone": "Asia/Jakarta",
                                },
                                "qty_good": {"from": "good", "type": "integer"},
                                "temperature_c": {
                                    "from": "temp_f",
                                    "type": "float",
                                    "expr": "(value - 32) * 5 / 9",
                                },
                            },
                            "validate": [{"field": "qty_good", "rule": "min", "value": 0}],
                            "on_invalid": "quarantine",
                        },
                    }
                ],
            }
        ]
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_end_to_end_commands(env: dict[str, str], sources_file: Path) -> None:
    assert "schema revision" in run_cli("init", check=True).stdout
    applied = run_cli("apply", str(sources_file), check=True).stdout
    assert "+ actual_production (created)" in applied and "1 created" in applied
    assert "1 unchanged" in run_cli("apply", str(sources_file), check=True).stdout

    listed = json.loads(run_cli("source", "list", "--json", check=True).stdout)
    assert [s["source_id"] for s in listed] == ["actual_production"]
    assert {"name", "status", "last_sync", "next_sync", "priority"} <= set(listed[0])

    synced = json.loads(run_cli("source", "sync", "actual_production", "--json", check=True).stdout)
    assert synced[0]["sync_status"] == "success" and synced[0]["records_inserted"] == 2
    url = env["FACTORYSYNC_DATABASE_URL"]
    if url.startswith("sqlite:///"):
        # The command closed the store before it ended: SQLite removed its write-ahead log.
        assert Path(url.removeprefix("sqlite:///")).exists()
        assert not Path(url.removeprefix("sqlite:///") + "-wal").exists()

    runs = json.loads(run_cli("history", "actual_production", "--json", check=True).stdout)
    assert runs[0]["sync_status"] == "success"
    for key in (
        "records_processed",
        "records_inserted",
        "records_updated",
        "records_deleted",
        "sync_started_at",
    ):
        assert key in runs[0]
    status = json.loads(run_cli("status", "--json", check=True).stdout)
    assert status["sources"] == 1 and status["by_status"] == {"active": 1}

    assert run_cli("source", "disable", "actual_production", check=True)
    listed = json.loads(run_cli("source", "list", "--json", check=True).stdout)
    assert listed[0]["status"] == "inactive"
    run_cli("source", "enable", "actual_production", check=True)


def test_failures_exit_non_zero_with_one_line(
    env: dict[str, str], sources_file: Path, data_dir: Path
) -> None:
    run_cli("init", check=True)
    run_cli("apply", str(sources_file), check=True)
    (data_dir / "prod.json").write_text('{"data": [{"machine": "M1"')
    proc = run_cli("source", "sync", "actual_production")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: 1 sync(s) failed: actual_production:")
    assert "invalid JSON" in proc.stderr and "Traceback" not in proc.stderr

    missing = run_cli("source", "sync", "nope")
    assert missing.returncode == 1 and missing.stderr.strip() == (
        "error: no source 'nope' (see 'factorysync source list')"
    )
    bad = run_cli("apply", str(sources_file.with_name("missing.yaml")))
    assert bad.returncode == 2 and "missing.yaml: file not found" in bad.stderr
    usage = run_cli("source", "sync")
    assert usage.returncode == 2 and "Missing argument" in usage.stderr


def test_commands_refuse_an_uninitialised_store(tmp_path: Path) -> None:
    proc = run_cli(
        "source",
        "list",
        cwd=tmp_path,
        env={"FACTORYSYNC_DATABASE_URL": f"sqlite:///{tmp_path}/new.db"},
    )
    assert proc.returncode == 1
    assert "is not initialised: run 'factorysync init'" in proc.stderr
