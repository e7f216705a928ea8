"""Pages of a target table for ``GET /api/data/{target_table}``.

The query itself (filters, order, keyset pagination, value conversion) is
:mod:`factorysync.services.dataquery`, shared with the console's data browser; this
module turns its problems into the API's 422 answer (a ``detail`` item per parameter).
See that module for the parameters.
"""

from __future__ import annotations

from datetime import tzinfo

from fastapi.exceptions import RequestValidationError

from factorysync.api.errors import problem
from factorysync.services import dataquery as query
from factorysync.services.dataquery import (
    MAX_LIMIT,
    OPERATORS,
    PAGE_PARAMS,
    Page,
    PageRequest,
    QueryProblems,
    convert,
    in_utc,
    to_json,
)
from factorysync.services.tables import TableInfo

__all__ = [
    "MAX_LIMIT",
    "OPERATORS",
    "PAGE_PARAMS",
    "Page",
    "PageQuery",
    "PageRequest",
    "convert",
    "in_utc",
    "to_json",
]


class PageQuery(query.PageQuery):
    """A validated page request; RequestValidationError (422) lists every problem."""

    def __init__(self, info: TableInfo, request: PageRequest, tz: tzinfo) -> None:
        try:
            super().__init__(info, request, tz)
        except QueryProblems as exc:
            raise RequestValidationError(
                [problem(["query", param], message) for param, message in exc.problems]
            ) from None
