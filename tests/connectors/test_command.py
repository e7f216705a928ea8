"""Command sources run real executables: a Python script standing in for a plant tool, and
a stand-in ``php`` running an ``artisan`` script, as Laravel projects do."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factorysync.connectors.base import ConnectorContext
from factorysync.connectors.command import ArtisanConnector
from factorysync.connectors.registry import build_connector, validate_connection_config
from factorysync.engine.runner import Runner
from factorysync.errors import ConfigError, ConnectorFatal, ConnectorRetriable
from factorysync.settings import Settings
from factorysync.store.store import Store
from tests.connectors.conftest import records
from tests.engine.test_runner import counts, register, table_rows

SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "csh", "fish", "busybox"}
_spawned: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        _spawned.append(str(executable or (argv[0] if argv else "")))
    elif event in ("os.system", "os.posix_spawn", "os.spawn"):
        _spawned.append(f"{event}:{args[0]}")


sys.addaudithook(_audit)

TOOL = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "json":
        print(json.dumps({"argv": rest, "env": sorted(os.environ),
                          "token": os.environ.get("DB_PASSWORD"),
                          "data": [{"id": i, "qty": i * 10} for i in range(int(rest[0]))]}))
    elif mode == "ndjson":
        for i in range(3):
            print(json.dumps({"id": i, "machine": f"M-{i}"}))
    elif mode == "csv":
        sys.stdout.write("id;temp\\n1;21,5\\n2;22,0\\n")
    elif mode == "fail":
        print("partial output")
        print("connecting to MES...", file=sys.stderr)
        print("SQLSTATE[HY000] [2002] Connection refused", file=sys.stderr)
        sys.exit(3)
    elif mode == "sleep":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open(rest[0], "w") as fh:
            fh.write(str(child.pid))
        time.sleep(120)
    elif mode == "flood":
        while True:
            sys.stdout.write("x" * 65536)
    elif mode == "quiet":
        pass
    """
)


@pytest.fixture(autouse=True)
def _watch_spawns() -> Iterator[None]:
    _spawned.clear()
    yield
    shells = [s for s in _spawned if Path(s.split(":")[-1]).name in SHELLS or ":" in s]
    assert not shells, f"a shell was spawned: {shells}"


@pytest.fixture
def tool(data_dir: Path) -> Path:
    path = data_dir / "mes_export.py"
    path.write_text(TOOL)
    return path


def run(tool: Path, *args: str, **config: Any) -> dict[str, Any]:
    return {"command": sys.executable, "parameters": [str(tool), *args], **config}


def test_runs_a_real_executable_without_a_shell(tool: Path, make: Any) -> None:
    connector = make("command", run(tool, "json", "4"))
    assert "may run" in connector.check().message and not _spawned  # check runs nothing
    connector = make(
        "command",
        {
            "command": sys.executable,
            "parameters": [str(tool), "json", "4", "line A", "--since=2026-01-05 06:00"],
            "environment": {"APP_PLANT": "JKT-1"},
        },
        {"environment": {"DB_PASSWORD": "tok-123456"}},
    )
    (document,) = records(connector)
    assert document["argv"] == ["4", "line A", "--since=2026-01-05 06:00"]
    assert document["token"] == "tok-123456"
    assert set(document["env"]) == {
        "PATH",
        "LANG",
        "LC_ALL",
        "TZ",
        "HOME",
        "APP_PLANT",
        "DB_PASSWORD",
    }
    assert _spawned == [sys.executable]
    rows = records(make("command", run(tool, "json", "3", records_path="data")))
    assert rows == [{"id": 0, "qty": 0}, {"id": 1, "qty": 10}, {"id": 2, "qty": 20}]


def test_ndjson_and_csv_output(tool: Path, make: Any) -> None:
    ndjson = make("command", run(tool, "ndjson", output_format="ndjson"))
    assert [r["machine"] for r in records(ndjson)] == ["M-0", "M-1", "M-2"]
    csv = make(
        "command",
        run(tool, "csv", output_format="csv", csv={"delimiter": ";", "decimal": ","}),
    )
    assert records(csv) == [{"id": 1, "temp": 21.5}, {"id": 2, "temp": 22.0}]


def test_allowlist(tool: Path, make: Any, data_dir: Path) -> None:
    with pytest.raises(ConnectorFatal, match=r"'bash' \(/\S+/bash\) is not on the allowlist"):
        make("command", {"command": "bash", "parameters": ["-c", "id"]}).check()
    copy = data_dir / "python-copy"
    copy.symlink_to("/bin/sh")
    with pytest.raises(ConnectorFatal, match="is not on the allowlist"):
        records(make("command", {"command": str(copy)}))
    empty = ConnectorContext("t", Settings(data_roots=str(data_dir), command_allowlist=""))
    connector = build_connector("command", run(tool, "json", "1"), {}, empty)
    with pytest.raises(ConnectorFatal, match="FACTORYSYNC_COMMAND_ALLOWLIST is empty"):
        records(connector)
    assert _spawned == []


def test_environment_hooks_stop_the_run_before_it_starts(
    tool: Path, make: Any, data_dir: Path
) -> None:
    hooks = {"LD_PRELOAD": str(data_dir / "x.so"), "PYTHONSTARTUP": str(tool)}
    connector = make("command", run(tool, "json", "1"), {"environment": hooks})
    for attempt in (connector.check, lambda: records(connector)):
        with pytest.raises(ConnectorFatal) as caught:
            attempt()
        message = str(caught.value)
        assert "authentication_config.environment.LD_PRELOAD: not allowed: a loader hook" in message
        assert "environment.PYTHONSTARTUP: not allowed: an interpreter hook" in message
        assert str(tool) not in message.partition(" not run: ")[2]  # names, not values
    assert _spawned == []
    # An administrator's pattern adds names; the hooks stay out even under "*".
    for extra, plant in (("", False), ("PLANT*", True), ("*", True)):
        settings = Settings(command_allowlist=sys.executable, command_env_allowlist=extra)
        context = ConnectorContext("t", settings)
        config = run(tool, "json", "1", environment={"PLANT_LINE": "A"})
        if not plant:
            with pytest.raises(ConfigError, match="PLANT_LINE is not on the safe list"):
                build_connector("command", config, {}, context)
            continue
        (document,) = records(build_connector("command", config, {}, context))
        assert "PLANT_LINE" in document["env"]
        refused = build_connector(
            "command", run(tool, "json", "1"), {"environment": hooks}, context
        )
        with pytest.raises(ConnectorFatal, match="LD_PRELOAD: not allowed"):
            records(refused)


@pytest.mark.parametrize(
    "argument", ["a;b", "$(id)", "`id`", "x | y", "a && b", "> /tmp/x", "a\nb"]
)
def test_shell_metacharacters_are_refused(tool: Path, make: Any, argument: str) -> None:
    connector = make("command", run(tool, "json", "1", argument))
    with pytest.raises(ConnectorFatal, match="contains the shell metacharacter"):
        connector.check()
    with pytest.raises(ConnectorFatal, match="without a shell"):
        records(connector)
    assert _spawned == []


def test_timeout_kills_the_process_group(tool: Path, make: Any, data_dir: Path) -> None:
    pid_file = data_dir / "child.pid"
    connector = make("command", run(tool, "sleep", str(pid_file), timeout=1.5))
    started = time.monotonic()
    with pytest.raises(ConnectorRetriable, match=r"timed out after 1.5 s \(process group killed\)"):
        records(connector)
    assert time.monotonic() - started < 10
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild), "the command's own child outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_non_zero_exit_reports_the_stderr_tail(tool: Path, make: Any) -> None:
    with pytest.raises(ConnectorFatal) as caught:
        records(make("command", run(tool, "fail")))
    message = str(caught.value)
    assert "exited with status 3" in message
    assert message.endswith(
        "stderr: connecting to MES... | SQLSTATE[HY000] [2002] Connection refused"
    )


def test_output_cap(tool: Path, make: Any) -> None:
    connector = make("command", run(tool, "flood", max_output_bytes=1_000_000))
    with pytest.raises(ConnectorFatal, match=r"more than max_output_bytes \(1,000,000 bytes\)"):
        records(connector)


def test_trigger_only_job(tool: Path, make: Any) -> None:
    assert records(make("command", run(tool, "quiet", output_format="none"))) == []
    with pytest.raises(ConnectorFatal, match="exited with status 3"):
        records(make("command", run(tool, "fail", output_format="none")))


ARTISAN = textwrap.dedent(
    """
    import json, sys
    command, options = sys.argv[1], sys.argv[2:]
    if command == "production:export":
        print(json.dumps({"command": command, "options": options,
                          "data": [{"machine": "M-01", "good": 120}, {"machine": "M-02", "good": 97}]}))
    else:
        print(f"Command \\"{command}\\" is not defined.", file=sys.stderr)
        sys.exit(1)
    """
)


@pytest.fixture
def laravel(data_dir: Path) -> tuple[Path, Path]:
    """A Laravel-like project with an artisan script, and a stand-in php executable."""
    project = data_dir / "mes"
    project.mkdir()
    (project / "artisan").write_text(ARTISAN)
    php = data_dir / "bin" / "php"
    php.parent.mkdir()
    php.write_text(
        f"#!{sys.executable}\nimport runpy, sys\nsys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    php.chmod(0o755)
    return project, php


def test_artisan_preset(laravel: tuple[Path, Path], data_dir: Path, make: Any) -> None:
    project, php = laravel
    config = {
        "command": "production:export",
        "working_directory": str(project),
        "parameters": {"date": "2026-01-05", "line": "A", "force": True, "dry-run": False},
        "records_path": "data",
    }
    connector = make("artisan", config)
    assert isinstance(connector, ArtisanConnector)
    assert connector.argv() == [
        "php",
        "artisan",
        "production:export",
        "--date=2026-01-05",
        "--line=A",
        "--force",
    ]
    with pytest.raises(ConnectorFatal, match="'php' is not on the allowlist"):
        connector.check()
    settings = Settings(data_roots=str(data_dir), command_allowlist=str(php))
    context = ConnectorContext("t", settings)
    allowed = build_connector("artisan", {**config, "php": str(php)}, {}, context)
    assert records(allowed) == [{"machine": "M-01", "good": 120}, {"machine": "M-02", "good": 97}]
    unknown = build_connector(
        "artisan", {**config, "php": str(php), "command": "nope"}, {}, context
    )
    with pytest.raises(ConnectorFatal, match='Command "nope" is not defined'):
        records(unknown)


@pytest.mark.parametrize(
    ("connection_type", "config", "problem"),
    [
        ("artisan", {"command": "x; rm", "working_directory": "/srv"}, "is not a command name"),
        ("artisan", {"command": "report:daily"}, "working_directory: Field required"),
        ("command", {"command": "x", "working_directory": "rel/dir"}, "must be an absolute path"),
        ("command", {"command": "x", "environment": {"BAD NAME": "1"}}, "not a valid variable"),
        (
            "command",
            {"command": "x", "environment": {"LD_PRELOAD": "/tmp/x.so"}},
            "environment.LD_PRELOAD: not allowed: a loader hook",
        ),
        ("command", {"command": "x", "environment": {"PLANT": "A"}}, "not on the safe list"),
        ("command", {"command": "x", "output_format": "xml"}, "output_format: Input should be"),
        ("command", {"command": "x", "shell": True}, "shell: Extra inputs are not permitted"),
    ],
)
def test_config_is_validated(connection_type: str, config: dict[str, Any], problem: str) -> None:
    problems = validate_connection_config(connection_type, config)
    assert any(problem in p for p in problems), problems


@pytest.fixture
def allow_python(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORYSYNC_COMMAND_ALLOWLIST", sys.executable)


def test_sync_into_the_store(allow_python: None, store: Store, tool: Path) -> None:
    register(
        store,
        {
            "source_id": "mes_export",
            "name": "MES export",
            "source_type": "command",
            "connections": [{"connection_config": run(tool, "json", "5")}],
            "mappings": [
                {
                    "target_table": "mes_export",
                    "mapping_config": {"primary_key": "id", "records_path": "data"},
                }
            ],
        },
    )
    result = Runner(store).sync("mes_export")
    assert result.sync_status == "success", result.error_message
    assert counts(result) == (5, 0, 0)
    assert sorted(r["qty"] for r in table_rows(store, "mes_export")) == [0, 10, 20, 30, 40]
