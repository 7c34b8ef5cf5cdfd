"""The OpenAPI document at /api/openapi.json, assembled from each part's paths."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify

bp = Blueprint("openapi_api", __name__)
EXTENSION_KEY = "tracker.openapi_paths"


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
        },
    }


def _json(schema_ref: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": schema_ref}}},
    }


BEARER = [{"bearerToken": []}]

INSTANCE_REGISTRATION = {
    "type": "object",
    "required": ["url", "contact", "email"],
    "properties": {
        "url": {"type": "string", "format": "uri", "maxLength": 2000},
        "contact": {"type": "string", "maxLength": 255},
        "email": {"type": "string", "format": "email", "maxLength": 254},
        "organisation": {"type": "string", "maxLength": 255},
        "organization": {"type": "string", "maxLength": 255},
    },
    "description": (
        "Either organisation or organization is required. Extra keys are ignored."
    ),
}

INSTANCE_UPDATE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": ["boolean", "null"]},
        "url": {"type": ["string", "null"], "format": "uri", "maxLength": 2000},
        "contact": {"type": ["string", "null"], "maxLength": 255},
        "email": {"type": ["string", "null"], "format": "email", "maxLength": 254},
        "organisation": {"type": ["string", "null"], "maxLength": 255},
        "organization": {"type": ["string", "null"], "maxLength": 255},
    },
    "description": "null leaves a field as it is.",
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

PAGE_PARAMETERS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
]

UUID_PARAMETER = {
    "name": "uuid",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}


def _registration_operation() -> dict:
    return {
        "summary": "Register an instance",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/InstanceRegistration"}
                }
            },
        },
        "responses": {
            "201": {
                "description": "Registered; the uuid is the instance's credential",
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/InstanceSummary"}
                    }
                },
            },
            "400": _error("A field is missing or invalid"),
            "413": _error("The body is too large"),
        },
    }


def _instance_item_operations() -> dict:
    return {
        "parameters": [UUID_PARAMETER],
        "get": {
            "summary": "Read an instance's summary",
            "responses": {
                "200": _json("#/components/schemas/InstanceSummary", "The summary"),
                "404": _error("Unknown uuid: register again"),
            },
        },
        "patch": {
            "summary": "Update some of an instance's fields",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/InstanceUpdate"}
                    }
                },
            },
            "responses": {
                "200": _json("#/components/schemas/InstanceSummary", "The summary"),
                "400": _error("Unexpected data or an invalid value"),
                "404": _error("Unknown uuid: register again"),
                "413": _error("The body is too large"),
            },
        },
    }


def instance_paths() -> dict:
    registration = {"post": _registration_operation()}
    return {
        "/api/instance/": registration,
        "/api/instance": registration,
        "/instance/": registration,
        "/instance": registration,
        "/api/instance/{uuid}": _instance_item_operations(),
        "/instance/{uuid}": _instance_item_operations(),
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
                    "200": _json("#/components/schemas/InstancePage", "A page"),
                    "400": _error("A query argument is invalid"),
                    "401": _error("No or bad token"),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "The OpenAPI document"}},
            }
        },
        "/api/instances/{uuid}": {
            "parameters": [UUID_PARAMETER],
            "delete": {
                "summary": "Delete an instance (admin)",
                "security": BEARER,
                "responses": {
                    "204": {"description": "Deleted"},
                    "401": _error("No or bad token"),
                    "404": _error("Unknown uuid"),
                },
            },
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
    },
}


def _crawl_operation(summary: str) -> dict:
    return {
        "summary": summary,
        "security": BEARER,
        "responses": {
            "202": _json("#/components/schemas/BatchOperation", "Started"),
            "401": _error("No or bad token"),
            "404": _error("Unknown uuid"),
            "409": _error("A crawl of this scope is still running, or not crawlable"),
            "503": _error("The task queue is unreachable"),
        },
    }


def crawl_paths() -> dict:
    return {
        "/api/instances/crawl": {
            "post": _crawl_operation("Crawl every enabled instance in the background")
        },
        "/api/instances/{uuid}/crawl": {
            "parameters": [UUID_PARAMETER],
            "post": _crawl_operation("Crawl one instance in the background"),
        },
        "/api/instances/{uuid}/approve": {
            "parameters": [UUID_PARAMETER],
            "post": {
                "summary": "Accept an instance for crawling",
                "security": BEARER,
                "responses": {
                    "200": {"description": "The instance"},
                    "401": _error("No or bad token"),
                    "404": _error("Unknown uuid"),
                },
            },
        },
        "/api/instances/{uuid}/location": {
            "parameters": [UUID_PARAMETER],
            "put": {
                "summary": "Set the location by hand",
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["latitude", "longitude", "country_code"],
                                "additionalProperties": False,
                                "properties": {
                                    "latitude": {"type": "number"},
                                    "longitude": {"type": "number"},
                                    "country_code": {"type": "string"},
                                    "city": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "The instance"},
                    "400": _error("A field is invalid"),
                    "401": _error("No or bad token"),
                    "404": _error("Unknown uuid"),
                },
            },
            "delete": {
                "summary": "Forget the hand-set location",
                "security": BEARER,
                "responses": {
                    "200": {"description": "The instance"},
                    "401": _error("No or bad token"),
                    "404": _error("Unknown uuid"),
                },
            },
        },
        "/api/batch-operations": {
            "get": {
                "summary": "List batch operations, newest first",
                "security": BEARER,
                "parameters": PAGE_PARAMETERS,
                "responses": {
                    "200": {"description": "A page of batch operations"},
                    "401": _error("No or bad token"),
                },
            }
        },
        "/api/batch-operations/{operation_id}": {
            "parameters": [
                {
                    "name": "operation_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                }
            ],
            "get": {
                "summary": "Show a batch operation's status and progress",
                "security": BEARER,
                "responses": {
                    "200": _json(
                        "#/components/schemas/BatchOperation", "The operation"
                    ),
                    "401": _error("No or bad token"),
                    "404": _error("Unknown id"),
                },
            },
        },
    }


def document(app: Flask) -> dict:
    """Return the OpenAPI 3.1 document for every registered part of the API."""
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{app.config['APP_NAME']} API", "version": "1"},
        "paths": dict(sorted(app.extensions[EXTENSION_KEY].items())),
        "components": {
            "securitySchemes": {"bearerToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                    },
                },
                "BatchOperation": BATCH_OPERATION,
                "InstanceRegistration": INSTANCE_REGISTRATION,
                "InstanceUpdate": INSTANCE_UPDATE,
                "InstanceSummary": INSTANCE_SUMMARY,
                "InstancePage": {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/InstanceSummary"},
                        },
                        "page": {"type": "integer"},
                        "per_page": {"type": "integer"},
                        "total": {"type": "integer"},
                        "pages": {"type": "integer"},
                    },
                },
            },
        },
    }


def add_paths(app: Flask, paths: dict) -> None:
    """Let a part of the application describe its endpoints."""
    app.extensions.setdefault(EXTENSION_KEY, {}).update(paths)


@bp.get("/api/openapi.json")
def openapi_document():
    """Answer the OpenAPI document."""
    return jsonify(document(current_app))


def init_app(app: Flask) -> None:
    add_paths(app, instance_paths())
    add_paths(app, crawl_paths())
    app.register_blueprint(bp)
