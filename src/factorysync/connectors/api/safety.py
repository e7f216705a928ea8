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

An IPv6 address that carries an IPv4 address is judged as that IPv4 address, by both
rules (:func:`embedded`): IPv4-mapped ``::ffff:0:0/96``, IPv4-translated
``::ffff:0:0:0/96``, IPv4-compatible ``::/96``, NAT64 ``64:ff9b::/96`` and
``64:ff9b:1::/48``, 6to4 ``2002::/16`` and Teredo ``2001::/32``. A packet to such an
address is delivered to, or relayed through, the IPv4 address, so ``64:ff9b::a9fe:a9fe``
reaches the metadata service wherever a NAT64 gateway runs, and ``::ffff:127.0.0.1`` is
allowed by ``127.0.0.1`` in the allow-list. The IPv6 address itself may be listed too, but
an embedded refused address is only allowed when the IPv4 address is listed.

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


_LAST_32 = 0xFFFFFFFF
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291, deprecated
# NAT64 prefixes (RFC 6052, RFC 8215), read in the /96 layout (the IPv4 address in the
# last 32 bits) that DNS64 and NAT64 gateways use by default. In the /48 and /56 layouts
# the last 32 bits are zero, so such addresses read as 0.0.0.0 and are refused.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded(address: IPAddress) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses that an IPv6 address carries, each with the name of its form.

    Empty for an IPv4 address and for a plain IPv6 one. ``::`` and ``::1`` are not
    IPv4-compatible addresses but "this host" and the loopback address.
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    last = ipaddress.IPv4Address(int(address) & _LAST_32)
    if address.ipv4_mapped is not None:
        return [("IPv4-mapped IPv6", address.ipv4_mapped)]
    if address in _TRANSLATED:
        return [("IPv4-translated IPv6", last)]
    if address in _COMPATIBLE and int(address) > 1:
        return [("IPv4-compatible IPv6", last)]
    if any(address in prefix for prefix in _NAT64):
        return [("NAT64", last)]
    if address.sixtofour is not None:
        return [("6to4", address.sixtofour)]
    if address.teredo is not None:
        server, client = address.teredo
        return [("Teredo server", server), ("Teredo client", client)]
    return []


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
        refused: list[tuple[IPAddress, str, str]] = []  # address, what it carries, why
        named = self.name_allowed(host)
        for address in addresses:
            carried = embedded(address)
            blocked = [
                (form, ip)
                for form, ip in [("", address), *carried]
                if _in(ip, BLOCKED_NETWORKS) and not _in(ip, self.networks)
            ]
            listed = _in(address, self.networks) or bool(
                carried and all(_in(ip, self.networks) for _, ip in carried)
            )
            if blocked:
                form, ip = blocked[0]
                refused.append(
                    (
                        address,
                        f"{ip} via {form}" if form else "",
                        "a link-local, cloud-metadata or reserved address "
                        f"(list {ip} in FACTORYSYNC_API_ALLOWED_HOSTS to allow it)",
                    )
                )
            elif self.restricted and not (named or listed):
                via = ", ".join(f"{ip} via {form}" for form, ip in carried)
                refused.append((address, via, "not in FACTORYSYNC_API_ALLOWED_HOSTS"))
            else:
                allowed.append(address)
        if not allowed:
            if not refused:
                raise RefusedAddress(f"host {host!r} has no address")
            address, via, why = refused[0]
            raise RefusedAddress(f"refused to connect to {_shown(host, address, via)}: {why}")
        return allowed


def _shown(host: str, address: IPAddress, via: str) -> str:
    """``host`` for a message: with the address it resolved to and what that carries."""
    try:
        literal = ipaddress.ip_address(host.strip("[]")) == address
    except ValueError:
        literal = False
    if literal:
        return f"{address} ({via})" if via else str(address)
    return f"{host} ({address}, {via})" if via else f"{host} ({address})"


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
