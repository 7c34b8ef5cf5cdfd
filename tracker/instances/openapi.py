"""OpenAPI paths and schemas of the instance registry's API.

Request bodies are documented from the same field tables that validate them.
"""

from __future__ import annotations

from typing import Any

from tracker.instances.states import STATES
from tracker.instances.validation import (
    ADMIN_UPDATE,
    LOCATION,
    PAUSE,
    REGISTRATION,
    SCHEDULE,
    UPDATE,
)
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

UUID_PARAMETER = path_parameter("uuid", {"type": "string"})
REFERENCE_PARAMETER = {
    **path_parameter("reference", {"type": "string"}),
    "description": "the instance's number (its `id`), or its uuid",
}

INSTANCE_SUMMARY = {
    "type": "object",
    "required": [
        "uuid",
        "enabled",
        "url",
        "contact",
        "email",
        "organisation",
        "registered",
    ],
    "properties": {
        "uuid": {"type": "string", "format": "uuid"},
        "enabled": {"type": "boolean"},
        "url": {"type": "string"},
        "contact": {"type": "string"},
        "email": {"type": "string"},
        "organisation": {"type": "string"},
        "registered": {"type": "string", "format": "date-time"},
        "updated": {"type": "string", "format": "date-time"},
    },
}

INSTANCE_DETAIL = {
    "type": "object",
    "required": [
        "id",
        *(name for name in INSTANCE_SUMMARY["required"] if name != "uuid"),
        "client_enabled",
        "admin_disabled",
    ],
    "properties": {
        "id": {"type": "integer", "description": "the instance's number"},
        **INSTANCE_SUMMARY["properties"],
        "uuid": {
            "type": "string",
            "format": "uuid",
            "description": "its client's credential: for operators and admins only",
        },
        "enabled": {
            "type": "boolean",
            "description": "tracked: its client has it on and no admin disabled it",
        },
        "client_enabled": {"type": "boolean"},
        "admin_disabled": {"type": "boolean"},
        "state": {
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "enum": list(STATES),
                },
                "since": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "when the state began; for paused, when the "
                    "pause ends",
                },
                "reason": {"type": "string"},
            },
        },
        "last_contact": {"type": ["string", "null"], "format": "date-time"},
        "last_contact_via": {"type": ["string", "null"]},
        "down_since": {"type": ["string", "null"], "format": "date-time"},
        "contact_every": {"type": ["integer", "null"]},
        "contact_grace": {"type": ["integer", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "approved": {"type": "boolean"},
        "health": {"type": "string", "enum": ["up", "down", "unknown"]},
        "last_attempt": {"type": ["string", "null"], "format": "date-time"},
        "last_success": {"type": ["string", "null"], "format": "date-time"},
        "last_error": {"type": "string"},
        "crawled": {"type": "object"},
        "location": {"type": "object"},
    },
}


def registry_schemas() -> dict[str, Any]:
    """The registry's schemas, referred to by name from its paths."""
    return {
        "InstanceRegistration": REGISTRATION.json_schema(),
        "InstanceUpdate": UPDATE.json_schema(),
        "InstanceAdminUpdate": ADMIN_UPDATE.json_schema(),
        "Schedule": SCHEDULE.json_schema(),
        "Pause": PAUSE.json_schema(),
        "InstanceSummary": INSTANCE_SUMMARY,
        "InstanceDetail": INSTANCE_DETAIL,
        "InstancePage": page_of(ref("InstanceDetail")),
    }


def _instance_item_operations() -> dict[str, Any]:
    summary = json_response("The summary", ref("InstanceSummary"))
    unknown = error_response("Unknown uuid: register again")
    return {
        "parameters": [UUID_PARAMETER],
        "get": {
            "summary": "Read an instance's summary",
            "responses": {"200": summary, "404": unknown},
        },
        "patch": {
            "summary": "Update some of an instance's fields",
            "requestBody": json_body(ref("InstanceUpdate")),
            "responses": {
                "200": summary,
                "400": error_response("Unexpected data or an invalid value"),
                "404": unknown,
                "413": error_response("The body is too large"),
            },
        },
    }


def _admin_operation(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": BEARER,
        "responses": {
            **responses,
            "401": error_response("No or bad token"),
            "404": error_response("Unknown uuid"),
        },
    }


def _crawl_operation(summary: str) -> dict[str, Any]:
    return _admin_operation(
        summary,
        {
            "202": json_response("Started", ref("BatchOperation")),
            "409": error_response(
                "A crawl of this scope is still running, or not crawlable"
            ),
            "503": error_response("The task queue is unreachable"),
        },
    )


def registry_paths() -> dict[str, Any]:
    """Every path of the registry's API: the clients' and the admins'."""
    registration = {
        "post": {
            "summary": "Register an instance",
            "requestBody": json_body(ref("InstanceRegistration")),
            "responses": {
                "201": json_response(
                    "Registered; the uuid is the instance's credential",
                    ref("InstanceSummary"),
                ),
                "400": error_response("A field is missing or invalid"),
                "413": error_response("The body is too large"),
                "429": error_response(
                    "Too many registrations from this address; see Retry-After"
                ),
                "503": error_response(
                    "The database cannot be reached; see Retry-After"
                ),
            },
        }
    }
    the_instance = {"200": {"description": "The instance"}}
    return {
        "/api/instance/": registration,
        "/api/instance": registration,
        "/instance/": registration,
        "/instance": registration,
        "/api/instance/{uuid}": _instance_item_operations(),
        "/instance/{uuid}": _instance_item_operations(),
        "/api/instance/{uuid}/heartbeat": {
            "parameters": [UUID_PARAMETER],
            "post": {
                "summary": "Check in, optionally with values that join the "
                "crawled ones (authenticated by the uuid, as PATCH is)",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "200": json_response("Contact recorded", ref("InstanceSummary")),
                    "400": error_response("Not a JSON object, or a value refused"),
                    "404": error_response("Unknown uuid: register again"),
                    "413": error_response("The body is too large"),
                    "429": error_response("Too many heartbeats; see Retry-After"),
                },
            },
        },
        "/api/pauses": {
            "get": _admin_operation(
                "The maintenance pauses in force",
                {"200": {"description": "The pauses"}},
            )
        },
        "/api/pauses/{kind}/{value}": {
            "parameters": [
                path_parameter(
                    "kind",
                    {"type": "string", "enum": ["instance", "tag", "organisation"]},
                ),
                path_parameter(
                    "value",
                    {"type": "string", "description": "uuid, tag or organisation"},
                ),
            ],
            "put": {
                **_admin_operation(
                    "Pause until a time: no alerts, shown as paused",
                    {
                        "200": {"description": "The pause"},
                        "400": error_response("A field is invalid"),
                    },
                ),
                "requestBody": json_body(ref("Pause")),
            },
            "delete": _admin_operation(
                "End a pause now", {"204": {"description": "Ended"}}
            ),
        },
        "/api/organisations/{organisation}/schedule": {
            "parameters": [path_parameter("organisation", {"type": "string"})],
            "get": _admin_operation(
                "The contact expected of the organisation's instances",
                {"200": {"description": "The schedule"}},
            ),
            "put": {
                **_admin_operation(
                    "Set the contact expected of the organisation's instances",
                    {
                        "200": {"description": "The schedule"},
                        "400": error_response("A field is invalid"),
                    },
                ),
                "requestBody": json_body(ref("Schedule")),
            },
        },
        "/api/sd/prometheus": {
            "get": {
                "summary": "Prometheus HTTP service discovery: one target group "
                "per tracked instance",
                "security": BEARER,
                "responses": {
                    "200": {"description": "A list of target groups"},
                    "401": error_response("No or bad token"),
                },
            }
        },
        "/api/instances": {
            "get": {
                "summary": "List instances (admin)",
                "security": BEARER,
                "parameters": [
                    {"name": "enabled", "in": "query", "schema": {"type": "boolean"}},
                    {
                        "name": "organisation",
                        "in": "query",
                        "schema": {"type": "string"},
                    },
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    *PAGE_PARAMETERS,
                ],
                "responses": {
                    "200": json_response("A page", ref("InstancePage")),
                    "400": error_response("A query argument is invalid"),
                    "401": error_response("No or bad token"),
                },
            }
        },
        "/api/instances/{reference}": {
            "parameters": [REFERENCE_PARAMETER],
            "get": _admin_operation(
                "Read an instance's detail (admin)",
                {"200": json_response("The detail", ref("InstanceDetail"))},
            ),
            "patch": {
                **_admin_operation(
                    "Update an instance as an admin: enabled false disables it "
                    "until an admin enables it again, whatever its client sends",
                    {
                        "200": json_response("The detail", ref("InstanceDetail")),
                        "400": error_response("Unexpected data or an invalid value"),
                        "413": error_response("The body is too large"),
                    },
                ),
                "requestBody": json_body(ref("InstanceAdminUpdate")),
            },
            "delete": _admin_operation(
                "Delete an instance (admin)", {"204": {"description": "Deleted"}}
            ),
        },
        "/api/instances/crawl": {
            "post": _crawl_operation("Crawl every enabled instance in the background")
        },
        "/api/instances/{reference}/crawl": {
            "parameters": [REFERENCE_PARAMETER],
            "post": _crawl_operation("Crawl one instance in the background"),
        },
        "/api/instances/{reference}/approve": {
            "parameters": [REFERENCE_PARAMETER],
            "post": _admin_operation("Accept an instance for crawling", the_instance),
        },
        "/api/instances/{reference}/location": {
            "parameters": [REFERENCE_PARAMETER],
            "put": {
                **_admin_operation(
                    "Set the location by hand",
                    {**the_instance, "400": error_response("A field is invalid")},
                ),
                "requestBody": json_body(LOCATION.json_schema()),
            },
            "delete": _admin_operation("Forget the hand-set location", the_instance),
        },
    }
