"""The quota toolkit a field application embeds. It never imports the server."""

from quota.client.blueprint import make_blueprint
from quota.client.codes import InvalidCode
from quota.client.models import (
    QuotaMixin,
    QuotaNotSetOrExpiredError,
    QuotaReachedError,
    quota_models,
)

__all__ = [
    "InvalidCode",
    "QuotaMixin",
    "QuotaNotSetOrExpiredError",
    "QuotaReachedError",
    "make_blueprint",
    "quota_models",
]
