"""The OpenAPI document at /api/openapi.json, assembled from each part's paths.

Each part of the application describes its own endpoints with
:func:`add_paths` from its ``init_app``, using the helpers here for what every
part shares: error answers, JSON bodies, pagination and the Bearer token.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

from tracker.auth.roles import PUBLIC, blueprint_access

bp = Blueprint("openapi_api", __name__)
blueprint_access(bp, read=PUBLIC, write=PUBLIC)
EXTENSION_KEY = "tracker.openapi"

BEARER = [{"bearerToken": []}]
PAGE_PARAMETERS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
]

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "field": {"type": "string"},
    },
}

BATCH_OPERATION = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "operation_type": {"type": "string"},
        "scope": {"type": "string"},
        "status": {"enum": ["unprocessed", "running", "finished"]},
        "result": {
            "enum": ["not-available", "successful", "partial", "failed", "skipped"]
        },
        "progress": {
            "type": "object",
            "properties": {
                name: {"type": "integer"}
                for name in ("total", "done", "failed", "skipped")
            },
        },
        "created": {"type": "string", "format": "date-time"},
        "started": {"type": ["string", "null"], "format": "date-time"},
        "finished": {"type": ["string", "null"], "format": "date-time"},
        "heartbeat": {"type": ["string", "null"], "format": "date-time"},
        "output": {"type": "object"},
        "error": {"type": "string"},
        "fault": {"type": "string"},
        "notice": {"type": "string"},
    },
}


def ref(name: str) -> dict[str, str]:
    """A reference to a schema under ``components/schemas``."""
    return {"$ref": f"#/components/schemas/{name}"}


def error_response(description: str) -> dict[str, Any]:
    """A 4xx or 5xx answer with the JSON error body."""
    return json_response(description, ref("Error"))


def json_response(
    description: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An answer with a JSON body (any object unless ``schema`` says more)."""
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """A required JSON request body."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def path_parameter(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter taken from the path."""
    return {"name": name, "in": "path", "required": True, "schema": schema}


def page_of(items: dict[str, Any]) -> dict[str, Any]:
    """The schema of one page of a list: ``{items, page, per_page, total, pages}``."""
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": items},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "total": {"type": "integer"},
            "pages": {"type": "integer"},
        },
    }


def core_paths() -> dict[str, Any]:
    """The paths the application serves whatever its parts: this document and
    the batch operations."""
    unauthorized = error_response("No or bad token")
    return {
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "The OpenAPI document"}},
            }
        },
        "/api/batch-operations": {
            "get": {
                "summary": "List batch operations, newest first",
                "security": BEARER,
                "parameters": PAGE_PARAMETERS,
                "responses": {
                    "200": {"description": "A page of batch operations"},
                    "401": unauthorized,
                },
            }
        },
        "/api/batch-operations/{operation_id}": {
            "parameters": [path_parameter("operation_id", {"type": "integer"})],
            "get": {
                "summary": "Show a batch operation's status and progress",
                "security": BEARER,
                "responses": {
                    "200": json_response("The operation", ref("BatchOperation")),
                    "401": unauthorized,
                    "404": error_response("Unknown id"),
                },
            },
        },
    }


def _described(app: Flask) -> dict[str, dict[str, Any]]:
    return app.extensions.setdefault(EXTENSION_KEY, {"paths": {}, "schemas": {}})


def add_paths(
    app: Flask, paths: dict[str, Any], schemas: dict[str, Any] | None = None
) -> None:
    """Let a part of the application describe its endpoints and their schemas."""
    described = _described(app)
    described["paths"].update(paths)
    described["schemas"].update(schemas or {})


def document(app: Flask) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document for every registered part of the API."""
    described = _described(app)
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{app.config['APP_NAME']} API", "version": "1"},
        "paths": dict(sorted(described["paths"].items())),
        "components": {
            "securitySchemes": {"bearerToken": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(described["schemas"].items())),
        },
    }


@bp.get("/api/openapi.json")
def openapi_document():
    """Answer the OpenAPI document."""
    return jsonify(document(current_app))


def init_app(app: Flask) -> None:
    """Serve the document, with the paths and schemas every part shares."""
    add_paths(app, core_paths(), {"Error": ERROR, "BatchOperation": BATCH_OPERATION})
    app.register_blueprint(bp)
