"""The systemd unit files in deploy/ are valid and start real factorysync commands."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

COMMANDS = {"run", "worker", "serve", "forward", "central"}
UNITS = sorted((Path(__file__).resolve().parents[1] / "deploy" / "systemd").glob("*.service"))
KNOWN = {
    "Unit": {"Description", "Documentation", "After", "Wants", "Requires"},
    "Service": {
        "Type",
        "User",
        "Group",
        "EnvironmentFile",
        "ExecStart",
        "Restart",
        "RestartSec",
        "KillSignal",
        "TimeoutStopSec",
        "NoNewPrivileges",
        "PrivateTmp",
        "ProtectSystem",
        "ProtectHome",
        "ReadWritePaths",
    },
    "Install": {"WantedBy"},
}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_file(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit)
    assert set(parser.sections()) == {"Unit", "Service", "Install"}
    for section in parser.sections():
        unknown = set(parser[section]) - KNOWN[section]
        assert not unknown, f"{unit.name} [{section}]: unknown keys {unknown}"
    service = parser["Service"]
    command = service["ExecStart"].split()
    assert command[0] == "/opt/factorysync/bin/factorysync"
    assert command[1] in COMMANDS
    assert service["Restart"] == "on-failure"
    # The command and its options exist in this version's CLI.
    from typer.main import get_command

    from factorysync.cli import app

    cli = get_command(app)
    sub = cli.commands[command[1]]  # type: ignore[attr-defined]
    options = {o for p in sub.params for o in p.opts}
    for arg in command[2:]:
        if arg.startswith("--"):
            assert arg in options, f"{unit.name}: {arg} is not an option of {command[1]}"


def test_every_command_has_a_unit() -> None:
    used = set()
    for unit in UNITS:
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                used.add(line.split()[1])
    assert used == COMMANDS


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify(unit: Path) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=600
    )
    problems = [
        line
        for line in proc.stderr.splitlines()
        if unit.name in line
        and "not executable" not in line
        and "No such file" not in line
        and "does not exist" not in line
    ]
    assert not problems, proc.stderr
