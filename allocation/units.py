"""Units of resource pools: quantities typed with units, shown humanised.

A resource pool declares its unit: ``CPU-hours`` for compute time, or a size
(``B``, ``KB``, ``MB``, ``GB``, ``TB``, ``PB`` in powers of 1000; ``KiB`` ... ``PiB``
in powers of 1024) for disk space. Allocations and usage are stored in the
pool's unit; a quantity may be typed in any unit of the same kind ("0.5 TB" into
a GB pool) and is converted on the way in.
"""

from __future__ import annotations

import math
import re

CPU_HOURS = "CPU-hours"
KIND_TIME = "time"
KIND_DATA = "data"

DECIMAL_SIZES = ("B", "KB", "MB", "GB", "TB", "PB")
BINARY_SIZES = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
BYTES_PER_UNIT = {
    **{name: 1000**power for power, name in enumerate(DECIMAL_SIZES)},
    **{name: 1024**power for power, name in enumerate(BINARY_SIZES)},
}
UNITS = (CPU_HOURS, *DECIMAL_SIZES, *BINARY_SIZES[1:])

_ALIASES = {
    "cpu-hours": CPU_HOURS,
    "cpu hours": CPU_HOURS,
    "cpu-hour": CPU_HOURS,
    "cpu hour": CPU_HOURS,
    "core-hours": CPU_HOURS,
    "core hours": CPU_HOURS,
    "su": CPU_HOURS,
    "hours": CPU_HOURS,
    "h": CPU_HOURS,
    "bytes": "B",
    "byte": "B",
    **{name.lower(): name for name in BYTES_PER_UNIT},
}
_QUANTITY = re.compile(
    r"^\s*([-+]?[0-9][0-9_,]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)\s*(.*?)\s*$"
)


class UnitError(ValueError):
    """A unit or a quantity that cannot be read."""


def canonical_unit(text: str) -> str | None:
    """Return the unit ``text`` names (``kb`` → ``KB``), or None if it is none."""
    return _ALIASES.get(" ".join(text.strip().split()).lower())


def unit_kind(unit: str) -> str | None:
    """Return time, data, or None for a unit this module does not know."""
    if unit == CPU_HOURS:
        return KIND_TIME
    if unit in BYTES_PER_UNIT:
        return KIND_DATA
    return None


def bytes_per_unit(unit: str) -> float:
    """Bytes in one ``unit`` (1 for units that are not sizes)."""
    return float(BYTES_PER_UNIT.get(unit, 1))


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert ``value`` between two units of the same kind."""
    if from_unit == to_unit:
        return value
    kinds = unit_kind(from_unit), unit_kind(to_unit)
    if kinds[0] != kinds[1] or kinds[0] is None:
        raise UnitError(f"{from_unit} cannot be converted to {to_unit}")
    return value * bytes_per_unit(from_unit) / bytes_per_unit(to_unit)


def parse_quantity(text: str) -> tuple[float, str | None]:
    """Read ``"100 KB"``, ``"1,500"`` or ``"2.5e3 CPU-hours"`` as (number, unit)."""
    match = _QUANTITY.match(text)
    if not match:
        raise UnitError("must be a number, optionally followed by a unit")
    number_text, unit_text = match.groups()
    try:
        number = float(number_text.replace(",", "").replace("_", ""))
    except ValueError:
        raise UnitError("must be a number, optionally followed by a unit") from None
    if not math.isfinite(number):
        raise UnitError("must be a finite number")
    if not unit_text:
        return number, None
    unit = canonical_unit(unit_text)
    if unit is None:
        raise UnitError(f"unknown unit {unit_text!r}; use one of " + ", ".join(UNITS))
    return number, unit


def quantity_in(value: float | tuple[float, str | None], unit: str) -> float:
    """Return a typed quantity in the pool's ``unit`` (a bare number is in it)."""
    if not isinstance(value, tuple):
        return float(value)
    number, given = value
    if given is None or given == unit:
        return number
    if unit_kind(unit) is None:
        raise UnitError(f"the pool's unit {unit!r} takes plain numbers")
    return convert(number, given, unit)


def _trim(number: float) -> str:
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    text = f"{number:,.2f}" if abs(number) >= 100 else f"{number:,.3g}"
    return text


def humanise(value: float, unit: str) -> str:
    """Show ``value`` (in ``unit``) readably: ``1.5 GB``, ``700 CPU-hours``."""
    if unit in BYTES_PER_UNIT and value:
        family = BINARY_SIZES if unit in BINARY_SIZES[1:] else DECIMAL_SIZES
        step = 1024 if family is BINARY_SIZES else 1000
        size = value * bytes_per_unit(unit)
        power = 0
        while power < len(family) - 1 and abs(size) >= step ** (power + 1):
            power += 1
        shown = size / step**power
        return f"{_trim(round(shown, 2))} {family[power]}"
    if unit == CPU_HOURS:
        return f"{_trim(round(value, 2))} {unit}"
    return f"{_trim(round(value, 2))} {unit}".rstrip()
