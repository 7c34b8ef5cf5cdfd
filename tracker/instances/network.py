"""Which addresses the crawler may connect to."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Never crawled, whatever the settings say: link-local ranges hold cloud metadata
# services (169.254.169.254, fd00:ec2::254) that hand out credentials.
ALWAYS_DENIED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",
        "::/128",
        "224.0.0.0/4",
        "ff00::/8",
    )
)


# IPv6 ranges that carry an IPv4 address inside: the IPv4 address is judged too.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class AddressNotAllowed(OSError):
    """The crawler refuses to connect to this address."""


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and how; None if it carries none."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip.teredo is not None:
        return ip.teredo[1], "Teredo"
    packed = ip.packed
    if ip in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(packed[12:]), "NAT64"
    if ip in NAT64_LOCAL:
        # RFC 6052, a /48 prefix: the IPv4 octets sit around the reserved octet 8.
        return ipaddress.IPv4Address(packed[6:8] + packed[9:11]), "NAT64"
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        return ipaddress.IPv4Address(packed[12:]), "IPv4-compatible"
    return None


@dataclass(frozen=True)
class NetworkPolicy:
    allow: tuple[IPNetwork, ...]
    deny: tuple[IPNetwork, ...]

    @classmethod
    def from_settings(cls, allow: Iterable[str], deny: Iterable[str]) -> NetworkPolicy:
        return cls(
            tuple(ipaddress.ip_network(n, strict=False) for n in allow),
            tuple(ipaddress.ip_network(n, strict=False) for n in deny),
        )

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be crawled, or None if it may.

        An IPv6 address that carries an IPv4 address (mapped, compatible, NAT64,
        6to4, Teredo) is crawled only if both are allowed.
        """
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
            return f"address {address} has a zone id; such addresses are never crawled"
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            inner, how = embedded
            reason = self._refusal(inner)
            if reason is not None:
                return f"{ip} is {how} for {inner}: {reason}"
            if ip.ipv4_mapped is not None:
                return None  # the same address as the IPv4 one, in IPv6 notation
        return self._refusal(ip)

    def _refusal(self, ip: IPAddress) -> str | None:
        if ip.is_link_local or any(ip in n for n in ALWAYS_DENIED):
            return f"address {ip} is link-local or reserved and is never crawled"
        if any(ip in n for n in self.deny):
            return f"address {ip} is in a denied network (CRAWL_DENY_NETWORKS)"
        if not any(ip in n for n in self.allow):
            return (
                f"address {ip} is outside the allowed networks (CRAWL_ALLOW_NETWORKS)"
            )
        return None

    def check(self, address: str) -> None:
        reason = self.refusal(address)
        if reason is not None:
            raise AddressNotAllowed(reason)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def storable_address(address: str | None) -> str | None:
    """The address in its canonical form, without a zone id; None if it is not
    one (what the instances' address column holds)."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    return str(ip)
