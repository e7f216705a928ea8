"""Outbound rules for IPv6 addresses that carry an IPv4 address (IPv4-mapped, -translated
and -compatible, NAT64, 6to4, Teredo): judged as the IPv4 address they carry, whether
written in the URL or answered by DNS, by the refused ranges and by the allow-list."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

import pytest

from factorysync.connectors.api import safety as http_safety
from factorysync.connectors.api.safety import HostPolicy, RefusedAddress, embedded
from tests.connectors.http_server import HttpServer, Reply, api_connector, read_all

ip = ipaddress.ip_address
METADATA = ip("169.254.169.254")
ROWS = [{"id": i} for i in range(3)]

# Every form, carrying 169.254.169.254. The Teredo client address is the last 32 bits
# inverted: ~0xa9fea9fe = 0x56015601.
FORMS = [
    ("::ffff:169.254.169.254", "IPv4-mapped IPv6"),
    ("::ffff:0:a9fe:a9fe", "IPv4-translated IPv6"),
    ("::a9fe:a9fe", "IPv4-compatible IPv6"),
    ("64:ff9b::a9fe:a9fe", "NAT64"),
    ("64:ff9b:1::a9fe:a9fe", "NAT64"),
    ("2002:a9fe:a9fe::1", "6to4"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "Teredo client"),
]


@pytest.mark.parametrize(("literal", "form"), FORMS)
def test_embedded_metadata_address_in_the_url_is_refused(literal: str, form: str) -> None:
    address = ip(literal)
    with pytest.raises(RefusedAddress) as refused:
        api_connector({"url": f"http://[{literal}]/latest/meta-data/", "retries": 0}).check()
    assert re.search(
        rf"refused to connect to {re.escape(str(address))} \(169\.254\.169\.254 via {form}\): "
        r"a link-local, cloud-metadata or reserved address \(list 169\.254\.169\.254 in "
        r"FACTORYSYNC_API_ALLOWED_HOSTS to allow it\)",
        str(refused.value),
    ), str(refused.value)


@pytest.mark.parametrize(("literal", "form"), FORMS)
def test_embedded_metadata_address_from_dns_is_refused(
    literal: str, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = ip(literal)
    monkeypatch.setattr(http_safety, "resolve", lambda host, port: [address])
    with pytest.raises(RefusedAddress) as refused:
        api_connector({"url": "http://mes.plant.example/x", "retries": 0}).check()
    assert (
        f"refused to connect to mes.plant.example ({address}, 169.254.169.254 via {form})"
        in str(refused.value)
    )


@pytest.mark.parametrize(("literal", "form"), FORMS)
def test_each_form_is_read_as_its_ipv4_address(literal: str, form: str) -> None:
    assert (form, METADATA) in embedded(ip(literal))


def test_plain_addresses_carry_nothing() -> None:
    for plain in ("169.254.169.254", "::1", "::", "2001:db8::1", "fe80::1", "fd00:ec2::254"):
        assert embedded(ip(plain)) == []
    # The loopback address is not the IPv4-compatible form of 0.0.0.1: it stays allowed.
    assert HostPolicy().permitted("::1", [ip("::1")]) == [ip("::1")]


def test_a_teredo_server_in_a_refused_range_is_refused() -> None:
    # server 169.254.169.254 (bits 32-63), client 192.0.2.1 (~0xc0000201 = 0x3ffffdfe)
    teredo = ip("2001:0:a9fe:a9fe::3fff:fdfe")
    assert embedded(teredo) == [("Teredo server", METADATA), ("Teredo client", ip("192.0.2.1"))]
    with pytest.raises(RefusedAddress, match=r"169\.254\.169\.254 via Teredo server"):
        HostPolicy().permitted("relay", [teredo])


def test_the_allow_list_is_matched_with_the_carried_address() -> None:
    nat64 = ip("64:ff9b::a9fe:a9fe")
    # Listing the IPv4 address allows it in any form, as it allows it plainly.
    assert HostPolicy.parse("169.254.169.254").permitted("meta", [nat64]) == [nat64]
    # Listing the NAT64 prefix allows what it carries, but not a refused address.
    through_gateway = HostPolicy.parse("64:ff9b::/96")
    office = ip("64:ff9b::c000:207")  # 192.0.2.7
    assert through_gateway.permitted("office", [office]) == [office]
    with pytest.raises(RefusedAddress, match=r"list 169\.254\.169\.254 in"):
        through_gateway.permitted("meta", [nat64])
    # An IPv4 network covers the embedded forms of its addresses, and only those.
    plant = HostPolicy.parse("10.20.0.0/16")
    assert plant.permitted("mes", [ip("2002:a14:305::1")]) == [ip("2002:a14:305::1")]
    with pytest.raises(
        RefusedAddress,
        match=r"refused to connect to mes \(64:ff9b::c000:207, 192\.0\.2\.7 via NAT64\): "
        r"not in FACTORYSYNC_API_ALLOWED_HOSTS",
    ):
        plant.permitted("mes", [office])


def test_allowed_loopback_server_is_reached_plainly_and_ipv4_mapped(
    serve: Callable[..., HttpServer],
) -> None:
    server = serve(lambda req: Reply(200, {"data": ROWS}))
    only_loopback = {"api_allowed_hosts": "127.0.0.1"}
    plain = api_connector({"url": f"{server.url}/x"}, **only_loopback)
    assert read_all(plain, records_path="data") == ROWS
    mapped = api_connector({"url": f"http://[::ffff:127.0.0.1]:{server.port}/y"}, **only_loopback)
    assert read_all(mapped, records_path="data") == ROWS
    assert [r.path for r in server.requests] == ["/x", "/y"]
    # The same mapped address, with the allow-list naming another network, is refused.
    elsewhere = api_connector(
        {"url": f"http://[::ffff:127.0.0.1]:{server.port}/z", "retries": 0},
        api_allowed_hosts="10.0.0.0/8",
    )
    with pytest.raises(
        RefusedAddress,
        match=r"refused to connect to ::ffff:7f00:1 \(127\.0\.0\.1 via IPv4-mapped IPv6\): "
        r"not in FACTORYSYNC_API_ALLOWED_HOSTS",
    ):
        elsewhere.check()
    assert len(server.requests) == 2
