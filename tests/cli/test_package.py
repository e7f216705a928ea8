"""The command line's layout: a base that imports no command module, command modules that
import only the base, the runtime and the layers below, all put on the app explicitly by
the package, and the same CLI however it is started."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

import factorysync.cli
from factorysync.cli import app

PACKAGE = Path(factorysync.cli.__file__).parent
# Not command modules: the root, the entry point, shared pieces, the unchanged-sync path.
NOT_COMMANDS = {"__init__", "__main__", "base", "runtime", "fast_sync"}
COMMAND_MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in NOT_COMMANDS)


def cli_imports(module: str) -> set[str]:
    """The modules of the cli package that a module of it imports, by name."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("factorysync.cli.")}
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:  # relative: from . import x / from .x import y
                name = "factorysync.cli" + (f".{name}" if name else "")
            if name == "factorysync.cli":
                found |= {f"factorysync.cli.{a.name}" for a in node.names}
            elif name.startswith("factorysync.cli."):
                found.add(name)
    return found


def test_the_package_has_command_modules() -> None:
    assert {"setup", "source", "quarantine", "run", "worker", "demo"} <= set(COMMAND_MODULES)


def test_base_imports_nothing_of_the_package() -> None:
    assert cli_imports("base") == set()


def test_runtime_imports_only_base() -> None:
    assert cli_imports("runtime") <= {"factorysync.cli.base"}


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_a_command_module_imports_only_base_and_runtime(module: str) -> None:
    assert cli_imports(module) <= {"factorysync.cli.base", "factorysync.cli.runtime"}


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_every_module_is_under_500_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) < 500


def test_the_package_names_every_command_module() -> None:
    """Registered explicitly: a new module shows in __init__'s tables, not by a directory
    scan; each module is imported when one of its commands runs."""
    source = (PACKAGE / "__init__.py").read_text(encoding="utf-8")
    assert "pkgutil" not in source
    named = {module for module, _ in factorysync.cli.COMMANDS.values()}
    named |= {module for module, _ in factorysync.cli.GROUPS.values()}
    named |= {m for commands in factorysync.cli.GROUP_COMMANDS.values() for m, _, _ in commands}
    assert named == set(COMMAND_MODULES)


@pytest.mark.parametrize(
    ("argv", "loaded", "unloaded"),
    [
        (["version"], "factorysync.cli.version", "factorysync.cli.accounts"),
        (["--debug", "source", "list"], "factorysync.cli.source_lifecycle", "factorysync.cli.demo"),
        (["user", "list"], "factorysync.cli.accounts", "factorysync.cli.source"),
    ],
)
def test_a_command_loads_only_its_own_module(argv: list[str], loaded: str, unloaded: str) -> None:
    code = (
        "import sys; from factorysync.cli import _command_named, register; "
        f"name = _command_named({argv!r}); register({{name}}); "
        f"print({loaded!r} in sys.modules, {unloaded!r} in sys.modules, name)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.split() == ["True", "False", argv[-2] if len(argv) > 2 else argv[0]]


def test_help_and_unknown_words_load_every_command() -> None:
    assert factorysync.cli._command_named(["--help"]) is None
    assert factorysync.cli._command_named(["no-such-command"]) is None
    assert factorysync.cli._command_named(["--debug", "status"]) == "status"


def test_every_command_comes_from_a_command_module() -> None:
    group = get_command(app)
    modules = set()
    for name in group.list_commands(None):  # type: ignore[attr-defined,arg-type]
        command = group.commands[name]  # type: ignore[attr-defined]
        for callback in [command.callback] + [
            c.callback for c in getattr(command, "commands", {}).values()
        ]:
            if callback is not None and callback.__module__ != "factorysync.cli.base":
                modules.add(callback.__module__)
    in_package = {m.removeprefix("factorysync.cli.") for m in modules}
    assert set(COMMAND_MODULES) <= in_package
    assert in_package == set(COMMAND_MODULES)


def _help(*command: str) -> list[str]:
    proc = subprocess.run(
        [*command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return [line for line in proc.stdout.splitlines() if "Usage:" not in line]


def test_python_m_and_the_console_script_show_the_same_commands_in_the_same_order() -> None:
    script = [sys.executable, "-c", "from factorysync.cli import main; main()"]
    assert _help(sys.executable, "-m", "factorysync.cli") == _help(*script)


def test_loading_the_command_line_leaves_the_service_unloaded() -> None:
    """Short commands start fast: the scheduler, API server and demo data set are
    imported by the commands that use them, when they run."""
    heavy = [
        "uvicorn",
        "factorysync.api.server",
        "factorysync.engine.scheduler",
        "factorysync.realtime.service",
        "factorysync.demo.generator",
    ]
    code = f"import sys, factorysync.cli; print([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "[]"
