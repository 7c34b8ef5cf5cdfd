"""The quota toolkit a field application embeds. It never imports the server."""

from quota.client.blueprint import make_blueprint
from quota.client.checkin import CheckInFailed, check_in, checkin_cli
from quota.client.codes import InvalidCode
from quota.client.models import (
    QuotaCountError,
    QuotaMixin,
    QuotaNotSetOrExpiredError,
    QuotaReachedError,
    quota_models,
)

__all__ = [
    "CheckInFailed",
    "InvalidCode",
    "QuotaCountError",
    "QuotaMixin",
    "QuotaNotSetOrExpiredError",
    "QuotaReachedError",
    "check_in",
    "checkin_cli",
    "make_blueprint",
    "quota_models",
]
