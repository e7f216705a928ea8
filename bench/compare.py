"""factorysync from another source tree, run beside this one (``--compare-with PATH[=LABEL]``).

A release that reworks the inside of factorysync must not make its loads slower. The
honest comparison is side by side: the other tree's factorysync (a checkout of an earlier
commit) joins the same alternating runs as this one, on the same machine state, with the
same environment's interpreter and libraries. Only the factorysync package differs:
``PATH/src`` is put first on ``PYTHONPATH`` for the other tree's processes, and each of
them checks, before it runs the CLI, that ``factorysync`` was imported from there (an
editable install of this tree would otherwise win silently, and the comparison would
compare the tree with itself).

Both trees' ratios to the native loader then come from the same runs; the comparison
table holds the other tree's ratio, this tree's, the difference of their medians, the
paired difference, and whether this tree stays within ``LIMIT_PCT`` of the other one
(slower by at most that much). The other tree's run ``i`` follows this tree's run ``i``
at once, so the two are a pair measured on the same machine state; the paired
difference is the median of the pairs' ratios. It is what the verdict reads: a machine
whose speed drifts during a pass (a background job ending) moves both of a pair alike,
but moves the two medians apart when they come from different runs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIMIT_PCT = 5.0
TREE_ENV = "FACTORYSYNC_BENCH_TREE"

# The other tree's CLI, as `python -m factorysync.cli` runs it, after the import check.
# Given as -c (not a script file) so that sys.path[0] is the working folder, as with -m.
LAUNCH = "\n".join(
    [
        "import os, runpy, sys",
        "import factorysync",
        f"tree = os.environ[{TREE_ENV!r}]",
        "found = os.path.realpath(factorysync.__file__)",
        "if not found.startswith(tree + os.sep):",
        "    sys.exit(f'factorysync was imported from {found}, not from the tree {tree}')",
        "runpy.run_module('factorysync.cli', run_name='__main__', alter_sys=True)",
    ]
)


@dataclass(frozen=True)
class Tree:
    """Another checkout of factorysync, whose ``src`` folder holds the package."""

    path: Path
    label: str

    @classmethod
    def parse(cls, text: str) -> Tree:
        """``PATH`` or ``PATH=LABEL`` (the label defaults to the folder's name)."""
        raw, _, label = text.partition("=")
        path = Path(raw).expanduser().resolve()
        if not (path / "src" / "factorysync" / "__init__.py").is_file():
            raise argparse.ArgumentTypeError(f"{path} holds no src/factorysync package")
        label = label.strip() or path.name
        if not re.fullmatch(r"[\w.+-]+", label):
            raise argparse.ArgumentTypeError(f"label {label!r}: letters, digits, . _ + - only")
        return cls(path, label)

    @property
    def src(self) -> Path:
        return self.path / "src"

    @property
    def tag(self) -> str:
        """A suffix for the names of this tree's stores, databases and files."""
        return "_" + re.sub(r"[^a-z0-9]", "", self.label.lower())[:16]

    @property
    def cli(self) -> list[str]:
        return [sys.executable, "-c", LAUNCH]

    def env(self) -> dict[str, str]:
        """What this tree's processes add to the environment."""
        path = os.pathsep.join(p for p in (str(self.src), os.environ.get("PYTHONPATH")) if p)
        return {"PYTHONPATH": path, TREE_ENV: str(self.src)}

    def commit(self) -> str:
        """The checked-out commit when the tree is a git checkout (a worktree, say) of its
        own, else an empty string (a copy inside another repository has no commit)."""
        try:
            done = subprocess.run(
                ["git", "-C", str(self.path), "rev-parse", "--show-toplevel", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except OSError:
            return ""
        lines = done.stdout.split()
        if done.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != self.path:
            return ""
        return lines[1]

    def check(self) -> None:
        """Fail before any run when the tree's CLI does not start with this environment."""
        done = subprocess.run(
            [*self.cli, "--help"],
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise SystemExit(
                f"--compare-with {self.path}: its factorysync CLI does not start here "
                f"(exit {done.returncode}): {(done.stderr or done.stdout)[-800:]}"
            )

    def describe(self) -> dict[str, str]:
        return {"label": self.label, "path": str(self.path), "commit": self.commit()}


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compare-with",
        type=Tree.parse,
        default=None,
        metavar="PATH[=LABEL]",
        help="also run the factorysync of the source tree at PATH (its src/ first on "
        "PYTHONPATH, this environment's Python) beside this one, and compare their "
        "ratios to the native loader",
    )


def others(args: argparse.Namespace) -> list[Tree]:
    """The trees to run beside this one, checked (none without --compare-with).

    Both trees' bytecode is written first. Where nothing writes it as modules are
    imported (PYTHONDONTWRITEBYTECODE, a fresh checkout, files edited since), every
    process would compile those modules again, a tenth of a second or more of a run:
    the tree with more of them would look slower for it.
    """
    tree: Tree | None = getattr(args, "compare_with", None)
    if tree is None:
        return []
    tree.check()
    this = subprocess.run(
        [sys.executable, "-c", "import factorysync; print(factorysync.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    for package in (Path(this.stdout.strip()).parent, tree.src / "factorysync"):
        compile_bytecode(package)
    return [tree]


def compile_bytecode(package: Path) -> None:
    """Write the ``__pycache__`` files of ``package`` that are missing or out of date."""
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)], capture_output=True, text=True
    )
    if done.returncode != 0:  # a module that does not compile fails its runs more clearly
        print(f"(compiling {package}: {done.stdout.strip()[-300:]})", file=sys.stderr)


# -- the comparison table ------------------------------------------------------------------
HEADER = [
    "path",
    "contender",
    "{label} × native",
    "this tree × native",
    "difference",
    "paired",
    f"within {LIMIT_PCT:g} %",
]


def comparison(entries: list[dict[str, Any]]) -> list[list[str]]:
    """One row per contender run from both trees in the same group: the other tree's ratio
    to the native loader, this tree's, and this tree's time against the other's.

    The ratios are the main table's; the difference is of the medians (``this / other −
    1``), the same as of the ratios, which divide by the same native median, but not
    rounded to two decimals first; the paired difference is the median of the run-by-run
    ratios (see the module's docstring), and the verdict reads it (the medians' when the
    runs do not pair up). Within the limit means no more than ``LIMIT_PCT`` slower;
    faster by more than that is said so.
    """
    rows = []
    for other in entries:
        label = other.get("tree")
        if not label:
            continue
        name = other["contender"].removesuffix(f" ({label})")
        mine = next(
            (
                e
                for e in entries
                if e["group"] == other["group"] and e["contender"] == name and not e.get("tree")
            ),
            None,
        )
        if mine is None:
            continue
        if not _measured(mine) or not _measured(other):
            rows.append([other["group"], name, "", "", "", "", "no result to compare"])
            continue
        diff = (_median(mine) / _median(other) - 1) * 100
        paired = _paired(mine, other)
        judged = diff if paired is None else paired
        verdict = "yes" if judged <= LIMIT_PCT else "no"
        if judged < -LIMIT_PCT:
            verdict = "yes (faster)"
        rows.append(
            [
                other["group"],
                name,
                _ratio(other),
                _ratio(mine),
                f"{diff:+.1f} %",
                "" if paired is None else f"{paired:+.1f} %",
                verdict,
            ]
        )
    return rows


def header(label: str) -> list[str]:
    return [h.format(label=label) for h in HEADER]


def _measured(entry: dict[str, Any]) -> bool:
    """A result to compare: every run completed and held the expected rows."""
    return "median_s" in entry and not entry["problems"] and not entry["failure"]


def _paired(mine: dict[str, Any], other: dict[str, Any]) -> float | None:
    """The median of this tree's run ``i`` over the other's run ``i``, minus one, in %
    (None when the runs do not pair up)."""
    a = [r["wall_s"] for r in mine.get("runs", [])]
    b = [r["wall_s"] for r in other.get("runs", [])]
    if not a or len(a) != len(b) or not all(b):
        return None
    return (statistics.median(x / y for x, y in zip(a, b, strict=True)) - 1) * 100


def _median(entry: dict[str, Any]) -> float:
    return float(entry["median_s"])


def _ratio(entry: dict[str, Any]) -> str:
    ratio = entry.get("x_native")
    return "" if ratio is None else f"{ratio:.2f}"
