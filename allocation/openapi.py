"""OpenAPI paths of the allocation API, derived from the record definitions."""

from __future__ import annotations

from typing import Any

from allocation.records import COLLECTIONS, Collection
from tracker.fields import object_schema
from tracker.openapi import (
    BEARER,
    PAGE_PARAMETERS,
    error_response,
    json_body,
    json_response,
    path_parameter,
    ref,
)

ITEM_ID = path_parameter("item_id", {"type": "integer"})
ID_LIST = {"type": "string", "description": "one id, or several separated by commas"}


def _record_schema(collection: Collection, for_update: bool) -> dict[str, Any]:
    required = [spec.name for spec in collection.fields if spec.required]
    return object_schema(
        {spec.name: spec.json_schema() for spec in collection.fields},
        required=() if for_update else required,
        closed=True,
    )


def collection_paths(collection: Collection) -> dict[str, Any]:
    """Describe the five CRUD operations of one kind of record."""
    label = collection.label
    unauthorized = error_response("No or bad token")
    return {
        f"/api/allocation/{collection.name}": {
            "get": {
                "summary": f"List {collection.name} (admin)",
                "security": BEARER,
                "parameters": PAGE_PARAMETERS,
                "responses": {"200": json_response("A page"), "401": unauthorized},
            },
            "post": {
                "summary": f"Create a {label} (admin)",
                "security": BEARER,
                "requestBody": json_body(_record_schema(collection, for_update=False)),
                "responses": {
                    "201": json_response(f"The {label}"),
                    "400": error_response("A field is missing or invalid"),
                    "401": unauthorized,
                    "409": error_response(
                        "Another record has this name or combination"
                    ),
                    "413": error_response("The body is too large"),
                },
            },
        },
        f"/api/allocation/{collection.name}/{{item_id}}": {
            "parameters": [ITEM_ID],
            "get": {
                "summary": f"Show a {label} (admin)",
                "security": BEARER,
                "responses": {
                    "200": json_response(f"The {label}"),
                    "401": unauthorized,
                    "404": error_response("Unknown id"),
                },
            },
            "patch": {
                "summary": f"Change some fields of a {label} (admin)",
                "security": BEARER,
                "requestBody": json_body(_record_schema(collection, for_update=True)),
                "responses": {
                    "200": json_response(f"The {label}"),
                    "400": error_response("A field is invalid"),
                    "401": unauthorized,
                    "404": error_response("Unknown id"),
                    "409": error_response(
                        "Conflicts with another record or with its users"
                    ),
                },
            },
            "delete": {
                "summary": f"Delete a {label} nothing uses (admin)",
                "security": BEARER,
                "responses": {
                    "204": {"description": "Deleted"},
                    "401": unauthorized,
                    "404": error_response("Unknown id"),
                    "409": error_response("Still used by other records"),
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
            "201": json_response(
                "Imported; the batch operation counts lines and lists bad ones",
                ref("BatchOperation"),
            ),
            "400": error_response("Not UTF-8, or not a file of this format"),
            "401": error_response("No or bad token"),
            "409": error_response("Another usage import is still running"),
            "413": error_response("The file is too large"),
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
                *(
                    {"name": name, "in": "query", "schema": ID_LIST}
                    for name in ("project_id", "period_id", "resource_pool_id")
                ),
                {
                    "name": "period",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "period names, comma-separated (an unknown"
                    " name is refused)",
                },
            ],
            "responses": {
                "200": json_response(
                    "allocated, used, remaining, used_percent, exceeded"
                ),
                "400": error_response("A query argument is invalid"),
                "401": error_response("No or bad token"),
            },
        }
    }
    paths["/api/allocation/allocation-pools/{item_id}/usage"] = {
        "parameters": [ITEM_ID],
        "get": {
            "summary": "An allocation pool's balance and usage per day (admin)",
            "security": BEARER,
            "responses": {
                "200": json_response("The ledger line and the days"),
                "401": error_response("No or bad token"),
                "404": error_response("Unknown id"),
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
            "responses": {
                "200": json_response("A page"),
                "401": error_response("No or bad token"),
            },
        }
    }
    sacct = _upload_operation("Import sacct --parsable2 output (admin)")
    sacct["parameters"] = [
        {
            "name": "format",
            "in": "query",
            "description": "The --format list given to sacct (for --noheader output)",
            "schema": {"type": "string", "maxLength": 2000},
        },
        {
            "name": "delimiter",
            "in": "query",
            "description": "sacct's --delimiter (default |)",
            "schema": {"type": "string", "minLength": 1, "maxLength": 8},
        },
        {
            "name": "machine",
            "in": "query",
            "description": "The machine of a file with no Cluster column",
            "schema": {"type": "string", "maxLength": 100},
        },
    ]
    paths["/api/allocation/usage/sacct"] = {"post": sacct}
    paths["/api/allocation/usage/disk"] = {
        "post": _upload_operation("Import disk-usage snapshots (admin)")
    }
    return paths
