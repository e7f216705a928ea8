"""Where API sources may connect.

Two rules, both applied to the *addresses* a host name resolves to:

* link-local and cloud-metadata addresses (``169.254.0.0/16`` with the
  ``169.254.169.254`` metadata service of AWS, GCP, Azure and OpenStack, ``fe80::/10``,
  AWS's ``fd00:ec2::254``, Alibaba's ``100.100.100.200``), "this host" (``0.0.0.0/8``,
  ``::``) and multicast are refused, unless an IP address or network listed in
  ``FACTORYSYNC_API_ALLOWED_HOSTS`` covers them (a host *name* there is not enough: its
  DNS answer could point anywhere);
* when ``FACTORYSYNC_API_ALLOWED_HOSTS`` is set, only the hosts it lists may be used:
  host names (``mes.plant.local``), subdomain wildcards (``*.plant.local``), IP
  addresses and networks (``10.20.0.0/16``, checked against the resolved addresses).

The check runs in the HTTP client's network layer (:class:`GuardedBackend`), right
before each TCP connection, so it covers the first request, every redirect, every
next-page URL and the OAuth2 token endpoint; and the connection goes to the address that
was checked, so a second DNS answer cannot slip past it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore

from factorysync.errors import ConnectorFatal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local, cloud metadata services
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS instance metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",  # "this host"
        "::/128",
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "255.255.255.255/32",
    )
)
_NAME = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")


class RefusedAddress(ConnectorFatal):
    """A connection to a host or address that the outbound rules do not allow."""


def _plain(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 addresses (``::ffff:169.254.169.254``) as the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


@dataclass(frozen=True)
class HostPolicy:
    """The parsed ``FACTORYSYNC_API_ALLOWED_HOSTS`` (empty: every host but the blocked)."""

    names: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> HostPolicy:
        names: list[str] = []
        networks: list[IPNetwork] = []
        bad: list[str] = []
        for entry in re.split(r"[,\s]+", text.strip()):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if _NAME.match(name):
                names.append(name)
            else:
                bad.append(entry)
        if bad:
            raise ConnectorFatal(
                f"FACTORYSYNC_API_ALLOWED_HOSTS: {', '.join(map(repr, bad))} is not a host name, "
                "'*.domain', IP address or network"
            )
        return cls(tuple(names), tuple(networks))

    @property
    def restricted(self) -> bool:
        return bool(self.names or self.networks)

    def name_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for name in self.names:
            if name.startswith("*."):
                if host.endswith(name[1:]):
                    return True
            elif host == name:
                return True
        return False

    def permitted(self, host: str, addresses: list[IPAddress]) -> list[IPAddress]:
        """The addresses of ``host`` that a connection may use; raises when there is none."""
        allowed: list[IPAddress] = []
        refused: list[tuple[IPAddress, str]] = []
        named = self.name_allowed(host)
        for address in addresses:
            plain = _plain(address)
            listed = _in(plain, self.networks)
            if _in(plain, BLOCKED_NETWORKS) and not listed:
                refused.append(
                    (
                        plain,
                        "a link-local, cloud-metadata or reserved address "
                        "(list it in FACTORYSYNC_API_ALLOWED_HOSTS to allow it)",
                    )
                )
            elif self.restricted and not (named or listed):
                refused.append((plain, "not in FACTORYSYNC_API_ALLOWED_HOSTS"))
            else:
                allowed.append(address)
        if not allowed:
            if not refused:
                raise RefusedAddress(f"host {host!r} has no address")
            address, why = refused[0]
            shown = str(address) if str(address) == host.strip("[]") else f"{host} ({address})"
            raise RefusedAddress(f"refused to connect to {shown}: {why}")
        return allowed


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host``, in the resolver's order, without repeats."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise httpcore.ConnectError(f"cannot resolve host {host!r}: {reason}") from None
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]))
        if address not in found:
            found.append(address)
    return found


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network layer, connecting only to addresses that ``policy`` permits."""

    def __init__(self, policy: HostPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.policy.permitted(host, resolve(host, port))
        failure: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise RefusedAddress("API sources do not connect to Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
