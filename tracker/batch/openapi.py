"""The batch-operation endpoints this package adds to the OpenAPI document."""

from __future__ import annotations

from typing import Any

from tracker.batch.items import OUTCOME_FILTERS, PENDING
from tracker.openapi import (
    BEARER,
    PAGE_PARAMETERS,
    error_response,
    json_response,
    page_of,
    path_parameter,
)

BATCH_ITEM = {
    "type": "object",
    "description": "One item of an operation (for a crawl run, one instance, "
    "with its uuid and url)",
    "properties": {
        "id": {"type": "integer"},
        "outcome": {"enum": list(OUTCOME_FILTERS)},
        "error": {"type": "string"},
        "label": {"type": "string"},
    },
}


def batch_paths() -> dict[str, Any]:
    """The path listing an operation's items."""
    outcome = {
        "name": "outcome",
        "in": "query",
        "description": "Comma-separated outcomes to list ("
        + ", ".join(OUTCOME_FILTERS)
        + f"; {PENDING!r}: not attempted yet), or 'all'. Default: failed,skipped",
        "schema": {"type": "string"},
    }
    return {
        "/api/batch-operations/{operation_id}/items": {
            "parameters": [path_parameter("operation_id", {"type": "integer"})],
            "get": {
                "summary": "List an operation's items with their outcome and "
                "error (by default those that failed or were skipped)",
                "security": BEARER,
                "parameters": [*PAGE_PARAMETERS, outcome],
                "responses": {
                    "200": json_response("A page of items", page_of(BATCH_ITEM)),
                    "400": error_response("Unknown outcome or bad page"),
                    "401": error_response("No or bad token"),
                    "404": error_response("Unknown id"),
                },
            },
        }
    }
