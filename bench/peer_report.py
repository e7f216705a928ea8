"""Gather the peer benchmark results (``<case>.json``) into one Markdown section.

Writes ``peer-comparison.md`` beside the results: the machine, every tool's version, the
command of each case, its table and its chart, and a summary against the issue's
done-when targets — ready to paste into docs/benchmarks.md. Cases run with
--compare-with also get the comparison with the other source tree, in the summary and
under their table.

    python bench/peer_report.py [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare
from harness import RESULTS, markdown

CASES = [
    "a-csv-sqlite",
    "b-csv-postgresql",
    "h-text-sqlite",
    "h-text-postgresql",
    "c-json",
    "d-pg-table",
    "e-resync",
    "f-incremental",
    "g-memory",
]

# First loads, held against the native loader: a one-off process within 1.5×, the
# running service within 1.2×.
FIRST_LOADS = (
    "a-csv-sqlite",
    "b-csv-postgresql",
    "d-pg-table",
    "h-text-sqlite",
    "h-text-postgresql",
)


def verdicts(result: dict[str, Any]) -> list[str]:
    """The done-when targets that this case's results can be held against."""
    entries = result["contenders"]
    found = []
    mine = [
        e for e in entries if e["role"] == "factorysync" and not e.get("tree") and "median_s" in e
    ]
    case = result["case"]
    for e in mine:
        label = f"{case} ({e['group']}): {e['contender']}"
        if case in FIRST_LOADS:
            rivals = [
                p
                for p in entries
                if p["role"] == "peer" and p["group"] == e["group"] and "median_s" in p
            ]
            beaten = [p["contender"] for p in rivals if p["median_s"] <= e["median_s"]]
            native = e.get("x_native")
            limit = 1.2 if "running service" in e["contender"] else 1.5
            found.append(
                f"{label}: {native:.2f}× native (target ≤ {limit}×: "
                f"{'met' if native is not None and native <= limit else 'not met'}); "
                + ("ahead of every peer run" if not beaten else f"behind {', '.join(beaten)}")
            )
        elif case == "e-resync" and e.get("x_native") is not None:
            met = "met" if e["x_native"] <= 2.0 else "not met"
            found.append(f"{label}: {e['x_native']:.2f}× native (target ≤ 2.0×: {met})")
        elif case == "f-incremental" and "incremental" in e["contender"]:
            share = e.get("x_factorysync")
            if share is not None:
                met = "met" if share <= 0.05 else "not met"
                found.append(f"{label}: {share * 100:.1f} % of the full load (target ≤ 5 %: {met})")
        elif case == "g-memory":
            limit = result.get("limit_mb", 300)
            met = "met" if e["peak_rss_mb"] <= limit else "not met"
            found.append(
                f"{label}: peak RSS {e['peak_rss_mb']:.0f} MB (target ≤ {limit} MB: {met})"
            )
    return found


def against_other_tree(result: dict[str, Any]) -> list[str]:
    """This tree against the one run beside it, one line per contender run from both."""
    other = result.get("compared_with")
    if not other:
        return []
    found = []
    for row in compare.comparison(result["contenders"]):
        path, name, theirs, ours, diff, paired, within = row
        if not diff or not ours:
            found.append(f"{result['case']} ({path}): {name}: {diff or within}")
            continue
        found.append(
            f"{result['case']} ({path}): {name}: {ours}× native against {theirs}× for "
            f"{other['label']} (medians {diff}, paired {paired or 'n/a'}; within "
            f"{compare.LIMIT_PCT:g} %: {within})"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = []
    for case in CASES:
        path = args.out / f"{case}.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
    if not results:
        print(f"no results in {args.out}", file=sys.stderr)
        return 1
    versions: dict[str, str] = {}
    for r in results:
        versions.update(r["versions"])
    lines = ["## Peer comparison", ""]
    machine = results[0]["machine"].split(", load")[0]
    lines.append(
        f"Machine: {machine}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in sorted(versions.items(), key=lambda kv: kv[0].lower()))
        + "."
    )
    lines.append("")
    summary = [v for r in results for v in verdicts(r)]
    if summary:
        lines += ["Against the done-when targets:", ""] + [f"- {v}" for v in summary] + [""]
    for label in sorted({r["compared_with"]["label"] for r in results if "compared_with" in r}):
        found = [
            v
            for r in results
            if r.get("compared_with", {}).get("label") == label
            for v in against_other_tree(r)
        ]
        lines += [f"Against {label}, in the same runs:", ""] + [f"- {v}" for v in found] + [""]
    for r in results:
        lines += ["```sh", r["command"], "```", "", markdown(r)]
    text = "\n".join(lines)
    target = args.out / "peer-comparison.md"
    target.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
