"""The target-table modules stay layered: each imports only the modules below it, none
imports the columnar writers that use them, and the package hands on every name the
rest of the code imports from ``factorysync.store.targets``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import factorysync.store.targets as targets

PACKAGE = Path(targets.__file__).parent
# Bottom up, as the package docstring lists them: a module may import those before it.
LAYERS = ["kinds", "changes", "columns", "evolution", "staging", "merge", "read"]
WRITERS = {"factorysync.store.bulk", "factorysync.store.pgbinary"}


def imported(path: Path) -> set[str]:
    """Every ``factorysync`` module a file imports, at any depth or under TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("factorysync.")}


@pytest.mark.parametrize("module", LAYERS)
def test_a_layer_imports_only_the_layers_below_it(module: str) -> None:
    uses = imported(PACKAGE / f"{module}.py")
    own = {n.removeprefix("factorysync.store.targets.") for n in uses if n.count(".") == 3}
    own = {n for n in own if n in LAYERS}
    above = set(LAYERS[LAYERS.index(module) :])
    assert not own & above, f"{module} imports {sorted(own & above)}"
    assert "factorysync.store.targets" not in uses  # the package imports every layer
    assert not uses & WRITERS


def test_every_module_of_the_package_is_a_listed_layer() -> None:
    found = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert found == set(LAYERS)


def test_kinds_load_without_the_columnar_writers() -> None:
    """Connectors infer kinds through this package; it must not drag in Arrow's writers."""
    code = (
        "import sys, factorysync.store.targets as t; "
        "assert t.infer_kind(1) == 'integer'; "
        f"print(sorted(m for m in {sorted(WRITERS)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "name",
    [
        "ISO_DATE",
        "ISO_DATETIME",
        "KIND_TYPES",
        "MergeCounts",
        "SchemaContractError",
        "TargetTable",
        "check_target_name",
        "count_rows",
        "infer_kind",
        "kind_of_type",
        "merge_kinds",
        "read_rows",
        "row_hash",
        "target_table",
        "to_kind",
    ],
)
def test_the_package_hands_on_the_names_other_modules_import(name: str) -> None:
    assert name in targets.__all__
    assert getattr(targets, name) is not None
