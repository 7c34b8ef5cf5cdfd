"""OpenAPI paths of the allocation API, derived from the record definitions."""

from __future__ import annotations

from typing import Any

from allocation.records import COLLECTIONS, Collection

BEARER = [{"bearerToken": []}]
ERROR = {"$ref": "#/components/schemas/Error"}
PAGE_PARAMETERS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
]
ITEM_ID = {
    "name": "item_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer"},
}
ID_LIST = {"type": "string", "description": "one id, or several separated by commas"}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": ERROR}},
    }


def _json(description: str, schema: dict | None = None) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _record_schema(collection: Collection, for_update: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {spec.name: spec.json_schema() for spec in collection.fields},
    }
    required = [spec.name for spec in collection.fields if spec.required]
    if required and not for_update:
        schema["required"] = required
    return schema


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def collection_paths(collection: Collection) -> dict[str, Any]:
    """Describe the five CRUD operations of one kind of record."""
    label = collection.label
    unauthorized = _error("No or bad token")
    return {
        f"/api/allocation/{collection.name}": {
            "get": {
                "summary": f"List {collection.name} (admin)",
                "security": BEARER,
                "parameters": PAGE_PARAMETERS,
                "responses": {"200": _json("A page"), "401": unauthorized},
            },
            "post": {
                "summary": f"Create a {label} (admin)",
                "security": BEARER,
                "requestBody": _body(_record_schema(collection, for_update=False)),
                "responses": {
                    "201": _json(f"The {label}"),
                    "400": _error("A field is missing or invalid"),
                    "401": unauthorized,
                    "409": _error("Another record has this name or combination"),
                    "413": _error("The body is too large"),
                },
            },
        },
        f"/api/allocation/{collection.name}/{{item_id}}": {
            "parameters": [ITEM_ID],
            "get": {
                "summary": f"Show a {label} (admin)",
                "security": BEARER,
                "responses": {
                    "200": _json(f"The {label}"),
                    "401": unauthorized,
                    "404": _error("Unknown id"),
                },
            },
            "patch": {
                "summary": f"Change some fields of a {label} (admin)",
                "security": BEARER,
                "requestBody": _body(_record_schema(collection, for_update=True)),
                "responses": {
                    "200": _json(f"The {label}"),
                    "400": _error("A field is invalid"),
                    "401": unauthorized,
                    "404": _error("Unknown id"),
                    "409": _error("Conflicts with another record or with its users"),
                },
            },
            "delete": {
                "summary": f"Delete a {label} nothing uses (admin)",
                "security": BEARER,
                "responses": {
                    "204": {"description": "Deleted"},
                    "401": unauthorized,
                    "404": _error("Unknown id"),
                    "409": _error("Still used by other records"),
                },
            },
        },
    }


def _upload_operation(summary: str) -> dict:
    return {
        "summary": summary,
        "security": BEARER,
        "requestBody": {
            "required": True,
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        },
        "responses": {
            "201": _json(
                "Imported; the batch operation counts lines and lists bad ones",
                {"$ref": "#/components/schemas/BatchOperation"},
            ),
            "400": _error("Not UTF-8, or not a file of this format"),
            "401": _error("No or bad token"),
            "409": _error("Another usage import is still running"),
            "413": _error("The file is too large"),
        },
    }


def allocation_paths() -> dict[str, Any]:
    """Every path of the allocation API."""
    paths: dict[str, Any] = {}
    for collection in COLLECTIONS:
        paths.update(collection_paths(collection))
    paths["/api/allocation/ledger"] = {
        "get": {
            "summary": "Balance of each allocation pool (admin)",
            "security": BEARER,
            "parameters": [
                {"name": name, "in": "query", "schema": ID_LIST}
                for name in ("project_id", "period_id", "resource_pool_id")
            ],
            "responses": {
                "200": _json("allocated, used, remaining, used_percent, exceeded"),
                "400": _error("A query argument is invalid"),
                "401": _error("No or bad token"),
            },
        }
    }
    paths["/api/allocation/allocation-pools/{item_id}/usage"] = {
        "parameters": [ITEM_ID],
        "get": {
            "summary": "An allocation pool's balance and usage per day (admin)",
            "security": BEARER,
            "responses": {
                "200": _json("The ledger line and the days"),
                "401": _error("No or bad token"),
                "404": _error("Unknown id"),
            },
        },
    }
    paths["/api/allocation/changes"] = {
        "get": {
            "summary": "The change log, newest first (admin)",
            "security": BEARER,
            "parameters": [
                {"name": "model", "in": "query", "schema": {"type": "string"}},
                *PAGE_PARAMETERS,
            ],
            "responses": {"200": _json("A page"), "401": _error("No or bad token")},
        }
    }
    paths["/api/allocation/usage/sacct"] = {
        "post": _upload_operation("Import sacct --parsable2 output (admin)")
    }
    paths["/api/allocation/usage/disk"] = {
        "post": _upload_operation("Import disk-usage snapshots (admin)")
    }
    return paths
