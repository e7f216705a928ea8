"""Modules along their seams: none over 500 lines, outside the migrations and the module
protoc generates (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "factorysync"
EXEMPT = {"sparkplug_b_pb2.py"}
MODULES = sorted(
    p for p in SRC.rglob("*.py") if "migrations" not in p.parts and p.name not in EXEMPT
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_a_module_is_at_most_500_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 500


def test_the_package_is_all_here() -> None:
    assert len(MODULES) > 200
