"""Availability from contact and crawl history."""

from datetime import UTC, datetime, timedelta

import pytest

from tracker.instances.uptime import availability, covered

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def at(hours: float) -> datetime:
    return T0 + hours * HOUR


def test_contacts_on_schedule_cover_the_whole_period():
    contacts = [at(h) for h in range(0, 24, 6)]
    intervals = covered(contacts, [], 7 * HOUR, failures_end_cover=False)
    assert intervals == [(at(0), at(25))]
    assert availability(intervals, at(0), at(24)) == 1


def test_a_gap_beyond_the_grace_is_unavailable_time():
    # Checked in at 0 and 12 with 6 h allowed: 0-6 and 12-18 covered.
    intervals = covered([at(0), at(12)], [], 6 * HOUR, failures_end_cover=False)
    assert availability(intervals, at(0), at(24)) == pytest.approx(0.5)


def test_a_failed_crawl_ends_a_servers_cover_but_not_a_scheduled_devices():
    contacts, failures = [at(0)], [at(1)]
    server = covered(contacts, failures, 4 * HOUR, failures_end_cover=True)
    device = covered(contacts, failures, 4 * HOUR, failures_end_cover=False)
    assert availability(server, at(0), at(4)) == pytest.approx(0.25)
    assert availability(device, at(0), at(4)) == 1


def test_an_empty_period_has_no_availability():
    assert availability([], at(5), at(5)) is None
