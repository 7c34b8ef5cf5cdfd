"""OpenAPI paths of the sync API."""

from __future__ import annotations

from typing import Any

BEARER = [{"bearerToken": []}]
ERROR = {"$ref": "#/components/schemas/Error"}
PRODUCER_ID = {
    "name": "producer_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "maxLength": 100},
}

TRANSACTION = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "producer",
        "sequence",
        "model",
        "natural_key",
        "action",
        "schema_version",
        "payload",
        "encrypted",
        "hash",
        "created",
    ],
    "properties": {
        "producer": {"type": "string", "maxLength": 100},
        "sequence": {"type": "integer", "minimum": 1},
        "model": {"type": "string", "maxLength": 100},
        "natural_key": {"type": "array", "minItems": 1},
        "action": {"enum": ["insert", "update", "delete"]},
        "schema_version": {"type": "integer", "minimum": 1},
        "payload": {
            "type": "string",
            "description": "canonical JSON {schema_version, fields, parents,"
            " previous_natural_key?}, or sealed with AES-256-GCM when encrypted",
        },
        "encrypted": {"type": "boolean"},
        "hash": {"type": "string", "description": "SHA-256 of the content"},
        "created": {"type": "string", "format": "date-time"},
    },
}

BUNDLE = {
    "type": "object",
    "required": ["manifest", "signature", "transactions"],
    "properties": {
        "manifest": {
            "type": "object",
            "description": "format, producer, first_sequence, last_sequence,"
            " count, models (count per model), sha256 of the transactions'"
            " canonical JSON lines, created",
        },
        "signature": {
            "type": "string",
            "description": "Ed25519 signature of the canonical manifest by the"
            " producer's credential",
        },
        "transactions": {"type": "array", "items": TRANSACTION},
    },
}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": ERROR}},
    }


def _json(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }


def sync_paths() -> dict[str, Any]:
    unauthorized = _error("No or bad token")
    return {
        "/api/sync/push": {
            "post": {
                "summary": "Push a producer's signed bundle of transactions",
                "description": "Authenticated by the bundle's signature. Answers"
                " with acknowledged_through; sequences already received with the"
                " same hash are counted as duplicates, with another hash listed"
                " under rejected.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": BUNDLE}},
                },
                "responses": {
                    "200": _json("Acknowledged, with cursors and missing ranges"),
                    "400": _error("Malformed or altered bundle"),
                    "403": _error("Unknown producer or bad signature"),
                    "413": _error("Too many transactions or too large a body"),
                },
            }
        },
        "/api/sync/producers": {
            "get": {
                "summary": "List producers with cursors, lag and problems",
                "security": BEARER,
                "responses": {"200": _json("Producers"), "401": unauthorized},
            },
            "post": {
                "summary": "Register a producer; returns its credential once",
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["producer_id"],
                                "properties": {
                                    "producer_id": {"type": "string"},
                                    "description": {"type": "string"},
                                    "public_key": {"type": "string"},
                                    "encrypt": {"type": "boolean"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json("Registered"),
                    "400": _error("Invalid field"),
                    "401": unauthorized,
                },
            },
        },
        "/api/sync/producers/{producer_id}": {
            "get": {
                "summary": "A producer with its parked, quarantined and rejected"
                " transactions",
                "security": BEARER,
                "parameters": [PRODUCER_ID],
                "responses": {
                    "200": _json("Producer"),
                    "401": unauthorized,
                    "404": _error("No such producer"),
                },
            }
        },
        "/api/sync/producers/{producer_id}/active": {
            "post": {
                "summary": "Enable or disable a producer",
                "security": BEARER,
                "parameters": [
                    PRODUCER_ID,
                    {
                        "name": "active",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "boolean"},
                    },
                ],
                "responses": {
                    "200": _json("Producer"),
                    "400": _error("Invalid field"),
                    "401": unauthorized,
                    "404": _error("No such producer"),
                },
            }
        },
        "/api/sync/files": {
            "post": {
                "summary": "Import a carried bundle file (the raw gzip body)",
                "security": BEARER,
                "parameters": [
                    {"name": "name", "in": "query", "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/gzip": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                "responses": {
                    "200": _json("Imported, or already imported"),
                    "400": _error("Truncated, altered or malformed file"),
                    "401": unauthorized,
                    "403": _error("Unknown producer or bad signature"),
                    "413": _error("Too large"),
                },
            }
        },
    }
