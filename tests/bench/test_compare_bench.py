"""A peer case run beside another source tree's factorysync (--compare-with, tiny mode).

The other tree here is a copy of this one's ``src``: no git needed, and the copy's
processes must still import the copy, not the installed package. Timings are not
asserted; the rows each contender's target held and the comparison table are.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import _pg_url, unique_workdir
from tests.bench.test_peer_bench import ROWS, run

# A benchmark in its tiny mode: it runs in the slow group, beside the rest (scripts/test.sh).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LABEL = "copy"


def copy_of_this_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "other-tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", tree / "src", ignore=ignore)
    return tree


@pytest.mark.postgres
def test_compare_with_another_tree(tmp_path: Path) -> None:
    tree = copy_of_this_tree(tmp_path)
    out = tmp_path / "results"
    proc = run(
        "peer_csv.py",
        "--cases",
        "a,b",
        "--rows",
        str(ROWS),
        "--runs",
        "1",
        "--peers",
        "none",
        "--pg-url",
        _pg_url(),
        "--workdir",
        str(unique_workdir(tmp_path)),
        "--out",
        str(out),
        "--compare-with",
        f"{tree}={LABEL}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for case, target in (("a-csv-sqlite", "SQLite"), ("b-csv-postgresql", "PostgreSQL")):
        result = json.loads((out / f"{case}.json").read_text())
        assert result["compared_with"]["label"] == LABEL
        assert result["compared_with"]["path"] == str(tree.resolve())
        by_name = {e["contender"]: e for e in result["contenders"]}
        for name in ("factorysync source sync", "factorysync, running service"):
            for entry, label in ((by_name[name], ""), (by_name[f"{name} ({LABEL})"], LABEL)):
                assert entry["tree"] == label and entry["role"] == "factorysync", entry
                assert not entry["failure"] and not entry["problems"], entry
                assert [r["rows"] for r in entry["runs"]] == [ROWS], entry
                assert entry["x_native"] is not None, entry
        # the comparison table: one row per contender run from both trees, with a verdict
        heading = f"{case}: Against {LABEL} ({tree.resolve()}"
        assert heading in proc.stdout, proc.stdout
        table = proc.stdout.split(heading, 1)[1].split("\n\n", 1)[0].splitlines()
        assert f"{LABEL} × native" in table[1] and "within 5 %" in table[1], table
        assert "paired" in table[1], table
        compared = [line for line in table[3:] if line.startswith(target)]
        assert len(compared) == 2, table
        for line in compared:
            # the difference of the medians, the paired one (one run each: the same), verdict
            found = re.search(r"([+-]\d+\.\d) %\s+([+-]\d+\.\d) %\s+(yes|no)", line)
            assert found is not None and found[1] == found[2], line
        assert f"| path | contender | {LABEL} × native |" in (out / f"{case}.md").read_text()
    report = run("peer_report.py", "--out", str(out), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert f"Against {LABEL}, in the same runs:" in report.stdout


def test_other_tree_must_be_the_one_imported(tmp_path: Path) -> None:
    """A child whose factorysync comes from anywhere but the tree refuses to run."""
    tree = copy_of_this_tree(tmp_path)
    spec = importlib.util.spec_from_file_location("bench_compare", REPO / "bench" / "compare.py")
    assert spec is not None and spec.loader is not None
    compare = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = compare  # for its dataclass
    spec.loader.exec_module(compare)
    other = compare.Tree.parse(str(tree))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # the tree's environment without its PYTHONPATH: the installed factorysync is imported
    env[compare.TREE_ENV] = other.env()[compare.TREE_ENV]
    proc = subprocess.run(
        [*other.cli, "--help"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode != 0
    assert f"not from the tree {tree.resolve() / 'src'}" in proc.stderr, proc.stderr
    # with it, the copy is imported and its CLI starts
    proc = subprocess.run(
        [*other.cli, "--help"], env={**env, **other.env()}, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "source" in proc.stdout, proc.stderr
    # a folder without src/factorysync is refused before anything runs
    bad = run("peer_csv.py", "--compare-with", str(tmp_path), "--rows", "10", cwd=tmp_path)
    assert bad.returncode == 2 and "holds no src/factorysync package" in bad.stderr
