"""The API connection type: a JSON REST API, read page after page.

    connection_type: api
    connection_config:
      base_url: https://mes.plant.local/api        # or url: (the whole URL)
      endpoint: /v1/production
      params: {line: A, since: "{{cursor}}"}
      auth: {type: bearer}                         # token from authentication_config
      pagination: {type: offset, limit: 500}
      rate_limit: 120                              # requests per minute
    authentication_config: {token: "${env:MES_TOKEN}"}

A read requests page after page (:mod:`.pagination`) and yields each page's records as
batches, so memory holds one page at a time; a page is at most ``max_response_bytes``.
A full read is a snapshot only once every page was read: a failure on any page fails
the read, and nothing of it is merged (or deleted).

Placeholders ``{{name}}`` (:mod:`.config`) are filled here from the decrypted
``authentication_config``; a value that uses ``{{cursor}}`` is left out when there is no
cursor (the first run, and full syncs). Requests, retries and the mapping of failures to
errors are the HTTP client's (:mod:`.client`), the outbound rules :mod:`.safety`'s.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from factorysync.config.mapping import records_at
from factorysync.connectors.api.auth import ApiKeyAuth, AuthBlock, auth_from_secrets, credentials
from factorysync.connectors.api.client import (
    Credentials,
    HttpOptions,
    HttpSession,
    Reply,
    origin_of,
)
from factorysync.connectors.api.config import (
    CURSOR,
    PLACEHOLDER,
    ApiConfig,
    cursor_text,
    placeholders,
)
from factorysync.connectors.api.pagination import PageRequest, first_page, next_page
from factorysync.connectors.api.safety import HostPolicy
from factorysync.connectors.api.secrets import Secrets, snippet
from factorysync.connectors.base import (
    Batch,
    Connector,
    ConnectorContext,
    FieldInfo,
    ReadRequest,
    SourceKind,
)
from factorysync.connectors.file import envelope_of
from factorysync.errors import ConnectorFatal, MappingError

_OMIT = object()


@dataclass
class _Call:
    """Everything one check or read sends: the session and the first page's request."""

    session: HttpSession
    credentials: Credentials
    method: str
    headers: dict[str, str]
    first: PageRequest

    def fetch(self, request: PageRequest) -> Reply:
        return self.session.request(
            self.method,
            request.url,
            params=request.params,
            headers=self.headers,
            json=request.body,
            auth=self.credentials,
        )


class ApiConnector(Connector):
    """A JSON REST API: ``check`` requests the first page, ``discover`` reads its records,
    ``read`` every page."""

    type_name = "api"
    config_model = ApiConfig
    source_types = (
        SourceKind(
            "api",
            "API",
            "API",
            "violet",
            summary="JSON records from an HTTP API (REST), with paging and authentication.",
        ),
    )
    auth_keys = ("token", "username", "password", "api_key", "client_id", "client_secret")
    config: ApiConfig

    def __init__(self, config: ApiConfig, auth: dict[str, Any], context: ConnectorContext):
        super().__init__(config, auth, context)
        self.secrets = Secrets(dict(auth))
        self._first_page_only = False

    # -- placeholders ----------------------------------------------------------------------
    def _fill(self, text: str, cursor: Any, where: str) -> Any:
        """``text`` with its placeholders filled; _OMIT when it needs a cursor there is none of.

        A text that is one placeholder only becomes that value as it is (a number stays a
        number in a JSON body).
        """
        names = placeholders(text)
        if CURSOR in names and cursor is None:
            return _OMIT
        values = {CURSOR: cursor_text(cursor, self.config.cursor_format)}
        for name in names - {CURSOR}:
            if name not in self.auth or isinstance(self.auth[name], dict | list):
                keys = ", ".join(sorted(k for k in self.auth if k != "type")) or "none"
                raise ConnectorFatal(
                    f"{where}: placeholder {{{{{name}}}}} is not a value of "
                    f"authentication_config (its keys: {keys})"
                )
            values[name] = self.auth[name]
        whole = PLACEHOLDER.fullmatch(text.strip())
        if whole is not None:
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)

    def _fill_json(self, value: Any, cursor: Any, where: str) -> Any:
        if isinstance(value, str):
            return self._fill(value, cursor, where)
        if isinstance(value, dict):
            filled = {k: self._fill_json(v, cursor, f"{where}.{k}") for k, v in value.items()}
            return {k: v for k, v in filled.items() if v is not _OMIT}
        if isinstance(value, list):
            items = [self._fill_json(v, cursor, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v in items if v is not _OMIT]
        return value

    def _value_of(self, block: AuthBlock, name: str) -> str:
        value = getattr(block, name)
        if value is None and name in block.secret_fields:
            value = self.auth.get(name)
        if value is None or value == "":
            kind = getattr(block, "type", "auth")
            raise ConnectorFatal(
                f"auth type {kind} needs {name}: set authentication_config.{name} "
                f"(or connection_config.auth.{name} to a {{{{placeholder}}}})"
            )
        filled = self._fill(str(value), None, f"auth.{name}")
        return str(filled)

    # -- one session -----------------------------------------------------------------------
    def _headers(self, cursor: Any) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, template in self.config.headers.items():
            value = self._fill(template, cursor, f"headers.{name}")
            if value is not _OMIT:
                headers[name] = str(value)
        return headers

    def _params(self, cursor: Any) -> tuple[dict[str, Any], set[str]]:
        """The query parameters, and the names of those that carry a secret."""
        params: dict[str, Any] = {}
        secret: set[str] = set()
        for name, given in self.config.params.items():
            values = [v for v in (given if isinstance(given, list) else [given]) if v is not None]
            filled = [
                self._fill(v, cursor, f"params.{name}") if isinstance(v, str) else v for v in values
            ]
            filled = [v for v in filled if v is not _OMIT]
            if filled:
                params[name] = filled if isinstance(given, list) else filled[0]
            if any(placeholders(v) - {CURSOR} for v in values if isinstance(v, str)):
                secret.add(name)
        return params, secret

    @contextmanager
    def _connect(self, cursor: Any) -> Iterator[_Call]:
        config = self.config
        url = str(self._fill(config.target(), None, "url"))
        params, secret_params = self._params(cursor)
        body = self._fill_json(config.body, cursor, "json")
        if body is _OMIT:
            body = None
        block = config.auth if config.auth is not None else auth_from_secrets(self.auth)
        if isinstance(block, ApiKeyAuth) and block.location == "query":
            secret_params.add(block.name)
        target = httpx.URL(url)
        options = HttpOptions(
            timeout=config.timeout,
            max_response_bytes=config.max_response_bytes,
            retries=config.retries,
            retry_max_wait_s=config.retry_max_wait_s,
            backoff_s=self.context.settings.retry_backoff_s,
            max_redirects=config.max_redirects,
            verify=config.verify,
            rate_limit=config.rate_limit,
            rate_limit_key=config.rate_limit_key or f"{target.scheme}://{target.netloc.decode()}",
        )
        policy = HostPolicy.parse(self.context.settings.api_allowed_hosts)
        with HttpSession(options, policy, self.secrets, secret_params) as session:
            creds = credentials(block, self._value_of, session)
            first = PageRequest(target, params, body)
            yield _Call(session, creds, config.method, self._headers(cursor), first)

    # -- pages -----------------------------------------------------------------------------
    def _document(self, call: _Call, reply: Reply) -> Any:
        if reply.status == 204:
            return None
        data = reply.body.removeprefix(codecs.BOM_UTF8)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            kind = reply.headers.get("content-type", "no Content-Type")
            raise call.session.fail(
                f"{call.session.label(call.method, reply.url)}: HTTP {reply.status} response "
                f"is not JSON ({kind}; {exc.msg} at byte {exc.pos}): "
                + snippet(reply.body, call.session.secrets)
            ) from None

    def _records(
        self, call: _Call, reply: Reply, document: Any, records_path: str | None
    ) -> list[Any]:
        if document is None:
            return []
        label = call.session.label(call.method, reply.url)
        paginated = self.config.pagination is not None
        if records_path is None and paginated and isinstance(document, dict):
            raise call.session.fail(
                f"{label}: the response is a JSON object; set records_path (in the "
                f"mapping_config or connection_config) to the list of records in it: "
                f"{snippet(reply.body, call.session.secrets)}"
            )
        try:
            return list(records_at(document, records_path))
        except MappingError as exc:
            raise call.session.fail(
                f"{label}: {exc}: {snippet(reply.body, call.session.secrets)}"
            ) from None

    def _pages(
        self, call: _Call, records_path: str | None
    ) -> Iterator[tuple[int, Reply, Any, list[Any]]]:
        """(page number, reply, document, records) of each page, in order."""
        paging = self.config.pagination
        request = first_page(paging, call.first)
        origin = origin_of(call.first.url)
        seen: set[bytes] = set()
        number = 0
        while True:
            number += 1
            key = hashlib.sha256(
                str(request.url.copy_merge_params(request.params)).encode()
                + orjson.dumps(request.body, option=orjson.OPT_SORT_KEYS, default=str)
            ).digest()
            if key in seen:
                assert paging is not None
                raise call.session.fail(
                    f"{call.session.label(call.method, request.url)}: page {number} would "
                    f"request a page read before: the {paging.type} pagination goes round in "
                    "a circle"
                )
            seen.add(key)
            reply = call.fetch(request)
            document = self._document(call, reply)
            records = self._records(call, reply, document, records_path)
            yield number, reply, document, records
            if self._first_page_only:
                return
            following = next_page(paging, request, reply, document, len(records))
            if following is None:
                return
            assert paging is not None
            if number >= paging.max_pages:
                raise call.session.fail(
                    f"{call.session.label(call.method, reply.url)}: pagination did not end "
                    f"after {paging.max_pages} pages (pagination.max_pages)"
                )
            if origin_of(following.url) != origin:
                raise call.session.fail(
                    f"page {number + 1} is on another host "
                    f"({following.url.scheme}://{following.url.netloc.decode()}): refused, "
                    "the connection's credentials would go there"
                )
            request = following

    # -- the interface ---------------------------------------------------------------------
    def _check(self) -> str:
        with self._connect(None) as call:
            reply = call.fetch(first_page(self.config.pagination, call.first))
            document = self._document(call, reply)
            label = call.session.label(call.method, reply.url)
            if self.config.records_path is not None or isinstance(document, list):
                found = self._records(call, reply, document, self.config.records_path)
                what = f"{len(found)} record(s) on the first page"
            elif isinstance(document, dict):
                keys = list(document)
                what = "a JSON object (" + ", ".join(map(str, keys[:8]))
                what += ", …)" if len(keys) > 8 else ")"
            else:
                what = "no content" if document is None else type(document).__name__
        return f"HTTP {reply.status} from {label}: {what}, {len(reply.body):,} bytes"

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        """Fields of the first page's records."""
        self._first_page_only = True
        try:
            return super().discover(records_path=records_path, limit=limit)
        finally:
            self._first_page_only = False

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        records_path = request.records_path or self.config.records_path
        cursor = request.cursor_value if request.strategy == "incremental" else None
        size = self.context.batch_size
        envelope: dict[str, Any] | None = None
        with self._connect(cursor) as call:
            for number, reply, document, records in self._pages(call, records_path):
                if number == 1:
                    envelope = self._envelope(document, records_path)
                origin = f"{call.session.label(call.method, reply.url)} (page {number})"
                for start in range(0, len(records), size):
                    batch = Batch(records[start : start + size], origin=origin)
                    batch.envelope, envelope = envelope, None
                    yield batch

    def _envelope(self, document: Any, records_path: str | None) -> dict[str, Any]:
        if self.config.pagination is None:
            return envelope_of(document, records_path)
        # The rest of a page (its paging links, counts) says nothing about the records.
        if records_path is None:
            return {"shape": "list"}
        return {"shape": "wrapped", "records_key": records_path, "extra": {}}
