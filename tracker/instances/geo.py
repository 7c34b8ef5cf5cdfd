"""Where instances are: GeoIP lookups of their addresses, cached per address."""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from importlib import resources

import geoip2.database
import geoip2.errors

ATTRIBUTION = (
    "This product includes GeoLite2 data created by MaxMind, available from "
    "maxmind.com (CC BY-SA 4.0)."
)


@dataclass(frozen=True)
class Location:
    country_code: str | None = None
    country_name: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    accuracy_km: int | None = None

    @property
    def known(self) -> bool:
        return self.country_code is not None


UNKNOWN = Location()


def shipped_database() -> str:
    """The GeoLite2 City database that the maxminddb-geolite2 package ships."""
    return str(resources.files("_maxminddb_geolite2") / "GeoLite2-City.mmdb")


def is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


class Locator:
    """Look addresses up in a GeoIP2/GeoLite2 City database; thread-safe, cached."""

    def __init__(self, database_path: str | None = None) -> None:
        self.database_path = database_path or shipped_database()
        self._reader: geoip2.database.Reader | None = None
        self._cache: dict[str, Location] = {}
        self._lock = threading.Lock()

    def _open(self) -> geoip2.database.Reader:
        if self._reader is None:
            self._reader = geoip2.database.Reader(self.database_path)
        return self._reader

    def locate(self, address: str | None) -> Location:
        """Return the location of an IP address; private ones are unknown."""
        if not address or not is_public(address):
            return UNKNOWN
        with self._lock:
            cached = self._cache.get(address)
            if cached is not None:
                return cached
            try:
                record = self._open().city(address)
            except (geoip2.errors.AddressNotFoundError, ValueError):
                location = UNKNOWN
            else:
                location = Location(
                    country_code=record.country.iso_code,
                    country_name=record.country.names.get("en"),
                    city=record.city.names.get("en"),
                    latitude=record.location.latitude,
                    longitude=record.location.longitude,
                    accuracy_km=record.location.accuracy_radius,
                )
            self._cache[address] = location
            return location

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
