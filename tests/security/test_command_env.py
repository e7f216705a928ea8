"""The command environment attack, reproduced for real.

A command source's ``environment`` (in ``connection_config`` or ``authentication_config``)
could name any variable: ``LD_PRELOAD`` pointing at a shared library, or
``PYTHONWARNINGS`` + ``BROWSER`` with an allow-listed ``python3``, ran any code, past the
executable allowlist. Here a real library (built with gcc) and a real "browser" script
each write a marker file when they run. The sources that declare them are refused by
``apply``, by the API of a real server and by the console; a source stored behind the
validation's back fails its run without any marker appearing, while the service stays up
and the rows it synced before stay as they were. Safe variables and the administrator's
extra names still reach the command; the service's own secrets never do.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from fastapi.testclient import TestClient

from factorysync import services
from factorysync.api import create_app
from factorysync.connectors.command_env import COMMAND_PATH, name_problem
from factorysync.intake import declaration
from factorysync.settings import Settings, reset_settings
from factorysync.store.registry import declaration_of, get_source
from factorysync.store.registry_save import apply_declarations
from factorysync.store.store import Store
from tests.api.conftest import role_tokens, start_server
from tests.conftest import need_service, run_cli
from tests.engine.test_runner import table_rows
from tests.web.conftest import add_users
from tests.web.test_pages import log_in

HOOK_C = r"""
#include <fcntl.h>
#include <unistd.h>

__attribute__((constructor)) static void hooked(void) {
    int fd = open(MARKER, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        write(fd, "loaded\n", 7);
        close(fd);
    }
}
"""
# Prints the environment it was given as records: the synced rows are what the command saw.
ENV_DUMP = (
    "import json, os\n"
    "print(json.dumps({'data': [{'name': k, 'value': v} for k, v in sorted(os.environ.items())]}))\n"
)
WARNINGS_HOOK = "all:0:antigravity.x:0:0"  # importing antigravity opens $BROWSER


@dataclass
class Hook:
    path: Path  # the library or program the attack points at
    marker: Path  # written when it runs

    def ran(self) -> bool:
        return self.marker.exists()


@pytest.fixture
def preload(tmp_path: Path) -> Hook:
    """A shared library whose constructor writes the marker, as LD_PRELOAD would load it."""
    gcc = shutil.which("gcc")
    if gcc is None:
        need_service("gcc", "not on PATH (needed to build the LD_PRELOAD library)")
    marker = tmp_path / "preload-ran"
    source = tmp_path / "hook.c"
    source.write_text(HOOK_C)
    library = tmp_path / "hook.so"
    subprocess.run(
        [str(gcc), "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(library), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return Hook(library, marker)


@pytest.fixture
def browser(tmp_path: Path) -> Hook:
    """A "browser" program that writes the marker (isolated from PYTHON* itself, -I)."""
    marker = tmp_path / "browser-ran"
    program = tmp_path / "browser"
    program.write_text(
        f"#!{sys.executable} -I\nimport pathlib, sys\n"
        f"pathlib.Path({str(marker)!r}).write_text(sys.argv[1])\n"
    )
    program.chmod(0o755)
    return Hook(program, marker)


@pytest.fixture
def tool(data_dir: Path) -> Path:
    path = data_dir / "shift_env.py"
    path.write_text(ENV_DUMP)
    return path


@pytest.fixture
def plant(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, secret_key: str) -> Iterator[Store]:
    """A store whose service holds a secret key in its environment, may run python3 and
    lets commands have SHIFT_* variables too."""
    monkeypatch.setenv("FACTORYSYNC_SECRET_KEY", secret_key)
    monkeypatch.setenv("FACTORYSYNC_COMMAND_ALLOWLIST", sys.executable)
    monkeypatch.setenv("FACTORYSYNC_COMMAND_ENV_ALLOWLIST", "SHIFT_*")
    reset_settings()
    store = Store(Settings())
    services.init_store(store)
    yield store
    store.dispose()


def command_source(
    tool: Path,
    environment: dict[str, str] | None = None,
    secret_environment: dict[str, str] | None = None,
    source_id: str = "shift_env",
) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "name": "Shift export",
        "source_type": "command",
        "connections": [
            {
                "connection_config": {
                    "command": sys.executable,
                    "parameters": [str(tool)],
                    "environment": environment or {},
                },
                "authentication_config": (
                    {"environment": secret_environment} if secret_environment else {}
                ),
            }
        ],
        "mappings": [
            {
                "target_table": "shift_env",
                "mapping_config": {"records_path": "data", "primary_key": ["name"]},
            }
        ],
    }


def store_unchecked(store: Store, raw: dict[str, Any]) -> None:
    """Write a source straight into the registry, past every check (a row from before)."""
    with store.begin() as conn:
        apply_declarations(conn, [declaration(raw)], store.box)


def seen(store: Store) -> dict[str, str]:
    return {r["name"]: r["value"] for r in table_rows(store, "shift_env")}


def test_the_hooks_run_code_when_nothing_stops_them(preload: Hook, browser: Hook) -> None:
    """The control: both attacks work on the python3 that command sources may run."""
    base = {"PATH": COMMAND_PATH, "HOME": str(preload.path.parent)}
    attacks = [
        (preload, {"LD_PRELOAD": str(preload.path)}),
        (browser, {"PYTHONWARNINGS": WARNINGS_HOOK, "BROWSER": str(browser.path)}),
    ]
    for hook, variables in attacks:
        subprocess.run(
            [sys.executable, "-c", "pass"], env={**base, **variables}, timeout=60, check=True
        )
        assert hook.ran(), f"{variables} did not run its code: the test proves nothing"


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "ld_preload",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "DYLD_INSERT_LIBRARIES",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "MALLOC_CHECK_",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "RES_OPTIONS",
        "OPENSSL_CONF",
        "PYTHONWARNINGS",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PERL5OPT",
        "PERLLIB",
        "RUBYOPT",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "PHPRC",
        "PHP_INI_SCAN_DIR",
        "BASH_ENV",
        "ENV",
        "IFS",
        "PATH",
        "SHELLOPTS",
        "PS4",
        "HOME",
        "BROWSER",
        "GIT_SSH_COMMAND",
        "SSH_ASKPASS",
        "APP_CONFIG_CACHE",
        "APP_BASE_PATH",
        "FACTORYSYNC_SECRET_KEY",
    ],
)
def test_hooks_stay_refused_whatever_the_administrator_allows(name: str) -> None:
    everything = Settings(command_env_allowlist="*")
    problem = name_problem(name, everything)
    assert problem is not None and problem.startswith("not allowed: "), problem
    assert "never passed to commands" in problem
    assert name_problem("SHIFT_LINE", everything) is None  # "*" does allow the rest


def test_the_safe_list_and_its_extension() -> None:
    default = Settings()
    for name in ("LANG", "LC_TIME", "TZ", "APP_ENV", "DB_PASSWORD", "REDIS_HOST"):
        assert name_problem(name, default) is None, name
    refused = name_problem("SHIFT_LINE", default)
    assert refused is not None and "not on the safe list" in refused
    assert "FACTORYSYNC_COMMAND_ENV_ALLOWLIST" in refused
    extended = Settings(command_env_allowlist="SHIFT_*, MES_TOKEN")
    assert name_problem("SHIFT_LINE", extended) is None
    assert name_problem("MES_TOKEN", extended) is None
    assert name_problem("MES_HOST", extended) is not None


def test_apply_refuses_hooks_in_either_section(
    plant: Store, tool: Path, preload: Hook, browser: Hook, data_dir: Path
) -> None:
    good = command_source(tool, {"APP_ENV": "production"})
    good_file = data_dir / "good.yaml"
    good_file.write_text(yaml.safe_dump({"sources": [good]}))
    services.apply_file(plant, good_file)
    assert services.sync_many(plant, ["shift_env"])[0].sync_status == "success"
    before = seen(plant)
    assert before["APP_ENV"] == "production"

    attacks = {
        "in connection_config": [
            command_source(tool, {"APP_ENV": "production", "LD_PRELOAD": str(preload.path)}),
            command_source(
                tool,
                {"PYTHONWARNINGS": WARNINGS_HOOK, "BROWSER": str(browser.path)},
                source_id="shift_env_2",
            ),
        ],
        "in authentication_config": [
            command_source(tool, {"APP_ENV": "production"}, {"LD_PRELOAD": str(preload.path)}),
            command_source(
                tool,
                secret_environment={"PYTHONWARNINGS": WARNINGS_HOOK, "BROWSER": str(browser.path)},
                source_id="shift_env_2",
            ),
        ],
    }
    for case, sources in attacks.items():
        path = data_dir / "attack.yaml"
        path.write_text(yaml.safe_dump({"sources": sources}))
        section = "connection_config" if case == "in connection_config" else "authentication_config"
        done = run_cli("apply", str(path))
        out = done.stdout + done.stderr
        assert done.returncode != 0, out
        first = f"sources[0] (source_id 'shift_env'): connections[0].{section}.environment"
        second = f"sources[1] (source_id 'shift_env_2'): connections[0].{section}.environment"
        assert f"{first}.LD_PRELOAD: not allowed: a loader hook" in out, (case, out)
        assert f"{second}.PYTHONWARNINGS: not allowed: an interpreter hook" in out, (case, out)
        assert f"{second}.BROWSER: not allowed: a program launcher" in out, (case, out)
        assert str(preload.path) not in out  # names the variable, not its value

    # Nothing was saved, nothing ran, and the registry and the rows are as they were.
    with plant.connect() as conn:
        stored = declaration_of(get_source(conn, "shift_env"), plant.box)
    assert stored.connections[0].connection_config["environment"] == {"APP_ENV": "production"}
    assert stored.connections[0].authentication_config == {}
    assert [s["source_id"] for s in services.sources(plant)] == ["shift_env"]
    assert not preload.ran() and not browser.ran()
    assert seen(plant) == before


def test_api_refuses_hooks_and_runs_stored_ones_never(
    plant: Store,
    env: dict[str, str],
    tool: Path,
    preload: Hook,
    browser: Hook,
    secret_key: str,
) -> None:
    token = role_tokens(plant)["admin"]
    server = start_server("serve")
    try:
        with httpx2.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as api:

            def sync() -> dict[str, Any]:
                answer = api.post("/api/sources/shift_env/sync?wait_s=120")
                assert answer.status_code == 200, answer.text
                return answer.json()  # type: ignore[no-any-return]

            def refused(answer: Any) -> list[str]:
                assert answer.status_code == 422, answer.text
                return [p["msg"] for p in answer.json()["detail"]]

            # Safe variables, the administrator's SHIFT_* and a secret reach the command.
            good = command_source(
                tool, {"APP_ENV": "production", "TZ": "UTC"}, {"SHIFT_TOKEN": "t-5531"}
            )
            assert api.post("/api/sources", json=good).status_code == 201
            run = sync()
            assert run["sync_status"] == "success", run["error_message"]
            before = seen(plant)
            assert before["APP_ENV"] == "production" and before["TZ"] == "UTC"
            assert before["SHIFT_TOKEN"] == "t-5531"
            # ... and the service's own settings do not, though its process holds them.
            assert not [n for n in before if n.startswith("FACTORYSYNC_")], sorted(before)
            own = (secret_key, env["FACTORYSYNC_DATABASE_URL"])
            assert not [n for n, v in before.items() if any(o in v for o in own)]
            assert set(before) == {"PATH", "LANG", "LC_ALL", "TZ", "HOME", "APP_ENV", "SHIFT_TOKEN"}

            # Refused over the API: new sources, changes and references to the service's key.
            loader = command_source(
                tool, {"LD_PRELOAD": str(preload.path)}, source_id="shift_env_2"
            )
            assert any(
                m.startswith(
                    "connections[0].connection_config.environment.LD_PRELOAD: "
                    "not allowed: a loader hook"
                )
                for m in refused(api.post("/api/sources", json=loader))
            )
            secret_loader = command_source(tool, {"TZ": "UTC"}, {"LD_PRELOAD": str(preload.path)})
            problems = refused(api.patch("/api/sources/shift_env", json=secret_loader))
            assert any(
                "connections[0].authentication_config.environment.LD_PRELOAD: not allowed" in m
                for m in problems
            ), problems
            python_hook = command_source(
                tool, {"PYTHONWARNINGS": WARNINGS_HOOK}, {"BROWSER": str(browser.path)}
            )
            problems = refused(api.patch("/api/sources/shift_env", json=python_hook))
            assert any(
                "connection_config.environment.PYTHONWARNINGS: not allowed" in m for m in problems
            )
            assert any(
                "authentication_config.environment.BROWSER: not allowed" in m for m in problems
            )
            key_ref = command_source(tool, {}, {"APP_KEY": "${env:FACTORYSYNC_SECRET_KEY}"})
            problems = refused(api.patch("/api/sources/shift_env", json=key_ref))
            assert any(
                "APP_KEY: the value refers to ${env:FACTORYSYNC_SECRET_KEY}" in m for m in problems
            )
            shown = api.get("/api/sources/shift_env").json()
            assert shown["connections"][0]["connection_config"]["environment"] == {
                "APP_ENV": "production",
                "TZ": "UTC",
            }

            # Stored behind the validation's back: each run fails, before anything runs.
            stored_attacks = [
                (
                    command_source(tool, {"LD_PRELOAD": str(preload.path)}),
                    [
                        "invalid connection_config",
                        "environment.LD_PRELOAD: not allowed: a loader hook",
                    ],
                ),
                (
                    command_source(
                        tool,
                        {"APP_ENV": "production"},
                        {"PYTHONWARNINGS": WARNINGS_HOOK, "BROWSER": str(browser.path)},
                    ),
                    [
                        "authentication_config.environment.PYTHONWARNINGS: not allowed: "
                        "an interpreter hook",
                        "authentication_config.environment.BROWSER: not allowed: "
                        "a program launcher",
                    ],
                ),
                (
                    command_source(tool, {}, {"APP_KEY": "${env:FACTORYSYNC_SECRET_KEY}"}),
                    # Refused where references are resolved, for every source type.
                    ["environment.APP_KEY: ${env:FACTORYSYNC_SECRET_KEY} is not allowed"],
                ),
            ]
            for raw, expected in stored_attacks:
                store_unchecked(plant, raw)
                run = sync()
                assert run["sync_status"] == "failed", run
                message = run["error_message"]
                assert all(e in message for e in expected), message
                assert secret_key not in message
                assert not preload.ran() and not browser.ran()
                assert seen(plant) == before  # the rows synced before are untouched
                assert api.get("/api/health").status_code == 200  # the service is up
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert not preload.ran() and not browser.ran()


def test_console_form_refuses_hooks(plant: Store, tool: Path, preload: Hook) -> None:
    add_users(plant)
    with TestClient(create_app(plant)) as client:
        token = log_in(client, "admin")
        form = {
            "csrf": token,
            "source_type": "command",
            "connection_type": "command",
            "source_id": "shift_env",
            "name": "Shift export",
            "priority": "2",
            "refresh_interval": "300",
            "cfg.command": sys.executable,
            "cfg.parameters": f'["{tool}"]',
            "cfg.environment": f'{{"APP_ENV": "production", "LD_PRELOAD": "{preload.path}"}}',
            "target_table": "shift_env",
            "sync_strategy": "full",
            "records_path": "data",
            "primary_key": "name",
            "auth.name.0": "",
            "auth.value.0": "",
            "f.col.0": "",
        }
        for intent in ("save", "preview"):
            answer = client.post("/sources/new", data={**form, "intent": intent})
            assert answer.status_code == 422, answer.text
            errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]*)<', answer.text))
            assert errors.get("cfg.environment", "").startswith(
                "not allowed: a loader hook (LD_PRELOAD, like every LD_* variable)"
            ), errors
            assert not preload.ran()
        assert services.sources(plant) == []
        # Without the hook the same form saves.
        safe = {**form, "intent": "save", "cfg.environment": '{"APP_ENV": "production"}'}
        saved = client.post("/sources/new", data=safe, follow_redirects=False)
        assert saved.status_code == 303, saved.text
    assert [s["source_id"] for s in services.sources(plant)] == ["shift_env"]
