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


class AddressNotAllowed(OSError):
    """The crawler refuses to connect to this address."""


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
        """Why ``address`` may not be crawled, or None if it may."""
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
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
