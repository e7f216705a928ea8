"""What happened, said in the user's language (web/messages.py): alerts from rule and
details, validation problems from their kind, run errors with outside text quoted."""

from __future__ import annotations

from typing import Any

import pytest

from factorysync.errors import Problem
from factorysync.intake import parse_source
from factorysync.web.i18n import translator
from factorysync.web.messages import (
    alert_message,
    alert_title,
    cadence_text,
    problem_text,
    run_error,
    template_text,
    trigger_text,
)

EN, ID = translator("en"), translator("id")


def _alert(rule: str, details: dict[str, Any] | None, message: str = "stored") -> dict[str, Any]:
    return {"rule": rule, "details": details, "message": message}


@pytest.mark.parametrize(
    ("rule", "details", "english", "bahasa"),
    [
        (
            "consecutive_failures",
            {"failures": 3, "run_id": 9, "error": "connection 'primary' failed: refused"},
            "3 failed runs in a row; last error: connection “primary” failed: “refused”",
            "3 kali gagal berturut-turut; galat terakhir: koneksi “primary” gagal: “refused”",
        ),
        (
            "stale",
            {"quiet_s": 7200, "limit_s": 900, "expected_s": 300, "succeeded": False},
            "no success since it was added, 2 h ago (expected every 5 min)",
            "belum pernah sukses sejak ditambahkan 2 jam lalu (seharusnya setiap 5 mnt)",
        ),
        (
            "rejected_rows",
            {"run_id": 4, "rejected": 1, "total": 4},
            "run 4 rejected 1 of 4 records (25%)",
            "proses 4 menolak 1 dari 4 rekaman (25%)",
        ),
        (
            "schema_change",
            {"changes": [{"table": "t", "column": "c", "kind": "dropped", "old_type": "int"}]},
            "target schema changed: t.c dropped (was int)",
            "skema tabel tujuan berubah: t.c dihapus (semula int)",
        ),
    ],
)
def test_an_alert_is_said_from_its_rule_and_details(
    rule: str, details: dict[str, Any], english: str, bahasa: str
) -> None:
    assert alert_message(_alert(rule, details), EN) == english
    assert alert_message(_alert(rule, details), ID) == bahasa
    assert alert_title(_alert(rule, details), ID) == ID(f"rule.{rule}")


def test_a_plugin_rule_or_missing_details_show_the_stored_message() -> None:
    plugin = _alert("vibration_high", {"mm_s": 7}, "vibration above 7 mm/s")
    assert alert_message(plugin, ID) == "vibration above 7 mm/s"
    assert alert_title(plugin, ID) == "vibration_high"
    assert alert_message(_alert("rejected_rows", {"run_id": 1}), ID) == "stored"
    assert alert_message(_alert("stale", None), ID) == "stored"
    # Older stale alerts lack the expected interval: a shorter sentence, still translated.
    assert alert_message(_alert("stale", {"quiet_s": 600}), ID) == (
        "tidak ada proses yang berhasil selama 10 mnt"
    )


def test_problems_are_translated_by_kind_keeping_the_path() -> None:
    raw = {
        "source_id": "Bad Id",
        "name": "x",
        "source_type": "json",
        "priority": 7,
        "connections": [{"connection_config": {"file_path": "a.json"}}],
        "mappings": [{"target_table": "ok_table", "sync_strategy": "sometimes"}],
    }
    decl, problems = parse_source(raw, "form")
    assert decl is None
    said = [problem_text(p, ID) for p in problems]
    assert problems[0].startswith("form: source_id: source_id 'Bad Id' must be a slug")
    assert "form: source_id: source_id 'Bad Id' harus berupa slug" in said[0]
    assert any(s.startswith("form: priority: maksimal 3") for s in said), said
    assert any("mappings.0.sync_strategy: harus 'full', 'incremental' atau" in s for s in said)
    # Still English where the API and the CLI read them, and in the English console.
    assert all(isinstance(p, Problem) and p.kind for p in problems)
    assert [problem_text(p, EN) for p in problems] == [str(p) for p in problems]


def test_an_unkeyed_problem_is_framed_and_plain_text_kept() -> None:
    mine = Problem("schedule", "something odd", "value_error")
    assert problem_text(mine, ID) == "schedule: tidak valid: “something odd”"
    assert problem_text("body: as it was", ID) == "body: as it was"
    assert problem_text(Problem("x", "y", "a_plugin_kind"), ID) == "x: y"


def test_run_errors_translate_the_frame_and_quote_the_rest() -> None:
    text = "connection 'primary' failed: timed out; connection 'backup' failed: refused"
    assert run_error(text, ID) == (
        "koneksi “primary” gagal: “timed out”; koneksi “backup” gagal: “refused”"
    )
    assert run_error("interrupted: the process running this sync stopped", ID) == (
        "terputus: proses yang menjalankan sinkronisasi ini berhenti"
    )
    assert run_error("KeyError: 'x'", ID) == "galat: “KeyError: 'x'”"
    assert run_error("a" * 50, EN, limit=10) == "error: “aaaaaaaaa…”"
    assert run_error(None, ID) == ""


def test_codes_cadence_and_templates_in_words() -> None:
    assert trigger_text("console:ana", ID) == "konsol: ana"
    assert trigger_text("schedule", ID) == "jadwal"
    assert trigger_text("plugin-x", ID) == "plugin-x"
    cadence = {"kind": "interval", "seconds": 3600, "set_by": "default", "text": "every 1 h"}
    assert cadence_text(cadence, ID) == "setiap 60 mnt (bawaan)"
    shipped = {"template_name": "csv_file", "display_name": "CSV file", "description": None}
    assert template_text(shipped, "display_name", ID) == "Berkas CSV"
    edited = {"template_name": "csv_file", "display_name": "Our CSV drop"}
    assert template_text(edited, "display_name", ID) == "Our CSV drop"
