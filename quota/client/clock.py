"""The device's clock: every check of a window, lease or code reads it here."""

import time


def now_timestamp() -> int:
    """This device's clock, as Unix time."""
    return int(time.time())
