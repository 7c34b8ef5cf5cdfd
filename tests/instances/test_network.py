"""The crawler's network policy, on the addresses an IPv6 address can smuggle in."""

from __future__ import annotations

import ipaddress

import pytest

from tracker.instances.network import NetworkPolicy, embedded_ipv4

POLICY = NetworkPolicy.from_settings(["0.0.0.0/0", "::/0"], ["127.0.0.0/8", "::1/128"])


@pytest.mark.parametrize(
    ("address", "how"),
    [
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("64:ff9b::7f00:1", "NAT64"),
        ("64:ff9b:1:7f00:0:100::", "NAT64"),
        ("2002:7f00:1::", "6to4"),
        # RFC 4380's layout: the client address is stored inverted.
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo"),
    ],
)
def test_an_ipv4_address_inside_ipv6_is_judged(address, how):
    inner, found = embedded_ipv4(ipaddress.ip_address(address))
    assert (str(inner), found) == ("127.0.0.1", how)
    reason = POLICY.refusal(address)
    assert reason is not None
    assert how in reason
    assert "denied network (CRAWL_DENY_NETWORKS)" in reason


def test_an_embedded_address_must_be_allowed_too():
    policy = NetworkPolicy.from_settings(["10.0.0.0/8", "64:ff9b::/96"], [])
    assert policy.refusal("64:ff9b::a00:1") is None
    reason = policy.refusal("64:ff9b::808:808")
    assert "outside the allowed networks (CRAWL_ALLOW_NETWORKS)" in reason


@pytest.mark.parametrize("address", ["fe80::1%eth0", "2001:db8::1%2"])
def test_zone_ids_are_refused(address):
    assert "zone id" in POLICY.refusal(address)


@pytest.mark.parametrize("address", ["2001:db8::1", "8.8.8.8", "64:ff9b::808:808"])
def test_ordinary_addresses_pass(address):
    assert POLICY.refusal(address) is None
