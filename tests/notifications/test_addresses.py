"""The SSRF guard on its own: which addresses and URLs webhooks may reach (SPEC §5).

No database and no network: addresses are IP literals, and this machine has no DNS, so a name
that is not a numeric form of an address does not resolve.
"""

from __future__ import annotations

import ipaddress

import pytest

from app.notifications.addresses import (
    MAX_URL_LENGTH,
    AddressPolicy,
    AddressRefused,
    Resolver,
    embedded_ipv4,
)

STRICT = AddressPolicy()
LOOPBACK_ALLOWED = AddressPolicy.from_settings(True, "127.0.0.0/8")


def refused_by(policy: AddressPolicy, address: str) -> bool:
    return policy.refused(ipaddress.ip_address(address))


async def checked(policy: AddressPolicy, url: str) -> tuple[str, str, int, str]:
    scheme, host, port, address = await Resolver(policy).checked_address(url)
    return scheme, host, port, str(address)


async def refusal(policy: AddressPolicy, url: str) -> str:
    """Why the resolver refuses this URL (fails the test when it does not)."""
    with pytest.raises(AddressRefused) as refused:
        await Resolver(policy).checked_address(url)
    return str(refused.value)


# -- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.5",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.1.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
    ],
)
def test_private_loopback_link_local_and_special_addresses_are_refused(address: str) -> None:
    assert refused_by(STRICT, address)


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:169.254.169.254", "169.254.169.254"),
        ("::ffff:10.0.0.5", "10.0.0.5"),
        ("2002:7f00:1::", "127.0.0.1"),
        ("2002:a9fe:a9fe::", "169.254.169.254"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ],
    ids=[
        "mapped-loopback",
        "mapped-metadata",
        "mapped-private",
        "6to4-loopback",
        "6to4-metadata",
        "nat64-loopback",
        "nat64-metadata",
    ],
)
def test_a_refused_ipv4_address_hidden_in_ipv6_is_refused(address: str, inner: str) -> None:
    assert embedded_ipv4(ipaddress.ip_address(address)) == ipaddress.ip_address(inner)
    assert refused_by(STRICT, address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed_whatever_their_form(address: str) -> None:
    assert not refused_by(STRICT, address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "fe80::1", "::1"])
def test_an_address_that_carries_no_ipv4_has_none_embedded(address: str) -> None:
    assert embedded_ipv4(ipaddress.ip_address(address)) is None


# -- the allowlist ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.1.2.3", "::ffff:127.0.0.1", "64:ff9b::7f00:1"]
)
def test_the_allowlist_lets_its_ranges_through_in_any_form(address: str) -> None:
    assert refused_by(STRICT, address)
    assert not refused_by(LOOPBACK_ALLOWED, address)


@pytest.mark.parametrize(
    "address", ["10.0.0.5", "169.254.169.254", "::1", "::ffff:10.0.0.5", "fd00:ec2::254"]
)
def test_the_allowlist_lifts_the_block_for_its_ranges_only(address: str) -> None:
    assert refused_by(LOOPBACK_ALLOWED, address)


def test_the_allowlist_takes_several_networks_and_spaces() -> None:
    policy = AddressPolicy.from_settings(False, " 10.0.0.0/8 , fd00::/8,, ")
    assert not refused_by(policy, "10.1.2.3")
    assert not refused_by(policy, "fd00:ec2::254")
    assert refused_by(policy, "192.168.1.1")
    assert not policy.allow_http


def test_an_empty_allowlist_allows_nothing_more() -> None:
    assert AddressPolicy.from_settings(False, "") == STRICT


# -- URLs ---------------------------------------------------------------------------------------


def test_an_https_url_answers_its_scheme_host_and_port() -> None:
    assert STRICT.check_url("https://hooks.example.com/in") == ("https", "hooks.example.com", 443)
    assert STRICT.check_url("https://hooks.example.com:8443/in") == (
        "https",
        "hooks.example.com",
        8443,
    )
    assert LOOPBACK_ALLOWED.check_url("http://hooks.example.com/in") == (
        "http",
        "hooks.example.com",
        80,
    )


def test_http_is_refused_unless_allowed() -> None:
    with pytest.raises(AddressRefused, match="https is required"):
        STRICT.check_url("http://hooks.example.com/in")
    assert AddressPolicy(allow_http=True).check_url("http://hooks.example.com/in")[0] == "http"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/in",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://hooks.example.com/",
        "not a url",
        "",
        "https://",
        "https:///in",
        "https://:443/in",
        "//hooks.example.com/in",
    ],
)
def test_other_schemes_and_urls_without_a_host_are_refused(url: str) -> None:
    with pytest.raises(AddressRefused, match="not an http\\(s\\) URL with a host"):
        LOOPBACK_ALLOWED.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://user@hooks.example.com/in",
        "https://user:secret@hooks.example.com/in",
        "https://:secret@hooks.example.com/in",
    ],
)
def test_credentials_in_the_url_are_refused(url: str) -> None:
    with pytest.raises(AddressRefused, match="credentials"):
        STRICT.check_url(url)


@pytest.mark.parametrize("port", ["65536", "99999", "-1", "abc", "443x"])
def test_a_port_that_is_not_a_port_is_refused(port: str) -> None:
    with pytest.raises(AddressRefused, match="port is not valid"):
        STRICT.check_url(f"https://hooks.example.com:{port}/in")


def test_port_zero_is_refused() -> None:
    with pytest.raises(AddressRefused, match="port"):
        STRICT.check_url("https://hooks.example.com:0/in")


def test_a_url_of_2000_characters_is_fine_and_one_more_is_not() -> None:
    base = "https://hooks.example.com/"
    longest = base + "a" * (MAX_URL_LENGTH - len(base))
    assert STRICT.check_url(longest)[1] == "hooks.example.com"
    with pytest.raises(AddressRefused, match="at most 2000 characters"):
        STRICT.check_url(longest + "a")


# -- resolving and checking ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://93.184.216.34/in", "93.184.216.34"),
        ("https://[2606:4700::1111]:8443/in", "2606:4700::1111"),
        ("https://[::ffff:8.8.8.8]/in", "::ffff:808:808"),
        ("https://[64:ff9b::808:808]/in", "64:ff9b::808:808"),
    ],
)
async def test_a_public_ip_literal_is_checked_without_dns(url: str, address: str) -> None:
    assert (await checked(STRICT, url))[3] == address


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/in",
        "https://10.0.0.5/in",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/in",
        "https://[::ffff:127.0.0.1]/in",
        "https://[64:ff9b::a9fe:a9fe]/in",
        "https://[2002:a9fe:a9fe::]/in",
        "https://[fd00:ec2::254]/in",
        "https://[fe80::1%25eth0]/in",
    ],
)
async def test_a_refused_ip_literal_is_refused_without_dns(url: str) -> None:
    assert "an address webhooks may not reach" in await refusal(STRICT, url)


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1", "0177.0.0.1"])
async def test_other_spellings_of_loopback_are_refused_by_what_they_resolve_to(host: str) -> None:
    assert "(127.0.0.1)" in await refusal(STRICT, f"https://{host}/in")


async def test_localhost_is_refused_by_what_it_resolves_to() -> None:
    assert "localhost resolves to an address webhooks may not reach" in await refusal(
        STRICT, "https://localhost/in"
    )


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    assert "does not resolve" in await refusal(STRICT, "https://hooks.example.invalid/in")


async def test_the_allowlist_lets_loopback_through_the_resolver() -> None:
    assert await checked(LOOPBACK_ALLOWED, "http://127.0.0.1:8080/in") == (
        "http",
        "127.0.0.1",
        8080,
        "127.0.0.1",
    )
    assert "may not reach" in await refusal(LOOPBACK_ALLOWED, "http://10.0.0.5/in")


async def test_the_form_of_the_url_is_checked_before_its_address() -> None:
    assert "https is required" in await refusal(STRICT, "http://93.184.216.34/in")
    assert "credentials" in await refusal(STRICT, "https://a:b@93.184.216.34/in")
