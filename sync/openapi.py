"""OpenAPI paths of the sync API.

The bundle's transactions and the producer registration are documented from
the same tables that check them (``sync.wire.bundles``, ``sync.producers``).
"""

from __future__ import annotations

from typing import Any

from sync.models import RESOLUTIONS
from sync.producers import PRODUCER_FIELDS
from sync.wire.bundles import TRANSACTION_FIELDS
from tracker.fields import object_schema
from tracker.openapi import (
    BEARER,
    error_response,
    json_body,
    json_response,
    path_parameter,
)

PRODUCER_ID = path_parameter("producer_id", {"type": "string", "maxLength": 100})
CONFLICT_ID = path_parameter("conflict_id", {"type": "integer", "minimum": 1})
QUERY_TEXT = {"type": "string", "maxLength": 100}
PAGING = [
    {"name": "page", "in": "query", "schema": {"type": "integer"}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "maximum": 1000},
    },
]

TRANSACTION = object_schema(
    TRANSACTION_FIELDS, required=tuple(TRANSACTION_FIELDS), closed=True
)

BUNDLE = object_schema(
    {
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
    required=("manifest", "signature", "transactions"),
    closed=True,
)


def sync_paths() -> dict[str, Any]:
    unauthorized = error_response("No or bad token")
    return {
        "/api/sync/push": {
            "post": {
                "summary": "Push a producer's signed bundle of transactions",
                "description": "Authenticated by the bundle's signature. Answers"
                " with acknowledged_through; sequences already received with the"
                " same hash are counted as duplicates, with another hash listed"
                " under rejected.",
                "requestBody": json_body(BUNDLE),
                "responses": {
                    "200": json_response(
                        "Acknowledged, with cursors and missing ranges"
                    ),
                    "400": error_response("Malformed or altered bundle"),
                    "403": error_response("Unknown producer or bad signature"),
                    "413": error_response("Too many transactions or too large a body"),
                },
            }
        },
        "/api/sync/producers": {
            "get": {
                "summary": "List producers with cursors, lag and problems",
                "security": BEARER,
                "responses": {"200": json_response("Producers"), "401": unauthorized},
            },
            "post": {
                "summary": "Register a producer; returns its credential once",
                "security": BEARER,
                "requestBody": json_body(PRODUCER_FIELDS.json_schema()),
                "responses": {
                    "201": json_response("Registered"),
                    "400": error_response("Invalid field"),
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
                    "200": json_response("Producer"),
                    "401": unauthorized,
                    "404": error_response("No such producer"),
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
                        "schema": {"type": "string", "enum": ["true", "false"]},
                        "description": 'true or false, or a JSON body {"active":'
                        " true|false}; both, if they differ, are refused",
                    },
                ],
                "requestBody": {
                    **json_body(
                        {
                            "type": "object",
                            "properties": {"active": {"type": "boolean"}},
                            "additionalProperties": False,
                        }
                    ),
                    "required": False,
                },
                "responses": {
                    "200": json_response("Producer"),
                    "400": error_response("Invalid field"),
                    "401": unauthorized,
                    "404": error_response("No such producer"),
                },
            }
        },
        "/api/sync/reapply": {
            "post": {
                "summary": "Re-apply held and quarantined transactions whose"
                " cause is fixed",
                "description": "Held transactions (a model not on SYNC_MODELS)"
                " are applied once their model is listed; quarantined ones once"
                " their payload can be opened. Answers released, applied,"
                " parked, still_held and still_quarantined.",
                "security": BEARER,
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string"}}
                    for name in ("producer", "model")
                ]
                + [
                    {
                        "name": "held_only",
                        "in": "query",
                        "schema": {"type": "boolean"},
                    }
                ],
                "requestBody": {
                    **json_body(
                        {
                            "type": "object",
                            "description": "the same filters, instead of the query",
                            "properties": {
                                "producer": {"type": "string", "maxLength": 100},
                                "model": {"type": "string", "maxLength": 100},
                                "held_only": {"type": "boolean"},
                            },
                            "additionalProperties": False,
                        }
                    ),
                    "required": False,
                },
                "responses": {
                    "200": json_response("What was re-applied"),
                    "400": error_response("Invalid field"),
                    "401": unauthorized,
                    "404": error_response("No such producer"),
                },
            }
        },
        "/api/sync/position": {
            "post": {
                "summary": "The highest sequence the server holds for a device",
                "description": "Signed by the device's current credential"
                " (signature of 'sync-position:<producer>'); a reinstalled"
                " device continues after highest_received (flask sync"
                " recover).",
                "requestBody": json_body(
                    {
                        "type": "object",
                        "properties": {
                            "producer": {"type": "string", "maxLength": 100},
                            "signature": {"type": "string"},
                            "sequences": {
                                "type": "array",
                                "maxItems": 1000,
                                "items": {"type": "integer", "minimum": 1},
                                "description": "numbers the device used before"
                                " recovering: the answer's hashes gives the hash"
                                " the server holds under each",
                            },
                        },
                        "required": ["producer", "signature"],
                        "additionalProperties": False,
                    }
                ),
                "responses": {
                    "200": json_response(
                        "producer, received_through, highest_received,"
                        " next_sequence, and hashes (sequence: hash) when asked"
                    ),
                    "400": error_response("Invalid field"),
                    "403": error_response("Unknown producer or bad signature"),
                },
            }
        },
        "/api/sync/producer-keys": {
            "get": {
                "summary": "The active producers' public keys, for a middleman",
                "security": BEARER,
                "responses": {
                    "200": json_response("items of producer_id and public_key"),
                    "401": unauthorized,
                },
            }
        },
        "/api/sync/producers/{producer_id}/credential": {
            "post": {
                "summary": "Re-provision a producer: a new credential, the"
                " producer enabled, its history kept",
                "description": "The old credential is retired: it still signs"
                " files the device made before, through the last sequence before"
                " the device first speaks with the new one (a push, or a position"
                " request). void_old_key (or a disabled producer: a lost device)"
                " voids it at once.",
                "security": BEARER,
                "parameters": [PRODUCER_ID],
                "requestBody": json_body(
                    {
                        "type": "object",
                        "properties": {
                            "public_key": {"type": "string"},
                            "void_old_key": {"type": "boolean", "default": False},
                        },
                        "additionalProperties": False,
                    }
                ),
                "responses": {
                    "200": json_response("Producer, with its credential once"),
                    "400": error_response("Invalid field"),
                    "401": unauthorized,
                    "404": error_response("No such producer"),
                },
            }
        },
        "/api/sync/records": {
            "get": {
                "summary": "Synchronised records, paginated",
                "description": "Each item: model, natural_key, fields (but"
                " those that point to a parent), parents (each such field's"
                " parent by model and natural key), version, schema_version,"
                " producer (the last), sequence, created, updated, deleted"
                " (true for a deleted record, a tombstone), deleted_at. In"
                " update order, then by record. To poll, pass the answer's"
                " next as after= until items is empty: many records share one"
                " updated (one apply run), and the cursor never skips or"
                " repeats one; a record changed since comes again, later.",
                "security": BEARER,
                "parameters": [
                    {"name": "model", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "records updated (or deleted) after this"
                        " time, exclusive; prefer after= to poll",
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "an earlier answer's next: the records"
                        " after the last one it gave",
                    },
                    {
                        "name": "include_deleted",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "list deleted records too; the default"
                        " with since= or after=, not without",
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "schema": {"type": "string", "maxLength": 200},
                        "description": "text in a value of the natural key or"
                        " of a field (not in field names), case-insensitive,"
                        " no wildcards",
                    },
                    *PAGING,
                ],
                "responses": {
                    "200": json_response(
                        "{items, page, per_page, total, pages, next}: next is the"
                        " cursor after this page's last item (null when empty)"
                    ),
                    "400": error_response("Invalid field"),
                    "401": unauthorized,
                },
            }
        },
        "/api/sync/conflicts": {
            "get": {
                "summary": "Conflicts: one field changed concurrently by two"
                " producers, paginated",
                "description": "Two changes are concurrent when each was made"
                " (its device's clock) before the other was applied on the server."
                " The one applied later is in the record. Each item: id, model,"
                " natural_key, field, applied and other (value, parent, producer,"
                " sequence, made, applied: when it was applied here, null for an"
                " update a delete refused until it is restored), detected, status"
                " (open, resolved), resolution, resolved, resolved_by. Newest"
                " first.",
                "security": BEARER,
                "parameters": [
                    {"name": "model", "in": "query", "schema": QUERY_TEXT},
                    {
                        "name": "producer",
                        "in": "query",
                        "schema": QUERY_TEXT,
                        "description": "a producer on either side",
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "type": "string",
                            "enum": ["open", "resolved", "all"],
                            "default": "open",
                        },
                    },
                    *PAGING,
                ],
                "responses": {
                    "200": json_response("{items, page, per_page, total, pages}"),
                    "400": error_response("Invalid field"),
                    "401": unauthorized,
                    "404": error_response("No such producer"),
                },
            }
        },
        "/api/sync/conflicts/{conflict_id}/resolve": {
            "post": {
                "summary": "Resolve a conflict",
                "description": "keep_applied leaves the record as it is;"
                " take_other puts the other value (and its parent) in the record,"
                " refused with 409 if the field changed again since;"
                " mark_resolved only closes the conflict. A conflict of kind"
                " deleted (an update of a record another producer deleted):"
                " keep_applied keeps it deleted, take_other restores it with"
                " the update's fields.",
                "security": BEARER,
                "parameters": [CONFLICT_ID],
                "requestBody": json_body(
                    {
                        "type": "object",
                        "properties": {
                            "action": {"type": "string", "enum": list(RESOLUTIONS)}
                        },
                        "required": ["action"],
                        "additionalProperties": False,
                    }
                ),
                "responses": {
                    "200": json_response("The conflict, resolved"),
                    "400": error_response("Invalid field"),
                    "401": unauthorized,
                    "404": error_response("No such conflict"),
                    "409": error_response(
                        "Already resolved, or the record changed since"
                    ),
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
                    "200": json_response("Imported, or already imported"),
                    "400": error_response("Truncated, altered or malformed file"),
                    "401": unauthorized,
                    "403": error_response("Unknown producer or bad signature"),
                    "413": error_response("Too large"),
                },
            }
        },
    }
