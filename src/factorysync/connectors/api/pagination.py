"""Pagination of API sources: ``connection_config.pagination``.

    type         the request of the next page                       the last page
    offset       offset_param = offset + records read so far        an empty page
    page         page_param = page + 1                              an empty page
    cursor       cursor_param = the token at next_cursor_path       an empty page, or no token
    next_url     the URL at next_url_path (relative to the page's)  an empty page, or no URL
    link_header  the Link header's rel="next" URL                   an empty page, or no link

``offset``, ``page`` and ``cursor`` put their parameters in the query string, or with
``in: body`` into the JSON body (dot paths). ``next_url`` and ``link_header`` request the
URL they are given as it is (plus authentication): the configured ``params`` go with the
first request only.

A read fails, rather than going on for ever, after ``max_pages`` pages; and when a page is
the same as the one before (the API ignores the paging parameters).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factorysync.config.names import get_path, parse_path
from factorysync.connectors.api.client import Reply


def _dot_path(value: str) -> str:
    parse_path(value)  # raises ValueError on an empty segment
    return value


class _Paging(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_pages: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Most pages one read requests; a read that gets there fails rather "
        "than store a partial snapshot.",
    )


class _ParamPaging(_Paging):
    location: Literal["query", "body"] = Field(
        default="query",
        alias="in",
        description="Where the paging parameters go: query (the query string) or body "
        "(the JSON body; their names are then dot paths, e.g. paging.from).",
    )


class OffsetPagination(_ParamPaging):
    type: Literal["offset"] = Field(
        description="offset: the offset grows by the records received, until a page is empty."
    )
    offset_param: str = Field(
        default="offset", min_length=1, description="Name of the offset parameter."
    )
    limit_param: str | None = Field(
        default="limit",
        min_length=1,
        description="Name of the page size parameter; null: no page size is sent.",
    )
    limit: int = Field(default=100, ge=1, description="Records per page asked for.")
    start: int = Field(default=0, ge=0, description="Offset of the first page.")


class PagePagination(_ParamPaging):
    type: Literal["page"] = Field(
        description="page: the page number grows by one, until a page is empty."
    )
    page_param: str = Field(
        default="page", min_length=1, description="Name of the page number parameter."
    )
    start: int = Field(
        default=1, ge=0, description="Number of the first page: 1, or 0 for APIs that count from 0."
    )
    size_param: str | None = Field(
        default=None,
        min_length=1,
        description="Name of the page size parameter, given together with size. Default: "
        "no page size is sent.",
    )
    size: int | None = Field(
        default=None, ge=1, description="Records per page asked for, with size_param."
    )

    @model_validator(mode="after")
    def _size(self) -> PagePagination:
        if (self.size_param is None) != (self.size is None):
            raise ValueError("size_param and size go together")
        return self


class CursorPagination(_ParamPaging):
    type: Literal["cursor"] = Field(
        description="cursor: each response holds the token of the next page; the pages "
        "end at an empty page or a response without a token."
    )
    cursor_param: str = Field(
        default="cursor",
        min_length=1,
        description="Name of the parameter that sends the token, e.g. after.",
    )
    next_cursor_path: str = Field(
        description="Dot path to the next page's token in the response, e.g. meta.next "
        "(a missing, null or empty token ends the read)."
    )
    limit_param: str | None = Field(
        default=None,
        min_length=1,
        description="Name of the page size parameter, given together with limit. "
        "Default: no page size is sent.",
    )
    limit: int | None = Field(
        default=None, ge=1, description="Records per page asked for, with limit_param."
    )

    check_path = field_validator("next_cursor_path")(_dot_path)

    @model_validator(mode="after")
    def _limit(self) -> CursorPagination:
        if (self.limit_param is None) != (self.limit is None):
            raise ValueError("limit_param and limit go together")
        return self


class NextUrlPagination(_Paging):
    type: Literal["next_url"] = Field(
        description="next_url: each response holds the URL of the next page; the pages "
        "end at an empty page or a response without one. Only the first request carries "
        "params."
    )
    next_url_path: str = Field(
        description="Dot path to the next page's URL in the response, e.g. links.next; "
        "the URL may be relative to the page's."
    )

    check_path = field_validator("next_url_path")(_dot_path)


class LinkHeaderPagination(_Paging):
    type: Literal["link_header"] = Field(
        description="link_header: the next page's URL is in the Link response header "
        "(RFC 8288); the pages end at an empty page or a response without that link. "
        "Only the first request carries params."
    )
    rel: str = Field(
        default="next", min_length=1, description="The rel of the Link header entry to follow."
    )


Pagination = Annotated[
    OffsetPagination | PagePagination | CursorPagination | NextUrlPagination | LinkHeaderPagination,
    Field(discriminator="type"),
]
PaginationConfig = (
    OffsetPagination | PagePagination | CursorPagination | NextUrlPagination | LinkHeaderPagination
)


@dataclass(frozen=True)
class PageRequest:
    """The varying part of a page's request."""

    url: httpx.URL
    params: dict[str, Any]
    body: Any
    position: int = 0  # offset or page number


def _put(request: PageRequest, paging: _ParamPaging, name: str, value: Any) -> PageRequest:
    if paging.location == "query":
        return replace(request, params={**request.params, name: value})
    body = copy.deepcopy(request.body) if isinstance(request.body, dict) else {}
    target = body
    *parents, last = name.split(".")
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ValueError(f"pagination: body field {name!r} is inside a non-object")
    target[last] = value
    return replace(request, body=body)


def first_page(paging: PaginationConfig | None, request: PageRequest) -> PageRequest:
    if isinstance(paging, OffsetPagination):
        request = _put(request, paging, paging.offset_param, paging.start)
        if paging.limit_param:
            request = _put(request, paging, paging.limit_param, paging.limit)
        return replace(request, position=paging.start)
    if isinstance(paging, PagePagination):
        request = _put(request, paging, paging.page_param, paging.start)
        if paging.size_param:
            request = _put(request, paging, paging.size_param, paging.size)
        return replace(request, position=paging.start)
    if isinstance(paging, CursorPagination) and paging.limit_param:
        return _put(request, paging, paging.limit_param, paging.limit)
    return request


def next_page(
    paging: PaginationConfig | None,
    request: PageRequest,
    reply: Reply,
    document: Any,
    count: int,
) -> PageRequest | None:
    """The request of the page after ``reply`` (which held ``count`` records), or None."""
    if paging is None or count == 0:
        return None
    if isinstance(paging, OffsetPagination):
        position = request.position + count
        return replace(_put(request, paging, paging.offset_param, position), position=position)
    if isinstance(paging, PagePagination):
        position = request.position + 1
        return replace(_put(request, paging, paging.page_param, position), position=position)
    if isinstance(paging, CursorPagination):
        token = get_path(document, parse_path(paging.next_cursor_path))
        if isinstance(token, bool) or not isinstance(token, str | int) or token == "":
            return None
        return _put(request, paging, paging.cursor_param, token)
    if isinstance(paging, NextUrlPagination):
        link = get_path(document, parse_path(paging.next_url_path))
        if not isinstance(link, str) or not link.strip():
            return None
        return PageRequest(reply.url.join(link.strip()), {}, request.body)
    link = reply.links.get(paging.rel)
    if not link:
        return None
    return PageRequest(reply.url.join(link), {}, request.body)
