"""HTTP for API sources: a client per read with rate limits, retries, redirects and size
limits, and every failure mapped, here and only here, to what the engine should do:

    failure                                          error
    timeout; refused, reset or unresolvable host     RetriesSpent (a ConnectorRetriable), after
    HTTP 408, 429, 5xx                               ``retries`` more tries, each after
                                                     Retry-After or back-off
    HTTP 401 with OAuth2                             (a new token, then the request once more)
    any other HTTP 4xx, a 3xx without Location,      ConnectorFatal, at once
    too many redirects, TLS verification, an
    address refused by :mod:`.safety`, a body larger
    than ``max_response_bytes``

Messages name the method and the URL (values of secret query parameters masked), the
status, and the first bytes of the body, with every secret of the connection masked
(:mod:`.secrets`).

The tries follow the one retry policy (:mod:`factorysync.retry`): ``retries`` more tries
per request, and a request that gave up raises :class:`~factorysync.retry.RetriesSpent`,
which the runner does not try again, so a run asks a failing server ``1 + retries`` times.

Redirects are followed here, not by httpx, so that a redirect to another origin
(scheme, host, port) carries no credentials: no authentication, no configured headers,
no body.
"""

from __future__ import annotations

import functools
import logging
import re
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar

import httpcore
import httpx

from factorysync import __version__
from factorysync.connectors.api.safety import GuardedBackend, HostPolicy, RefusedAddress
from factorysync.connectors.api.secrets import Secrets, mask_url, snippet
from factorysync.errors import ConnectorError, ConnectorFatal, ConnectorRetriable
from factorysync.retry import RetriesSpent, RetryPolicy

log = logging.getLogger("factorysync.connectors.api")
RETRIABLE_STATUS = frozenset({408, 429, *range(500, 600)})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
ERROR_BODY_BYTES = 4096  # read of an error response, for its message


# -- rate limits ---------------------------------------------------------------------------
class RateLimiter:
    """Spaces requests evenly: each starts ``60 / rate`` seconds after the one before.

    One limiter per key is shared by every read in the process (not across processes):
    ``shared(key)``. Each caller passes its own rate, so readers with different limits
    on one key are each held to theirs.
    """

    _shared: ClassVar[dict[str, RateLimiter]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0.0

    @classmethod
    def shared(cls, key: str) -> RateLimiter:
        with cls._shared_lock:
            return cls._shared.setdefault(key, cls())

    def wait(self, per_minute: float) -> None:
        interval = 60.0 / per_minute
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + interval
        if start > now:
            time.sleep(start - now)


# -- requests ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HttpOptions:
    timeout: float = 30.0
    max_response_bytes: int = 50 * 1024 * 1024
    retries: int = 3
    retry_max_wait_s: float = 60.0
    backoff_s: float = 1.0
    max_redirects: int = 5
    verify: bool | str = True
    rate_limit: float | None = None  # requests per minute
    rate_limit_key: str = ""

    @property
    def policy(self) -> RetryPolicy:
        """Each request's retry policy: ``retries`` more tries, back-off from ``backoff_s``
        up to ``retry_max_wait_s``."""
        return RetryPolicy(
            attempts=self.retries + 1,
            backoff_s=self.backoff_s,
            max_delay_s=self.retry_max_wait_s,
            transient=(_Transient, ConnectorRetriable),
        )


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL
    links: dict[str, str] = field(default_factory=dict)  # Link header: rel -> URL


class Credentials:
    """Puts a connection's credentials on a request (this base class: none)."""

    def apply(self, headers: dict[str, str], url: httpx.URL) -> httpx.URL:
        return url

    def renew(self) -> bool:
        """Get new credentials after a 401; True when repeating the request may help."""
        return False


class _Transient(Exception):
    """A failure that another try may not repeat (becomes ConnectorRetriable)."""


def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """Verification against certifi's and the system's CAs, a given bundle, or none."""
    if isinstance(verify, bool):
        return _standard_context(verify)
    path = Path(verify).expanduser()
    if not path.exists():
        raise ConnectorFatal(f"verify: CA bundle {verify!r} not found")
    try:
        if path.is_dir():
            return ssl.create_default_context(capath=str(path))
        return ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        raise ConnectorFatal(f"verify: {verify!r} is not a PEM CA bundle: {exc}") from None


@functools.cache
def _standard_context(verify: bool) -> ssl.SSLContext:
    # Loading the CA certificates takes tens of milliseconds: once per process. (Contexts
    # are safe to share between threads.)
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    import certifi

    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.load_default_certs()
    return ctx


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool whose network layer is GuardedBackend."""

    def __init__(self, context: ssl.SSLContext, policy: HostPolicy) -> None:
        super().__init__(verify=context, trust_env=False)
        # httpx offers no way to pass a network backend: replace its pool (unused so far)
        # by the same pool on the guarded backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=4,
            max_keepalive_connections=4,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(policy),
        )


def check_url(text: str, what: str) -> str:
    """``text`` if it is an absolute http(s) URL without credentials (``{{x}}`` allowed)."""
    probe = re.sub(r"\{\{[^}]*\}\}", "x", text)
    try:
        url = httpx.URL(probe)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{what} {text!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{what} {text!r} is not an http:// or https:// URL")
    if url.userinfo:
        raise ValueError(
            f"{what}: credentials in the URL are not allowed; put them in authentication_config"
        )
    return text


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asks to wait (``Retry-After``: seconds or an HTTP date)."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class HttpSession:
    """One client for one check or read of an API connection. Use as a context manager."""

    def __init__(
        self,
        options: HttpOptions,
        policy: HostPolicy,
        secrets: Secrets,
        secret_params: Iterable[str] = (),
    ) -> None:
        self.options = options
        self.secrets = secrets
        self.secret_params = frozenset(secret_params)
        self.limiter = RateLimiter.shared(options.rate_limit_key) if options.rate_limit else None
        self.client = httpx.Client(
            transport=_GuardedTransport(ssl_context(options.verify), policy),
            timeout=options.timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": f"factorysync/{__version__}", "Accept": "application/json"},
        )
        secrets.opened()

    def close(self) -> None:
        self.client.close()
        self.secrets.closed()

    def __enter__(self) -> HttpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def label(self, method: str, url: httpx.URL) -> str:
        return self.secrets(f"{method} {mask_url(url, self.secret_params)}")

    def fail(self, message: str, kind: type[ConnectorError] = ConnectorFatal) -> ConnectorError:
        return kind(self.secrets(message))

    # -- one request, with retries -----------------------------------------------------
    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        form: dict[str, str] | None = None,
        auth: Credentials | None = None,
        limited: bool = True,
    ) -> Reply:
        """Send a request (following redirects); a 2xx reply or a ConnectorError."""
        target = httpx.URL(url)
        if params:
            target = target.copy_merge_params(params)
        policy = self.options.policy
        attempt, renewed = 0, False
        while True:
            try:
                reply = self._exchange(method, target, headers or {}, json, form, auth, limited)
            except _Transient as exc:
                failure, wait = str(exc), None
            else:
                if reply.status < 300:
                    return reply
                if reply.status == 401 and auth is not None and not renewed and auth.renew():
                    renewed = True
                    continue
                failure = self._status_message(method, reply)
                if reply.status not in RETRIABLE_STATUS:
                    raise self.fail(failure)
                wait = retry_after(reply.headers)
            attempt += 1
            if policy.gives_up(attempt):
                raise self.fail(f"{failure} (gave up after {attempt} attempts)", RetriesSpent)
            if wait is None:
                wait = policy.delay(attempt)
            elif wait > policy.max_delay_s:
                raise self.fail(
                    f"{failure}; the server asks to retry after {wait:.0f} s, more than "
                    f"retry_max_wait_s ({self.options.retry_max_wait_s:g} s)",
                    RetriesSpent,
                )
            log.warning(
                "%s; attempt %d of %d in %.1f s",
                self.secrets(failure),
                attempt + 1,
                policy.attempts,
                wait,
            )
            time.sleep(wait)

    def _status_message(self, method: str, reply: Reply) -> str:
        try:
            reason = HTTPStatus(reply.status).phrase
        except ValueError:
            reason = ""
        return (
            f"{self.label(method, reply.url)}: HTTP {reply.status} {reason}".rstrip()
            + f": {snippet(reply.body, self.secrets)}"
        )

    # -- one exchange, following redirects --------------------------------------------
    def _exchange(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        json: Any,
        form: dict[str, str] | None,
        auth: Credentials | None,
        limited: bool,
    ) -> Reply:
        origin = origin_of(url)
        credentials = True
        for _hop in range(self.options.max_redirects + 1):
            label = self.label(method, url)
            sent_headers = dict(headers) if credentials else {}
            target = auth.apply(sent_headers, url) if auth is not None and credentials else url
            if limited and self.limiter is not None and self.options.rate_limit:
                self.limiter.wait(self.options.rate_limit)
            try:
                request = self.client.build_request(
                    method, target, headers=sent_headers, json=json, data=form
                )
                response = self.client.send(request, stream=True)
                try:
                    location = response.headers.get("location")
                    if response.status_code not in REDIRECT_STATUS or not location:
                        return self._reply(response, url, label)
                finally:
                    response.close()
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, label) from None
            except httpx.InvalidURL as exc:
                raise self.fail(f"{label}: invalid URL: {exc}") from None
            except RefusedAddress as exc:
                raise self.fail(f"{label}: {exc}", RefusedAddress) from None
            following = url.join(location)
            if following.scheme not in ("http", "https"):
                raise self.fail(f"{label}: redirect to a {following.scheme!r} URL refused")
            if origin_of(following) != origin:
                credentials = False
            status = response.status_code
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, json, form = "GET", None, None
            elif not credentials and (json is not None or form is not None):
                raise self.fail(
                    f"{label}: HTTP {status} redirect to another host refused: the request "
                    "body would go with it"
                )
            url = following
        raise self.fail(f"{label}: more than {self.options.max_redirects} redirects")

    def _reply(self, response: httpx.Response, url: httpx.URL, label: str) -> Reply:
        status = response.status_code
        if status >= 300:
            limit, strict = ERROR_BODY_BYTES, False
        else:
            limit, strict = self.options.max_response_bytes, True
        declared = response.headers.get("content-length", "")
        if strict and declared.isdigit() and int(declared) > limit:
            raise self.fail(self._too_large(label, int(declared)))
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if strict:
                    raise self.fail(self._too_large(label, None))
                break
        links = {
            str(rel): str(link["url"])
            for rel, link in response.links.items()
            if rel is not None and link.get("url")
        }
        return Reply(status, response.headers, b"".join(chunks), url, links)

    def _too_large(self, label: str, declared: int | None) -> str:
        size = f"{declared:,} bytes" if declared is not None else "the response"
        return (
            f"{label}: {size} exceeds max_response_bytes ({self.options.max_response_bytes:,}); "
            "raise it or ask for smaller pages"
        )

    def _transport_error(self, exc: httpx.HTTPError, label: str) -> Exception:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return _Transient(f"{label}: no answer within {self.options.timeout:g} s (timeout)")
        tls = _tls_failure(exc)
        if tls is not None:
            detail = getattr(tls, "verify_message", None) or tls.reason or str(tls)
            return self.fail(
                f"{label}: TLS failed: {detail}; if the server's certificate is signed by a "
                "private CA, set verify to that CA's bundle file"
            )
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            return _Transient(f"{label}: connection failed: {reason}")
        return self.fail(f"{label}: {reason}")


def origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port: what a redirect or next page must keep to get credentials."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default
