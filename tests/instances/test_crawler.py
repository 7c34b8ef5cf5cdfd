"""The crawler against a loopback fleet of real, misbehaving HTTP servers."""

from __future__ import annotations

import time

import pytest

from tests.fleet import (
    ARRAY,
    DRIP,
    HANG,
    HUGE,
    JSON,
    REDIRECT,
    STATUS,
    TEXT,
    Behaviour,
    Fleet,
)
from tests.services import free_port
from tracker.instances.crawler import (
    DEADLINE_HEADER,
    CrawlSettings,
    Endpoint,
    Target,
    crawl,
)
from tracker.instances.network import NetworkPolicy

TIMEOUT = 2.0
INFO = {"version": "3.3", "events": 12}
STATS = {"users": 40}

FLEET = {
    "127.0.10.1": Behaviour(
        JSON, data=INFO, paths={"/stats": Behaviour(JSON, data=STATS)}
    ),
    "127.0.10.2": Behaviour(JSON, delay=0.3, data=INFO),
    "127.0.10.3": Behaviour(HANG),
    "127.0.10.4": Behaviour(STATUS, status=404),
    "127.0.10.5": Behaviour(STATUS, status=500),
    "127.0.10.6": Behaviour(TEXT),
    "127.0.10.7": Behaviour(ARRAY),
    "127.0.10.8": Behaviour(HUGE, size=8 * 1024 * 1024),
    "127.0.10.9": Behaviour(REDIRECT, location="http://127.0.99.1/system-info"),
    "127.0.10.10": Behaviour(DRIP, size=1000),
    "127.0.10.11": Behaviour(
        JSON, data=INFO, paths={"/stats": Behaviour(STATUS, status=500)}
    ),
    "127.0.10.12": Behaviour(REDIRECT, location="/moved"),
}


def settings(**changes) -> CrawlSettings:
    values = {
        "endpoints": (
            Endpoint("/system-info", {"X-Token": "secret"}),
            Endpoint("/stats"),
        ),
        "timeout": TIMEOUT,
        "connect_timeout": 1.0,
        "max_bytes": 256 * 1024,
        "concurrency": 50,
        "policy": NetworkPolicy.from_settings(["0.0.0.0/0", "::/0"], []),
        "user_agent": "tests",
    }
    values.update(changes)
    return CrawlSettings(**values)


@pytest.fixture(scope="module")
def fleet():
    behaviours = dict(FLEET)
    # The same-host redirect lands on /moved, which answers JSON.
    behaviours["127.0.10.12"] = Behaviour(
        REDIRECT,
        location="/moved",
        paths={"/moved": Behaviour(JSON, data={"moved": True})},
    )
    with Fleet(behaviours) as running:
        yield running


def crawl_all(targets, crawl_settings):
    return {o.instance_id: o for o in crawl(targets, crawl_settings) if o is not None}


def test_one_run_over_a_hostile_fleet(fleet):
    addresses = list(FLEET)
    targets = [Target(index, fleet.url(a)) for index, a in enumerate(addresses)]
    targets.append(Target(100, "http://169.254.169.254"))
    begin = time.monotonic()
    outcomes = crawl_all(targets, settings())
    elapsed = time.monotonic() - begin
    # Bounded by the timeout, not by the slowest host (margin for a busy machine).
    assert elapsed < TIMEOUT + 3, elapsed

    by_address = {a: outcomes[i] for i, a in enumerate(addresses)}
    fast = by_address["127.0.10.1"]
    assert (fast.health, fast.error) == ("up", "")
    assert [r.data for r in fast.results] == [INFO, STATS]

    assert by_address["127.0.10.2"].health == "up"
    assert by_address["127.0.10.3"].health == "down"
    assert "timed out" in by_address["127.0.10.3"].error
    assert by_address["127.0.10.4"].status == 404
    assert "HTTP 404" in by_address["127.0.10.4"].error
    assert "HTTP 500" in by_address["127.0.10.5"].error
    assert "not valid JSON" in by_address["127.0.10.6"].error
    assert "not an object (list)" in by_address["127.0.10.7"].error
    assert "larger than" in by_address["127.0.10.8"].error
    assert "redirect to another host (127.0.99.1) not followed" in (
        by_address["127.0.10.9"].error
    )
    assert "timed out" in by_address["127.0.10.10"].error
    for address in (
        "127.0.10.4",
        "127.0.10.5",
        "127.0.10.6",
        "127.0.10.7",
        "127.0.10.8",
    ):
        assert by_address[address].health == "down", address

    partial = by_address["127.0.10.11"]
    assert partial.health == "up"
    assert partial.results[0].data == INFO
    assert partial.error == "/stats: HTTP 500"

    same_host = by_address["127.0.10.12"]
    assert same_host.health == "up"
    assert same_host.results[0].data == {"moved": True}

    metadata = outcomes[100]
    assert metadata.skipped and metadata.health == "unknown"
    assert "link-local" in metadata.error


def test_every_address_gets_its_own_outcome_and_address(fleet):
    targets = [Target(1, fleet.url("127.0.10.1")), Target(2, fleet.url("127.0.10.4"))]
    outcomes = crawl_all(targets, settings())
    assert outcomes[1].address == "127.0.10.1"
    assert outcomes[2].address == "127.0.10.4"


def test_headers_and_deadline_are_sent(fleet):
    fleet.seen.clear()
    crawl_all([Target(1, fleet.url("127.0.10.1"))], settings())
    info = next(r for r in fleet.seen if r.path == "/system-info")
    assert info.headers["X-Token"] == "secret"
    assert DEADLINE_HEADER in info.headers
    stats = next(r for r in fleet.seen if r.path == "/stats")
    assert "X-Token" not in stats.headers
    # The last request closes the connection: no descriptor kept per finished host.
    assert stats.headers.get("Connection", "").lower() == "close"
    assert info.headers.get("Connection", "").lower() != "close"


def test_hanging_hosts_do_not_hold_up_the_others(fleet):
    """Concurrency 2 with two hanging hosts: the fast ones still finish early."""
    targets = [Target(i, fleet.url("127.0.10.3")) for i in range(2)]
    targets += [Target(10 + i, fleet.url("127.0.10.1")) for i in range(20)]
    finished_at = {}
    begin = time.monotonic()
    for outcome in crawl(targets, settings(concurrency=4, timeout=6.0)):
        if outcome is not None:
            finished_at[outcome.instance_id] = time.monotonic() - begin
    fast = [finished_at[10 + i] for i in range(20)]
    assert max(fast) < min(finished_at[0], finished_at[1])
    assert min(finished_at[0], finished_at[1]) >= 6.0 - 0.1


def test_denied_networks_are_not_crawled(fleet):
    fleet.seen.clear()
    policy = NetworkPolicy.from_settings(["0.0.0.0/0"], ["127.0.10.0/24"])
    outcome = crawl_all([Target(1, fleet.url("127.0.10.1"))], settings(policy=policy))[
        1
    ]
    assert outcome.skipped
    assert "denied network" in outcome.error
    assert fleet.seen == []


def test_a_host_name_resolving_to_a_denied_address_is_refused(fleet):
    fleet.seen.clear()
    policy = NetworkPolicy.from_settings(
        ["0.0.0.0/0", "::/0"], ["127.0.0.0/8", "::1/128"]
    )
    url = f"http://localhost:{fleet.port}"
    outcome = crawl_all([Target(1, url)], settings(policy=policy))[1]
    assert outcome.skipped
    assert "denied network" in outcome.error
    assert fleet.seen == []


def test_allow_list_limits_the_crawl(fleet):
    policy = NetworkPolicy.from_settings(["10.0.0.0/8"], [])
    outcome = crawl_all([Target(1, fleet.url("127.0.10.1"))], settings(policy=policy))[
        1
    ]
    assert outcome.skipped
    assert "outside the allowed networks" in outcome.error


def test_no_endpoints_checks_that_the_instance_answers(fleet):
    outcomes = crawl_all(
        [Target(1, fleet.url("127.0.10.6")), Target(2, fleet.url("127.0.10.5"))],
        settings(endpoints=()),
    )
    assert outcomes[1].health == "up"
    assert outcomes[2].health == "down"


def test_unresolvable_and_refused_hosts_are_down():
    port = free_port()
    outcomes = crawl_all(
        [
            Target(1, "http://no-such-host.invalid"),
            Target(2, f"http://127.0.10.200:{port}"),
        ],
        settings(),
    )
    assert outcomes[1].health == "down"
    assert "cannot resolve host" in outcomes[1].error
    assert outcomes[2].health == "down"
    assert "cannot connect" in outcomes[2].error


@pytest.mark.parametrize(
    "body", [b'{"users": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}']
)
def test_nan_and_infinity_are_not_json(body):
    from tracker.instances.crawler import FetchError, _parse_object

    with pytest.raises(FetchError, match="not valid JSON"):
        _parse_object(body, 200)
