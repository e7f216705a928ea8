"""A command line that names no command (``--help``, no arguments, a mistyped command)
is answered from the command table alone: the same help as the whole app gives, with no
command module imported."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from factorysync.cli import COMMANDS, GROUPS, SUMMARIES

WHOLE = (
    "import sys; sys.argv = ['factorysync', *sys.argv[1:]]\n"
    "from factorysync.cli import register; register()\n"
    "from factorysync.cli.base import app; app()\n"
)
LISTED = (
    "import sys; sys.argv = ['factorysync', *sys.argv[1:]]\n"
    "from factorysync.cli import main; main()\n"
)


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("args", [["--help"], [], ["--debug", "--help"], ["sorce", "list"]])
def test_the_listing_is_the_whole_apps(args: list[str]) -> None:
    whole, listed = _run(WHOLE, *args), _run(LISTED, *args)
    assert (listed.returncode, listed.stdout, listed.stderr) == (
        whole.returncode,
        whole.stdout,
        whole.stderr,
    )
    assert "source" in listed.stdout + listed.stderr


def test_every_summary_is_the_commands_own() -> None:
    import click
    import typer.main

    from factorysync.cli import app

    root: Any = typer.main.get_command(app)  # a group of typer's own click
    ctx = click.Context(root)
    own = {}
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        assert command is not None and command.help
        own[name] = command.help.split("\n\n")[0]
    assert list(SUMMARIES) == [*COMMANDS, *GROUPS]
    assert own == SUMMARIES


def test_the_listing_imports_no_command_module() -> None:
    script = (
        "import sys\n"
        "from factorysync.cli import listing; listing()\n"
        "print(sorted(m for m in sys.modules if m.startswith('factorysync.cli.') "
        "and m != 'factorysync.cli.base'), 'sqlalchemy' in sys.modules)\n"
    )
    done = _run(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] False"
