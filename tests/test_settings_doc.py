"""The settings tables of docs/configuration.md and README.md are the settings model's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from factorysync import settings_doc
from factorysync.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_described() -> None:
    assert settings_doc.undocumented() == []


@pytest.mark.parametrize("doc", ["docs/configuration.md", "README.md"])
def test_the_doc_table_is_the_models(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    expected = settings_doc.targets(ROOT)[ROOT / doc]
    begin, end = text.index(settings_doc.BEGIN), text.index(settings_doc.END)
    shown = text[begin + len(settings_doc.BEGIN) : end].strip()
    assert shown == expected, (
        f"{doc}: the settings table differs from the model: run python -m factorysync.settings_doc"
    )


def test_the_reference_lists_every_setting_with_its_default() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name, info in Settings.model_fields.items():
        row = next(
            (
                line
                for line in text.splitlines()
                if line.startswith(f"| `FACTORYSYNC_{name.upper()}` |")
            ),
            None,
        )
        assert row is not None, f"FACTORYSYNC_{name.upper()} is missing from the reference"
        assert f"| {settings_doc.shown_default(info)} |" in row
    concurrency = settings_doc.shown_default(Settings.model_fields["max_concurrent_syncs"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"| `FACTORYSYNC_MAX_CONCURRENT_SYNCS` | {concurrency} |" in readme


def test_check_fails_naming_the_file_when_a_table_is_stale(tmp_path: Path) -> None:
    """``--check`` on a copy of the docs whose table lost a row: exit 1, file named."""
    (tmp_path / "docs").mkdir()
    for doc in ("docs/configuration.md", "README.md"):
        (tmp_path / doc).write_text((ROOT / doc).read_text(encoding="utf-8"), encoding="utf-8")
    stale = tmp_path / "docs" / "configuration.md"
    stale.write_text(
        "\n".join(
            line
            for line in stale.read_text(encoding="utf-8").splitlines()
            if not line.startswith("| `FACTORYSYNC_LEASE_S` |")
        )
        + "\n",
        encoding="utf-8",
    )
    script = (
        "import sys; from pathlib import Path; from factorysync import settings_doc as d; "
        f"d.ROOT = Path({str(tmp_path)!r}); "
        "sys.exit(d.main(sys.argv[1:]))"
    )
    check = subprocess.run(
        [sys.executable, "-c", script, "--check"], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 1
    assert f"settings table out of date in {stale}" in check.stderr
    fix = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert fix.returncode == 0 and "settings table rewritten" in fix.stdout
    assert "| `FACTORYSYNC_LEASE_S` |" in stale.read_text(encoding="utf-8")
    again = subprocess.run(
        [sys.executable, "-c", script, "--check"], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
