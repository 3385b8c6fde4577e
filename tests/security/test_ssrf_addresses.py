"""The SSRF address list, the tunnels included (issue 9, "Tests").

Teredo (2001::/32) reaches an IPv4 host through a relay, site-local (fec0::/10) is still routed
inside some networks, and the local-use NAT64 prefix (64:ff9b:1::/48) is a network's own
translator, where only that network knows at which bits the IPv4 address sits: all three are
refused whatever they carry, and where an IPv4 address can be read out of them it is read right.
"""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from app.notifications.addresses import AddressPolicy, AddressRefused, Resolver, embedded_ipv4

STRICT = AddressPolicy()


def refused(address: str, policy: AddressPolicy = STRICT) -> bool:
    return policy.refused(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        # Teredo: server 65.54.227.120, client 192.0.2.45 (RFC 4380's example), and one whose
        # client is a public address: the tunnel is refused, not only what it leads to.
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        "2001::1",
        "fec0::1",
        "fec0:0:0:ffff::1",
        "feff:ffff::1",
        "64:ff9b:1::8.8.8.8",
        "64:ff9b:1:a9fe:a9:fe00::",  # 169.254.169.254 as a /48 prefix would place it
        "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
    ],
)
def test_teredo_site_local_and_local_use_nat64_are_refused(address: str) -> None:
    assert refused(address)


@pytest.mark.parametrize(
    ("address", "client"),
    [
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
        # Teredo keeps the client's address with every bit flipped.
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:5601:5601", "169.254.169.254"),
    ],
)
def test_teredo_is_decoded_to_its_clients_address(address: str, client: str) -> None:
    assert embedded_ipv4(ipaddress.ip_address(address)) == ipaddress.ip_address(client)
    assert refused(address)


def test_local_use_nat64_is_not_decoded_as_if_it_were_the_well_known_prefix() -> None:
    # The well-known prefix keeps the IPv4 address in the last 32 bits; the local-use prefix may
    # not, so its last 32 bits mean nothing on their own.
    assert embedded_ipv4(ipaddress.ip_address("64:ff9b::8.8.8.8")) == ipaddress.ip_address(
        "8.8.8.8"
    )
    assert embedded_ipv4(ipaddress.ip_address("64:ff9b:1::8.8.8.8")) is None
    assert not refused("64:ff9b::8.8.8.8")


@pytest.mark.parametrize(
    "address", ["2001:4860:4860::8888", "2001:db9::1", "2002:808:808::", "64:ff9b::1"]
)
def test_public_neighbours_of_the_refused_ranges_are_allowed(address: str) -> None:
    # 2001:4860:: (Google) and 2001:db9:: sit beside Teredo and the documentation prefix;
    # 64:ff9b::1 is 0.0.0.1 in the well-known prefix, and is refused for what it carries.
    assert refused(address) == (address == "64:ff9b::1")


def test_the_allowlist_can_lift_the_tunnel_ranges_on_purpose() -> None:
    lab = AddressPolicy.from_settings(False, "2001::/32, fec0::/10")
    assert not refused("2001:0:4136:e378:8000:63bf:3fff:fdd2", lab)
    assert not refused("fec0::1", lab)
    assert refused("64:ff9b:1::8.8.8.8", lab)


@pytest.mark.parametrize(
    "url",
    [
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hooks",
        "https://[fec0::1]/hooks",
        "https://[64:ff9b:1::808:808]/hooks",
    ],
)
async def test_the_resolver_refuses_them_as_literals(url: str) -> None:
    with pytest.raises(AddressRefused, match="may not reach"):
        await Resolver(STRICT).checked_address(url)


async def test_registering_such_an_endpoint_is_a_422_naming_the_url(
    admin: httpx.AsyncClient,
) -> None:
    response = await admin.post(
        "/v1/webhooks/endpoints",
        json={
            "url": "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hooks",
            "event_types": ["case.opened"],
        },
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["url"]
