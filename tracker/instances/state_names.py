"""What each state and contact channel is called on the pages."""

from flask_babel import lazy_gettext as _l

from tracker.instances import states

STATE_NAMES = {
    states.UP: _l("up"),
    states.CHECKING_IN: _l("checking in"),
    states.LATE: _l("late"),
    states.OVERDUE: _l("overdue"),
    states.DOWN: _l("down"),
    states.PAUSED: _l("paused"),
    states.UNKNOWN: _l("unknown"),
}
CHANNEL_NAMES = {
    "registration": _l("registration"),
    "update": _l("client update"),
    "heartbeat": _l("heartbeat"),
    "crawl": _l("crawl"),
    "quota": _l("quota exchange"),
    "sync": _l("sync delivery"),
}
HEALTH_NAMES = {"up": _l("up"), "down": _l("down"), "unknown": _l("unknown")}
