"""OpenAPI paths and schemas of the quota API."""

from __future__ import annotations

from typing import Any

from quota.forecast import OUTLOOKS
from tracker.fields import object_schema
from tracker.openapi import (
    BEARER,
    PAGE_PARAMETERS,
    error_response,
    json_body,
    json_response,
    page_of,
    path_parameter,
    ref,
)

WHOLE = {"type": "integer", "minimum": 0}
WHEN = {"type": "string", "format": "date-time"}
KIND = path_parameter("kind", {"type": "string", "maxLength": 100})
NAME = path_parameter("name", {"type": "string", "maxLength": 100})

FORECAST = object_schema(
    {
        "left": WHOLE,
        "rate_per_hour": {"type": "number"},
        "runs_out": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "when, at this rate (outlook runs-out); else null",
        },
        "outlook": {
            "enum": list(OUTLOOKS),
            "description": "runs-out: at runs_out; no-room: nothing left;"
            " inactive: the client gets no more headroom; not-in-window: not"
            " before the window closes at this rate",
        },
    }
)

QUOTA = object_schema(
    {
        "record_kind": {"type": "string"},
        "target": WHOLE,
        "window_start": WHEN,
        "window_expires": WHEN,
        "active": {"type": "boolean"},
        "created": WHOLE,
        "approved": {**WHOLE, "description": "approved overrides not used yet"},
        "clients_may_create": WHOLE,
        "retired": {
            **WHOLE,
            "description": "held by removed clients and wiped installs of a device",
        },
        "committed": WHOLE,
        "free": {**WHOLE, "description": "the reserve and reclaimed headroom"},
    }
)

CLIENT = object_schema(
    {
        "name": {"type": "string"},
        "endpoint": {"type": "string"},
        "active": {"type": "boolean"},
        "weight": {"type": "number"},
        "max_ceiling": {"type": ["integer", "null"]},
        "count": {**WHOLE, "description": "every record it created, all installs"},
        "ceiling": WHOLE,
        "pending": {"type": ["integer", "null"]},
        "approved_unused": WHOLE,
        "may_create": WHOLE,
        "last_contact": {"type": ["string", "null"], "format": "date-time"},
        "last_error": {"type": "string"},
        "reinstalled": {"type": ["string", "null"], "format": "date-time"},
        "earlier_installs_created": WHOLE,
        "clock_skew_seconds": {"type": ["number", "null"]},
        "clock_off": {"type": "boolean"},
        "forecast": ref("QuotaForecast"),
    }
)

QUOTA_DETAIL = {
    "allOf": [
        ref("Quota"),
        object_schema(
            {
                "forecast": ref("QuotaForecast"),
                "clients": {"type": "array", "items": ref("QuotaClient")},
            }
        ),
    ]
}

HISTORY_LINE = object_schema(
    {
        "at": WHEN,
        "client": {"type": ["string", "null"]},
        "event": {"type": "string"},
        "count": {"type": ["integer", "null"]},
        "ceiling": {"type": ["integer", "null"]},
        "detail": {"type": "string"},
        "by": {"type": "string"},
    }
)

QUOTA_CHANGE = object_schema(
    {
        "target": {
            "type": "integer",
            "minimum": 1,
            "description": "refused (409) below what clients may already create",
        },
        "window_start": WHEN,
        "window_expires": WHEN,
        "active": {"type": "boolean"},
    },
    closed=True,
)

CHECK_IN = object_schema(
    {
        "client": {"type": "string"},
        "count": WHOLE,
        "ceiling": WHOLE,
        "confirmed": {"type": ["integer", "null"]},
        "lease_expires": WHOLE,
        "clock": {**WHOLE, "description": "the device's clock, Unix time"},
        "used_overrides": {"type": "array", "items": {"type": "string"}},
        "install": {
            "type": ["string", "null"],
            "maxLength": 32,
            "description": "the name of this install of the device's quota row;"
            " another name means the device was wiped and installed again",
        },
    },
    required=("client", "count", "ceiling"),
    description="The device's state, as its quota blueprint reports it",
)

CEILING = object_schema(
    {
        "record_kind": {"type": "string"},
        "ceiling": WHOLE,
        "window_start": {**WHOLE, "description": "Unix time"},
        "window_expires": {**WHOLE, "description": "Unix time"},
        "confirmed": {**WHOLE, "description": "the ceiling after the lease ends"},
        "lease_expires": {**WHOLE, "description": "Unix time"},
        "controller_time": WHOLE,
        "max_clock_skew": WHOLE,
    }
)


def quota_schemas() -> dict[str, Any]:
    return {
        "Quota": QUOTA,
        "QuotaClient": CLIENT,
        "QuotaForecast": FORECAST,
        "QuotaHistoryLine": HISTORY_LINE,
    }


def quota_paths() -> dict[str, Any]:
    unauthorized = error_response("No or bad token")
    refused = error_response("Refused: the change would break the quota")
    missing = error_response("No such quota or client")
    bad = error_response("Invalid value (the field is named)")
    detail = json_response("The quota", QUOTA_DETAIL)

    def admin(summary: str, responses: dict, body: dict | None = None) -> dict:
        operation = {
            "summary": summary,
            "security": BEARER,
            "responses": {**responses, "401": unauthorized},
        }
        if body is not None:
            operation["requestBody"] = json_body(body)
        return operation

    return {
        "/api/quotas": {
            "get": {
                **admin(
                    "List quotas with their numbers",
                    {"200": json_response("A page of quotas", page_of(ref("Quota")))},
                ),
                "parameters": PAGE_PARAMETERS,
            },
            "post": admin(
                "Create a quota",
                {"201": detail, "400": bad, "409": refused},
                object_schema(
                    {
                        "record_kind": {"type": "string", "maxLength": 100},
                        "target": {"type": "integer", "minimum": 1},
                        "window_start": WHEN,
                        "window_expires": WHEN,
                    },
                    required=("record_kind", "target"),
                    closed=True,
                ),
            ),
        },
        "/api/quotas/{kind}": {
            "parameters": [KIND],
            "get": admin(
                "Show a quota, its clients and forecasts",
                {"200": detail, "404": missing},
            ),
            "patch": admin(
                "Change a quota's target, window or state",
                {"200": detail, "400": bad, "404": missing, "409": refused},
                QUOTA_CHANGE,
            ),
        },
        "/api/quotas/{kind}/history": {
            "parameters": [KIND],
            "get": {
                **admin(
                    "List a quota's history, newest first",
                    {
                        "200": json_response(
                            "A page of history", page_of(ref("QuotaHistoryLine"))
                        ),
                        "404": missing,
                    },
                ),
                "parameters": PAGE_PARAMETERS,
            },
        },
        "/api/quotas/{kind}/clients": {
            "parameters": [KIND],
            "post": admin(
                "Add a field client",
                {"201": detail, "400": bad, "404": missing, "409": refused},
                object_schema(
                    {
                        "name": {"type": "string", "maxLength": 100},
                        "endpoint": {"type": "string", "format": "uri"},
                        "secret": {"type": "string", "maxLength": 200},
                    },
                    required=("name", "endpoint", "secret"),
                    closed=True,
                ),
            ),
        },
        "/api/quotas/{kind}/clients/{name}": {
            "parameters": [KIND, NAME],
            "patch": admin(
                "Change a client's weight, maximum ceiling or state",
                {"200": detail, "400": bad, "404": missing, "409": refused},
                object_schema(
                    {
                        "weight": {"type": "number", "minimum": 0, "maximum": 1000},
                        "max_ceiling": {
                            "type": ["integer", "null"],
                            "description": "null removes the maximum",
                        },
                        "active": {"type": "boolean"},
                    },
                    closed=True,
                ),
            ),
            "delete": admin(
                "Remove a client; what it may still create stays counted",
                {"200": json_response("Removed"), "404": missing},
            ),
        },
        "/api/quotas/{kind}/approvals": {
            "parameters": [KIND],
            "post": admin(
                "Approve an override for a client's request code",
                {
                    "201": json_response(
                        "The approval code",
                        object_schema(
                            {
                                "approval_code": {"type": "string"},
                                "warning": {"type": "string"},
                            }
                        ),
                    ),
                    "400": bad,
                    "404": missing,
                    "409": refused,
                },
                object_schema(
                    {
                        "request_code": {"type": "string"},
                        "extra": {"type": "integer", "minimum": 1},
                        "reclaim": {
                            "type": "boolean",
                            "description": "first ask idle clients to lower"
                            " their ceilings if too few records are free",
                        },
                    },
                    required=("request_code", "extra"),
                    closed=True,
                ),
            ),
        },
        "/api/quotas/{kind}/checkin": {
            "parameters": [KIND],
            "post": {
                "summary": "A field client reports its state and takes its ceiling",
                "description": "Authenticated by the client's secret as a Bearer"
                " token (not an API token). Used by `flask quota checkin URL` on"
                " devices the controller cannot reach.",
                "requestBody": json_body(CHECK_IN),
                "responses": {
                    "200": json_response("The ceiling to apply", CEILING),
                    "400": bad,
                    "401": error_response("Unknown client or wrong secret"),
                    "409": error_response("The quota is not active"),
                },
            },
        },
    }
