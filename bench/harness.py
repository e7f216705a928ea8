"""The peer benchmark cases' shared frame: arguments, a work session, and the report.

A case prints a table on stdout and writes ``<case>.json``, ``<case>.md`` and an SVG chart.

Ratios compare medians within one group (one source → target path) of the same run: to
the native loader's and to factorysync's (this tree's). A contender whose target did not
hold the expected rows, or whose run reported something wrong, is flagged in the table.
When another source tree's factorysync ran beside this one (--compare-with), a second
table compares the two trees' ratios to the native loader (bench/compare.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import compare
from common import DEFAULT_PG, Contender, pg_admin, run_alternately, settle_server
from peers import PeerTools

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def add_arguments(parser: argparse.ArgumentParser, rows: int = 1_000_000) -> None:
    parser.add_argument("--rows", type=int, default=rows)
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per contender")
    parser.add_argument(
        "--max-slow-runs",
        type=int,
        default=1,
        help="runs of a contender whose first run took over --slow-seconds",
    )
    parser.add_argument("--slow-seconds", type=float, default=60.0)
    parser.add_argument("--pg-url", default=os.environ.get("FACTORYSYNC_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--timeout", type=float, default=1200.0, help="per run, seconds")
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given")
    parser.add_argument("--bench-venv", type=Path, default=None, help="default: .bench-venv")
    parser.add_argument(
        "--peers",
        choices=["auto", "require", "none"],
        default="auto",
        help="auto: run the peer tools that are installed; require: fail when one is missing",
    )
    parser.add_argument("--only", default="", help="comma-separated name fragments to run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON and Markdown results")
    parser.add_argument(
        "--chart-dir",
        type=Path,
        default=None,
        help="SVG charts (default: --out); Markdown links them relative to its parent",
    )


@contextmanager
def session(args: argparse.Namespace, prefix: str) -> Iterator[tuple[Path, PeerTools]]:
    """A work folder (removed afterwards unless --workdir was given) and the peer tools."""
    tools = PeerTools(args.bench_venv, args.peers)
    if args.peers == "require" and (missing := tools.require_all()):
        raise SystemExit("peer tools missing: " + "; ".join(missing))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"fs-bench-{prefix}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        yield workdir, tools
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def select(contenders: list[Contender], only: str) -> list[Contender]:
    wanted = [w.strip().lower() for w in only.split(",") if w.strip()]
    if not wanted:
        return contenders
    return [c for c in contenders if any(w in c.name.lower() for w in wanted)]


# -- figures ------------------------------------------------------------------------------
def summary(c: Contender, groups: dict[str, list[Contender]], rows: int) -> dict[str, Any]:
    walls = [m.wall_s for m in c.results]
    entry: dict[str, Any] = {
        "contender": c.name,
        "target": c.target,
        "group": c.key,
        "role": c.role,
        "tree": c.tree,
        "note": c.note,
        "runs": [
            {"wall_s": round(m.wall_s, 3), "peak_rss_mb": round(m.peak_rss_mb, 1), "rows": n}
            for m, n in zip(c.results, c.counts, strict=False)
        ],
        "failure": c.failure,
        "skipped": c.skipped,
        "problems": c.problems,
        "expected_rows": c.expected_rows,
    }
    if not walls:
        return entry
    median = statistics.median(walls)
    work = c.rows_processed if c.rows_processed is not None else rows
    entry.update(
        median_s=round(median, 3),
        min_s=round(min(walls), 3),
        max_s=round(max(walls), 3),
        rows_per_s=round(work / median) if median else None,
        peak_rss_mb=round(max(m.peak_rss_mb for m in c.results), 1),
    )
    for role in ("native", "factorysync"):
        # × factorysync is against this tree's factorysync, never another tree's
        base = next((b for b in groups[c.key] if b.role == role and not b.tree and b.results), None)
        if base is not None:
            ratio = median / statistics.median(m.wall_s for m in base.results)
            entry[f"x_{role}"] = round(ratio, 2)
    return entry


def collect(contenders: list[Contender], rows: int) -> list[dict[str, Any]]:
    groups: dict[str, list[Contender]] = {}
    for c in contenders:
        groups.setdefault(c.key, []).append(c)
    return [summary(c, groups, rows) for c in contenders]


def status_text(e: dict[str, Any]) -> str:
    if e["skipped"]:
        return f"skipped: {e['skipped']}"
    if e["failure"] and "median_s" not in e:
        return f"FAILED: {e['failure']}"
    if e["problems"]:
        return "WRONG: " + "; ".join(e["problems"][:2])
    if e["failure"]:
        return f"a later run failed: {e['failure']}"
    if e["role"] == "floor" and e["expected_rows"] is None:
        return "start-up only"
    counts = {r["rows"] for r in e["runs"]}
    return f"{counts.pop():,} rows ✓" if len(counts) == 1 else "ok"


def fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def table_rows(entries: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for e in entries:
        if "median_s" not in e:
            out.append([e["contender"], e["group"], "0", "", "", "", "", "", status_text(e)])
            continue
        out.append(
            [
                e["contender"],
                e["group"],
                str(len(e["runs"])),
                f"{e['median_s']:.2f} ({e['min_s']:.2f}–{e['max_s']:.2f})",
                f"{e['rows_per_s']:,}" if e["rows_per_s"] else "",
                f"{e['peak_rss_mb']:.0f}",
                fmt_ratio(e.get("x_native")),
                fmt_ratio(e.get("x_factorysync")),
                status_text(e),
            ]
        )
    return out


HEADER = [
    "contender",
    "path",
    "runs",
    "wall s median (min–max)",
    "rows/s",
    "peak RSS MB",
    "× native",
    "× factorysync",
    "rows check",
]


def print_table(title: str, entries: list[dict[str, Any]]) -> None:
    print_text_table(title, HEADER, table_rows(entries), right={2, 3, 4, 5, 6, 7})


def print_text_table(title: str, header: list[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(title)
    print(line(header))
    print("-" * len(line(header)))
    for r in rows:
        print(line(r))
    sys.stdout.flush()


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return lines


def comparison_title(result: dict[str, Any]) -> str:
    other = result["compared_with"]
    commit = f", commit {other['commit']}" if other.get("commit") else ""
    return (
        f"Against {other['label']} ({other['path']}{commit}): × native from the same "
        f"alternating runs; within {compare.LIMIT_PCT:g} % means this tree is at most "
        f"{compare.LIMIT_PCT:g} % slower."
    )


def markdown(result: dict[str, Any]) -> str:
    lines = [f"### {result['title']}", "", result["subtitle"], ""]
    lines += markdown_table(HEADER, table_rows(result["contenders"]))
    lines.append("")
    if result.get("compared_with"):
        label = result["compared_with"]["label"]
        rows = compare.comparison(result["contenders"])
        lines += [comparison_title(result), ""]
        lines += [*markdown_table(compare.header(label), rows), ""]
    if result.get("chart"):
        lines += [f"![{result['title']}]({result['chart']})", ""]
    return "\n".join(lines)


# -- chart --------------------------------------------------------------------------------
COLOURS = {"native": "#7f7f7f", "factorysync": "#1f77b4", "peer": "#ff7f0e", "floor": "#c7c7c7"}


def svg_chart(result: dict[str, Any]) -> str:
    """Horizontal bars of the median wall time per contender, log scale, by group."""
    bars = [e for e in result["contenders"] if "median_s" in e]
    label_w, plot_w, bar_h, gap, top = 330, 460, 18, 6, 54
    height = top + len(bars) * (bar_h + gap) + 16 * len({b["group"] for b in bars}) + 40
    values = [b["median_s"] for b in bars] or [1.0]
    lo = 10 ** math.floor(math.log10(max(min(values), 1e-3)))
    hi = 10 ** math.ceil(math.log10(max(max(values), lo * 10)))

    def x(v: float) -> float:
        return label_w + plot_w * (math.log10(max(v, lo)) - math.log10(lo)) / (
            math.log10(hi) - math.log10(lo)
        )

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 90}" '
        f'height="{height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="8" y="20" font-size="14" font-weight="bold">{escape(result["title"])}</text>',
        f'<text x="8" y="38" fill="#555">median wall time, seconds (log scale); '
        f"{escape(result['when'])}</text>",
    ]
    legend_x = label_w + plot_w - 250
    roles = [("native", "native loader"), ("factorysync", "factorysync"), ("peer", "peer tool")]
    if any(b["role"] == "floor" for b in bars):
        roles.append(("floor", "Python floor"))
        legend_x -= 95
    for index, (role, label) in enumerate(roles):
        lx = legend_x + index * 95
        out.append(f'<rect x="{lx}" y="28" width="12" height="12" fill="{COLOURS[role]}"/>')
        out.append(f'<text x="{lx + 16}" y="38">{label}</text>')
    tick = lo
    while tick <= hi * 1.0001:
        tx = x(tick)
        out.append(
            f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{height - 30}" stroke="#ddd"/>'
        )
        out.append(
            f'<text x="{tx:.1f}" y="{height - 16}" text-anchor="middle" fill="#555">{tick:g}</text>'
        )
        tick *= 10
    y = top
    group = None
    for b in bars:
        if b["group"] != group:
            group = b["group"]
            out.append(f'<text x="8" y="{y + 10}" font-weight="bold">{escape(group)}</text>')
            y += 16
        flag = "" if not b["problems"] else " (wrong rows)"
        out.append(
            f'<text x="{label_w - 6}" y="{y + bar_h - 5}" text-anchor="end">'
            f"{escape(b['contender'] + flag)}</text>"
        )
        out.append(
            f'<rect x="{label_w}" y="{y}" width="{max(x(b["median_s"]) - label_w, 1):.1f}" '
            f'height="{bar_h}" fill="{COLOURS[b["role"]]}"/>'
        )
        out.append(
            f'<text x="{x(b["median_s"]) + 4:.1f}" y="{y + bar_h - 5}">{b["median_s"]:.2f} s'
            f"{'' if len(b['runs']) == result['runs'] else _runs(len(b['runs']))}</text>"
        )
        y += bar_h + gap
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _runs(n: int) -> str:
    return f' <tspan fill="#777">({n} run{"" if n == 1 else "s"})</tspan>'


# -- writing results ----------------------------------------------------------------------
def versions(pg_url: str, peers: dict[str, str]) -> dict[str, str]:
    import importlib.metadata as md

    found = {"python": platform.python_version()}
    for package in ("factorysync", "pyarrow", "psycopg", "SQLAlchemy"):
        with suppress(md.PackageNotFoundError):
            found[package] = md.version(package)
    for tool in ("sqlite3", "psql"):
        if shutil.which(tool):
            out = subprocess.run([tool, "--version"], capture_output=True, text=True)
            words = out.stdout.split()
            found[tool] = words[0] if tool == "sqlite3" else words[2] if len(words) > 2 else "?"
    try:
        row = pg_admin(pg_url, "SHOW server_version")
        found["postgresql server"] = str(row[0]) if row else "?"
    except Exception as exc:
        found["postgresql server"] = f"unreachable: {exc}"
    found.update(peers)
    return found


def command_line() -> str:
    """This run's command as typed from the repository root (long paths kept as given)."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(BENCH.parent) if script.is_relative_to(BENCH.parent) else script
    python = Path(sys.executable)
    venv = python.parent.parent
    shown_python = f"{venv.name}/bin/python" if venv.parent == BENCH.parent else python.name
    return " ".join([shown_python, str(shown), *sys.argv[1:]])


def machine() -> str:
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return f"{os.cpu_count()} CPUs{memory}, load average {load:.1f} at the end"


def run_case(
    case: str,
    title: str,
    contenders: list[Contender],
    args: argparse.Namespace,
    tools: PeerTools,
    *,
    extra: dict[str, Any] | None = None,
) -> int:
    """Run the selected contenders alternately, then report them (``finish``)."""
    chosen = select(contenders, args.only)
    print(f"{case}: {title}", file=sys.stderr, flush=True)
    run_alternately(
        chosen,
        args.runs,
        args.timeout,
        max_slow_runs=args.max_slow_runs,
        slow_seconds=args.slow_seconds,
        settle=lambda: settle_server(getattr(args, "pg_url", None)),
    )
    return finish(case, title, chosen, args, extra=extra, peer_versions=tools.versions())


def finish(
    case: str,
    title: str,
    contenders: list[Contender],
    args: argparse.Namespace,
    *,
    extra: dict[str, Any] | None = None,
    peer_versions: dict[str, str] | None = None,
) -> int:
    """Print the table, write ``<case>.json``, ``<case>.md`` and the chart; the exit code."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    entries = collect(contenders, args.rows)
    runs_note = (
        f"{args.runs} alternating run(s) each; a contender over {args.slow_seconds:g} s on "
        f"its first run is run {args.max_slow_runs} time(s)"
    )
    subtitle = (
        f"{args.rows:,} rows; {runs_note}; {machine()}; {when}. Wall time is the whole "
        "process (start-up included); peak RSS is the client process's (PostgreSQL's own "
        "CPU and memory are not in it)."
    )
    result: dict[str, Any] = {
        "case": case,
        "title": title,
        "subtitle": subtitle,
        "when": when,
        "rows": args.rows,
        "runs": args.runs,
        "max_slow_runs": args.max_slow_runs,
        "machine": machine(),
        "command": command_line(),
        "versions": versions(args.pg_url, peer_versions or {}),
        "contenders": entries,
        **(extra or {}),
    }
    tree: compare.Tree | None = getattr(args, "compare_with", None)
    if tree is not None and any(c.tree == tree.label for c in contenders):
        result["compared_with"] = tree.describe()
    print_table(f"{case}: {title}\n{subtitle}", entries)
    if tree is not None and "compared_with" in result:
        print()
        print_text_table(
            f"{case}: {comparison_title(result)}",
            compare.header(tree.label),
            compare.comparison(entries),
            right={2, 3, 4},
        )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    chart_dir: Path = args.chart_dir or out
    chart_dir.mkdir(parents=True, exist_ok=True)
    chart = chart_dir / f"{case}.svg"
    if any("median_s" in e for e in entries):
        chart.write_text(svg_chart(result))
        base = chart_dir.parent if args.chart_dir else chart_dir
        result["chart"] = os.path.relpath(chart, base)
    (out / f"{case}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (out / f"{case}.md").write_text(markdown(result))
    problems = [e for e in entries if (e["failure"] or e["problems"]) and not e["skipped"]]
    for e in problems:
        print(f"problem: {e['contender']} ({e['group']}): {status_text(e)}", file=sys.stderr)
    return 1 if problems else 0
