"""Server-side request forgery guard: which addresses a webhook may be sent to.

https only (unless allowed otherwise), and never to a private, loopback, link-local, CGNAT,
multicast, unspecified, reserved or cloud-metadata address, nor to one of those hidden in an
IPv4-mapped, 6to4 or NAT64 IPv6 address. Names are resolved and every address they resolve to
is checked, at registration and again before each delivery; the delivery then connects to the
address that was checked, so a name that changes its answer in between (DNS rebinding) gains
nothing. Networks listed in FEEDBACK_WEBHOOK_ALLOWED_NETWORKS are let through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_BLOCKED: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # this network, unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, and cloud metadata at 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/96",  # IPv4-compatible (deprecated), including :: and ::1
        "::ffff:0:0:0/96",  # IPv4-translated
        "fc00::/7",  # unique local, including AWS metadata at fd00:ec2::254
        "fe80::/10",
        "ff00::/8",
        "100::/64",
        "2001:db8::/32",
        # A tunnel to an IPv4 address through a relay: whatever it carries, not a webhook's host.
        "2001::/32",  # Teredo
        "fec0::/10",  # site-local (deprecated, still routed inside some networks)
        # Local-use NAT64 (RFC 8215): a network's own translator, whose prefix length (and so
        # where the IPv4 address sits) only that network knows.
        "64:ff9b:1::/48",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")
MAX_URL_LENGTH = 2000


class AddressRefused(ValueError):
    """The URL may not be used for webhooks; the message says why."""


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, well-known NAT64, Teredo's client),
    if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _6TO4:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    return None


@dataclass(frozen=True)
class AddressPolicy:
    allow_http: bool = False
    allowed: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, allow_http: bool, allowed_networks: str) -> AddressPolicy:
        networks = tuple(
            ipaddress.ip_network(n.strip(), strict=False)
            for n in allowed_networks.split(",")
            if n.strip()
        )
        return cls(allow_http=allow_http, allowed=networks)

    def refused(self, address: IPAddress) -> bool:
        if any(address in n for n in self.allowed if n.version == address.version):
            return False
        inner = embedded_ipv4(address)
        if inner is not None and self.refused(inner):
            return True
        # Checked even when the IPv4 address inside is fine: Teredo is refused whatever it carries.
        return any(address in n for n in _BLOCKED if n.version == address.version)

    def check_url(self, url: str) -> tuple[str, str, int]:
        """The URL's scheme, host and port, once its form is acceptable."""
        if len(url) > MAX_URL_LENGTH:
            raise AddressRefused(f"a URL has at most {MAX_URL_LENGTH} characters")
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise AddressRefused("not an http(s) URL with a host")
        if parts.scheme == "http" and not self.allow_http:
            raise AddressRefused("https is required (FEEDBACK_WEBHOOK_ALLOW_HTTP is off)")
        if parts.username or parts.password:
            raise AddressRefused("credentials in the URL are not allowed")
        try:
            parts.hostname.encode("idna")  # what name resolution does with it, label limits and all
        except UnicodeError:
            raise AddressRefused("the host is not a valid name") from None
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise AddressRefused("the port is not valid")
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        return parts.scheme, parts.hostname, port


@dataclass
class Resolver:
    """Resolves and checks hosts; answers are reused for a few seconds."""

    policy: AddressPolicy
    ttl: float = 10.0
    cache: dict[tuple[str, int], tuple[float, list[IPAddress]]] = field(default_factory=dict)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        now = time.monotonic()
        cached = self.cache.get((host, port))
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise AddressRefused(f"the host does not resolve ({exc.strerror or exc})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        self.cache[(host, port)] = (now, addresses)
        return addresses

    async def checked_address(self, url: str) -> tuple[str, str, int, IPAddress]:
        """Scheme, host, port and the address to connect to, every answer checked."""
        scheme, host, port = self.policy.check_url(url)
        addresses = await self.resolve(host, port)
        refused = [a for a in addresses if self.policy.refused(a)]
        if refused or not addresses:
            which = refused[0] if refused else "no address"
            raise AddressRefused(f"{host} resolves to an address webhooks may not reach ({which})")
        return scheme, host, port, addresses[0]
