"""Settings the quota domain adds to settings.cfg."""

from tracker.settings import Setting, integer, number

SETTINGS = (
    Setting("QUOTA_PULL_INTERVAL", 900, integer(10, 7 * 86400)),
    Setting("QUOTA_CLIENT_TIMEOUT", 10.0, number(0.5, 300)),
    Setting("QUOTA_OVERRIDE_HOURS", 24, integer(1, 24 * 90)),
)
