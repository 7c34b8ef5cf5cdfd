"""Settings the sync domain adds to settings.cfg."""

from typing import Any

from tracker.settings import Invalid, Setting, integer


def model_names(value: Any) -> list[str]:
    """The allow-list: the model names whose transactions the server applies."""
    if not isinstance(value, list | tuple) or not all(
        isinstance(name, str) and 0 < len(name) <= 100 and name.isidentifier()
        for name in value
    ):
        raise Invalid('a list of model names, e.g. ["Household", "Member"]')
    return list(dict.fromkeys(value))


# Settings this domain adds to settings.cfg (tracker.settings.Setting objects).
SETTINGS = (
    Setting("SYNC_MODELS", [], model_names),
    Setting("SYNC_MAX_BATCH", 1000, integer(1, 10000)),
    Setting("SYNC_MAX_BODY_BYTES", 32 * 1024 * 1024, integer(1024, 2**31 - 1)),
    Setting("SYNC_MAX_FILE_BYTES", 2**30, integer(1024, 2**40)),
    Setting("SYNC_APPLY_RUN_SIZE", 1000, integer(1, 100000)),
    Setting("SYNC_APPLY_INTERVAL", 60, integer(5, 86400)),
    # Notifications (0 turns one off): a gap held this long, a producer silent
    # this long; held or quarantined transactions are always told.
    Setting("SYNC_ALERT_GAP_HOURS", 24, integer(0, 24 * 365)),
    Setting("SYNC_ALERT_SILENT_DAYS", 7, integer(0, 3650)),
)
