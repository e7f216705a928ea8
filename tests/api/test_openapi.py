"""Schemathesis against ``/openapi.json`` with an admin token (the document needs one too):
generated requests for every operation, valid ones and (fewer) invalid ones, get no 5xx,
and every answer fits the documented status, content type, headers and schema.

Bounded: a fixed number of examples per operation, no deadline, derandomized (the same
examples every run, so the suite is not flaky).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from factorysync.store import accounts as auth
from tests.api.conftest import Api

EXAMPLES = 12  # valid requests per operation (and per pass)
INVALID_EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class AdminToken:
    """A working admin token for each call: generated requests may disable a user or
    revoke tokens, so a fresh admin is made whenever the current one stopped working."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.n = 0
        self.token = ""
        self.renew()

    def renew(self) -> None:
        self.n += 1
        with self.api.store.begin() as conn:
            name = f"schemathesis-{self.n}"
            auth.create_user(conn, name, "admin")
            self.token, _ = auth.create_token(conn, name)

    def headers(self) -> dict[str, str]:
        with self.api.store.connect() as conn:
            if auth.authenticate(conn, self.token) is None:
                self.renew()
        return {"Authorization": f"Bearer {self.token}"}


# Path parameters naming things that exist, so generated queries and bodies reach the
# real handlers too (the other pass generates the path parameters as well).
EXISTING = {"source_id": "machines", "target_table": "machines", "username": "viewer-user"}


@pytest.mark.slow
def test_generated_requests_fit_the_schema(synced: Api, data_dir: Path) -> None:
    api = synced
    app = api.client.app
    admin = AdminToken(api)
    # The document itself needs a token (FACTORYSYNC_DOCS_PUBLIC is off).
    assert api.get("/openapi.json", None).status_code == 401
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=admin.headers())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    # An event stream never ends (tests/api/test_live.py reads it over real HTTP).
    operations = [o for o in operations if o.label != "GET /api/stream/{target_table}"]
    positive, negative = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
    passes = []
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        if (
            names
            and names <= set(EXISTING)
            and operation.label != "DELETE /api/sources/{source_id}"
        ):
            passes.append((operation, {n: EXISTING[n] for n in names}, positive, EXAMPLES))
    passes += [(operation, None, positive, EXAMPLES) for operation in operations]
    passes += [(operation, None, negative, INVALID_EXAMPLES) for operation in operations]
    failures: list[str] = []

    for operation, fixed, mode, examples in passes:

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode, path_parameters=fixed))
        def check(case: Any) -> None:
            case.call_and_validate(headers=admin.headers(), checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            assert mode is negative  # nothing invalid to send (no parameters, no body)
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{operation.label} {fixed or ''} {mode.name}: {str(exc)[:2000]}")
    api.client.app.state.ctx.close()  # API-started syncs of generated sources finish here
    assert not failures, "\n\n".join(failures)
