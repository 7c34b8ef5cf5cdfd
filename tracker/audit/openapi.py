"""The audit trail's endpoint in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from tracker.audit.listing import TEXT_FILTERS
from tracker.openapi import (
    BEARER,
    PAGE_PARAMETERS,
    error_response,
    json_response,
    page_of,
)

AUDIT_EVENT = {
    "type": "object",
    "description": "One state-changing action",
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string"},
        "user_id": {"type": ["integer", "null"]},
        "via": {"enum": ["page", "api", "cli", "system"]},
        "domain": {"type": "string"},
        "action": {"type": "string"},
        "target_type": {"type": "string"},
        "target_id": {"type": "string"},
        "summary": {"type": "string"},
        "changes": {
            "type": "object",
            "description": "{field: [old, new]} for an update, {field: value} "
            "for a create or delete; secrets as (hidden)",
        },
        "remote_addr": {"type": "string"},
    },
}


def _query(name: str, description: str, fmt: str | None = None) -> dict[str, Any]:
    schema = {"type": "string", **({"format": fmt} if fmt else {})}
    return {"name": name, "in": "query", "description": description, "schema": schema}


def audit_paths() -> dict[str, Any]:
    filters = [
        _query(name, f"Only events with this {name.replace('_', ' ')}")
        for name in TEXT_FILTERS
    ]
    filters += [
        _query("since", "From this day (dashboard time zone)", "date"),
        _query("until", "To this day, included", "date"),
    ]
    return {
        "/api/audit": {
            "get": {
                "summary": "List the audit trail, newest first (admin)",
                "security": BEARER,
                "parameters": [*PAGE_PARAMETERS, *filters],
                "responses": {
                    "200": json_response("A page of events", page_of(AUDIT_EVENT)),
                    "400": error_response("A date that is not one, or a bad page"),
                    "401": error_response("No or bad token"),
                    "403": error_response("Not an admin"),
                },
            }
        }
    }
