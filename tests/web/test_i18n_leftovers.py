"""The last English leftovers of the console (issue #23): a delete or reset refused while
a run is in progress, a duplicate's problems, and the problems of a connection's
secrets, said in the user's language; the API and the CLI keep their English words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from factorysync import services
from factorysync.api import create_app
from factorysync.config import SourceDecl
from factorysync.errors import Problem
from factorysync.intake import parse_source
from factorysync.settings import get_settings
from factorysync.store.schema import data_source_sync_history as hist_t
from factorysync.store.store import Store
from factorysync.web.i18n import MESSAGES, translator
from factorysync.web.messages import problem_text
from tests.web.test_lifecycle import plant
from tests.web.test_pages import log_in


@pytest.fixture
def app(store: Store, data_dir: Path) -> Iterator[TestClient]:
    plant(store, data_dir)
    with TestClient(create_app(store)) as client:
        yield client


def _running(store: Store, source_id: str) -> int:
    with store.begin() as conn:
        return int(
            conn.execute(
                insert(hist_t)
                .values(
                    source_id=source_id,
                    sync_type="full",
                    sync_status="running",
                    worker="another-host:77",
                )
                .returning(hist_t.c.id)
            ).scalar_one()
        )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_refused_delete_or_reset_says_why_in_the_users_language(
    app: TestClient, store: Store
) -> None:
    token = log_in(app, "admin")
    run_id = _running(store, "press")
    english = app.post("/sources/press/delete", data={"csrf": token})
    assert english.status_code == 409 and f"(run {run_id} on another-host:77)" in english.text
    app.post("/language", data={"csrf": token, "lang": "id", "next": "/"})
    busy = MESSAGES["source.already_running"][1].format(id="press")
    for action in ("delete", "reset"):
        refused = app.post(f"/sources/press/{action}", data={"csrf": token})
        assert refused.status_code == 409, action
        assert busy in refused.text and "already" not in refused.text, action


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_duplicates_problems_are_said_in_the_users_language(app: TestClient) -> None:
    token = log_in(app, "admin")
    taken = app.post("/sources/press/duplicate", data={"csrf": token, "new_id": "weld"})
    assert taken.status_code == 409 and "source &#39;weld&#39; exists already" in taken.text
    app.post("/language", data={"csrf": token, "lang": "id", "next": "/"})
    taken = app.post("/sources/press/duplicate", data={"csrf": token, "new_id": "weld"})
    assert taken.status_code == 409
    assert MESSAGES["problem.source_exists"][1] in taken.text and "exists" not in taken.text
    bad = app.post("/sources/press/duplicate", data={"csrf": token, "new_id": "Bad Id"})
    assert bad.status_code == 422 and "must be a slug" not in bad.text
    assert "source_id" in bad.text  # the path names the field, as written


def _command_source(environment: dict[str, str]) -> SourceDecl:
    decl, problems = parse_source(
        {
            "source_id": "mes_export",
            "name": "MES export",
            "source_type": "command",
            "connections": [
                {
                    "connection_config": {"command": "mes-export"},
                    "authentication_config": {"environment": environment},
                }
            ],
            "mappings": [{"target_table": "mes_export"}],
        },
        "body",
    )
    assert decl is not None, problems
    return decl


def test_secret_problems_keep_their_english_and_carry_a_kind() -> None:
    decl = _command_source({"LD_PRELOAD": "/tmp/x.so", "APP_LINE": "A"})
    [problem] = services.secret_problems(decl, get_settings(), "body")
    where = "body: connections[0].authentication_config.environment.LD_PRELOAD"
    # The API's and the CLI's text, as before.
    assert problem.startswith(f"{where}: not allowed: a loader hook (LD_PRELOAD")
    assert isinstance(problem, Problem) and problem.kind == "value_error"
    assert str(problem) == f"{problem.path}: {problem.message}"
    assert problem_text(problem, translator("en")) == problem
    said = problem_text(problem, translator("id"))
    assert said.startswith(f"{where}: tidak valid: “not allowed: a loader hook")
    assert said.endswith("”")


def test_a_secret_problem_without_a_path_reads_as_before() -> None:
    decl = _command_source({})
    decl.connections[0].authentication_config["environment"] = ["LD_PRELOAD"]
    [problem] = services.secret_problems(decl, get_settings(), "body")
    assert problem == (
        "body: connections[0].authentication_config.environment: must be a mapping of "
        "variable names to values"
    )
    assert problem_text(problem, translator("id")).startswith(
        "body: connections[0].authentication_config.environment: tidak valid: “must be"
    )
