"""Geolocation against the GeoLite2 City database the package ships."""

import pytest

from tracker.instances.geo import UNKNOWN, Locator


@pytest.fixture(scope="module")
def locator():
    located = Locator()
    yield located
    located.close()


def test_a_public_address_in_the_united_states(locator):
    location = locator.locate("8.8.8.8")
    assert (location.country_code, location.country_name) == ("US", "United States")
    assert (location.latitude, location.longitude) == (37.751, -97.822)
    assert location.accuracy_km == 1000


def test_a_public_address_with_a_city(locator):
    location = locator.locate("81.2.69.160")
    assert (location.country_code, location.city) == ("GB", "Willesden")
    assert location.latitude == pytest.approx(51.5333)


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "192.168.0.10", "127.0.0.1", "172.16.5.4", "::1", "fd00::1"]
)
def test_private_addresses_are_unknown(locator, address):
    assert locator.locate(address) == UNKNOWN
    assert not locator.locate(address).known


def test_garbage_and_missing_addresses_are_unknown(locator):
    assert locator.locate(None) == UNKNOWN
    assert locator.locate("not-an-address") == UNKNOWN


def test_lookups_are_cached_per_address(locator):
    first = locator.locate("81.2.69.160")
    assert locator.locate("81.2.69.160") is first
