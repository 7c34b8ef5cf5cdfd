"""Bundles: the signed unit in which transactions travel, over REST or as a file.

A bundle is a manifest, the producer's signature of it, and a run of one
producer's transactions with contiguous sequence numbers::

    {"manifest": {"format": ..., "producer": "laptop-7", "first_sequence": 1,
                  "last_sequence": 500, "count": 500, "models": {...},
                  "sha256": ..., "created": ...},
     "signature": ..., "transactions": [{...}, ...]}

``sha256`` covers the transactions' canonical JSON lines, and the signature
covers the manifest, so any change to a transaction, its order or its number
breaks the bundle. A file is the same thing as gzip-compressed JSON lines: the
manifest and signature on the first line, then one transaction per line.
Middlemen store and forward bundles unchanged; the server verifies them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sync.wire import signing
from sync.wire.bounded import JsonRefused, load_bounded
from sync.wire.payloads import canonical_json, transaction_hash

FORMAT = "instance-tracker-sync/1"
ACTIONS = ("insert", "update", "delete")
MAX_ID_LENGTH = 100
MAX_KEY_LENGTH = 500
MAX_MODEL_LENGTH = 100
MAX_SCHEMA_VERSION = 2**31 - 1
HASH_LENGTH = 64
# Bounds of what a bundle's JSON may build: a wire transaction is a flat object
# whose natural key (at most 500 characters) holds at most 250 values.
MAX_NESTING = 16
VALUES_PER_TRANSACTION = 300
MANIFEST_VALUES = 10_000
MAX_LINE_BYTES = 16 * 1024 * 1024
# A file holds at most what one export writes (sync.client's export limit).
MAX_FILE_TRANSACTIONS = 100_000
# Each field of a wire transaction as JSON Schema: check_transaction enforces
# it, and the server's OpenAPI document publishes it.
TRANSACTION_FIELDS: dict[str, dict[str, Any]] = {
    "producer": {"type": "string", "maxLength": MAX_ID_LENGTH},
    "sequence": {"type": "integer", "minimum": 1},
    "model": {"type": "string", "minLength": 1, "maxLength": MAX_MODEL_LENGTH},
    "natural_key": {
        "type": "array",
        "minItems": 1,
        "description": f"at most {MAX_KEY_LENGTH} characters as canonical JSON",
    },
    "action": {"type": "string", "enum": list(ACTIONS)},
    "schema_version": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_SCHEMA_VERSION,
    },
    "payload": {
        "type": "string",
        "description": "canonical JSON {schema_version, fields (an update:"
        " those it changes), parents, previous_natural_key?, local_fields?},"
        " or sealed with AES-256-GCM when encrypted",
    },
    "encrypted": {"type": "boolean"},
    "hash": {
        "type": "string",
        "minLength": HASH_LENGTH,
        "maxLength": HASH_LENGTH,
        "description": "SHA-256 of the content",
    },
    "created": {"type": "string", "format": "date-time"},
}
PYTHON_TYPES = {"string": str, "integer": int, "array": list, "boolean": bool}
FIELD_NAMES = frozenset(TRANSACTION_FIELDS)
FIELD_KINDS = tuple(
    (name, PYTHON_TYPES[schema["type"]]) for name, schema in TRANSACTION_FIELDS.items()
)


class BundleError(ValueError):
    """A bundle or file is malformed, incomplete or altered; ``field`` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BundleTooLarge(BundleError):
    """A bundle or file goes past a size bound (the API answers 413)."""


def load_pushed_bundle(stream: IO[bytes] | bytes, max_batch: int) -> Any:
    """Parse a pushed bundle's JSON as a stream: at most ``max_batch``
    transactions, nesting and values bounded. Raises JsonRefused."""
    return load_bounded(
        stream,
        max_depth=MAX_NESTING,
        max_values=VALUES_PER_TRANSACTION * max_batch + MANIFEST_VALUES,
        limits={"transactions": max_batch},
    )


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    signature: str
    transactions: list[dict[str, Any]]

    @property
    def producer(self) -> str:
        return self.manifest["producer"]

    @property
    def first_sequence(self) -> int:
        return self.manifest["first_sequence"]

    @property
    def last_sequence(self) -> int:
        return self.manifest["last_sequence"]

    @property
    def digest(self) -> str:
        """The SHA-256 of the transactions, which carry producer and sequence."""
        return self.manifest["sha256"]

    def as_json(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "signature": self.signature,
            "transactions": self.transactions,
        }

    def signed_by(self, public_key: str) -> bool:
        """Whether the holder of ``public_key`` signed it."""
        return signing.verify(public_key, _signed_bytes(self.manifest), self.signature)

    def verify_signature(self, public_key: str) -> None:
        """Raise BundleError unless the producer holding ``public_key`` signed it."""
        if not self.signed_by(public_key):
            raise BundleError(
                "signature",
                f"the bundle is not signed by producer {self.producer!r} with its"
                " credential",
            )


def transaction_wire(row: Any) -> dict[str, Any]:
    """The wire form of an outgoing transaction row."""
    return {
        "producer": row.producer_id,
        "sequence": row.sequence,
        "model": row.model,
        "natural_key": json.loads(row.natural_key),
        "action": row.action,
        "schema_version": row.schema_version,
        "payload": row.payload,
        "encrypted": bool(row.encrypted),
        "hash": row.hash,
        "created": row.created.astimezone(UTC).isoformat(),
    }


def plain_transaction(
    producer: str,
    sequence: int,
    model: str,
    natural_key: list[Any],
    action: str,
    payload: dict[str, Any],
    created: datetime,
) -> dict[str, Any]:
    """The wire form of an unencrypted transaction built from its parts, for
    producers that record changes without SyncMixin (and for tests)."""
    return {
        "producer": producer,
        "sequence": sequence,
        "model": model,
        "natural_key": natural_key,
        "action": action,
        "schema_version": payload["schema_version"],
        "payload": canonical_json(payload),
        "encrypted": False,
        "hash": transaction_hash(
            producer, sequence, model, natural_key, action, payload
        ),
        "created": created.astimezone(UTC).isoformat(),
    }


def _lines_digest(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _signed_bytes(manifest: dict[str, Any]) -> bytes:
    return canonical_json(manifest).encode()


def make_bundle(transactions: list[dict[str, Any]], credential: str) -> Bundle:
    """Sign a contiguous run of one producer's wire transactions."""
    if not transactions:
        raise ValueError("a bundle holds at least one transaction")
    manifest = {
        "format": FORMAT,
        "producer": transactions[0]["producer"],
        "first_sequence": transactions[0]["sequence"],
        "last_sequence": transactions[-1]["sequence"],
        "count": len(transactions),
        "models": dict(sorted(Counter(t["model"] for t in transactions).items())),
        "sha256": _lines_digest(canonical_json(t) for t in transactions),
        "created": datetime.now(UTC).isoformat(),
    }
    signature = signing.sign(credential, _signed_bytes(manifest))
    return check_bundle(Bundle(manifest, signature, list(transactions)))


def _check_manifest(manifest: Any) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise BundleError("manifest", "must be a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError("manifest.format", f"must be {FORMAT!r}")
    producer = manifest.get("producer")
    if not isinstance(producer, str) or not 0 < len(producer) <= MAX_ID_LENGTH:
        raise BundleError("manifest.producer", "must be a text of 1 to 100 characters")
    for name in ("first_sequence", "last_sequence", "count"):
        value = manifest.get(name)
        if type(value) is not int or not 0 < value < 2**62:
            raise BundleError(f"manifest.{name}", "must be a positive integer")
    if manifest["last_sequence"] - manifest["first_sequence"] + 1 != manifest["count"]:
        raise BundleError(
            "manifest.count", "does not match the manifest's sequence range"
        )
    models = manifest.get("models")
    if not isinstance(models, dict) or not all(
        isinstance(name, str) and type(count) is int for name, count in models.items()
    ):
        raise BundleError("manifest.models", "must map model names to counts")
    digest = manifest.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise BundleError("manifest.sha256", "must be a SHA-256 hex digest")
    if not isinstance(manifest.get("created"), str):
        raise BundleError("manifest.created", "must be an ISO 8601 time")
    return manifest


def check_transaction(index: int, transaction: Any) -> dict[str, Any]:
    """Check one wire transaction's shape; raise BundleError naming the field."""

    def refuse(name: str | None, message: str) -> BundleError:
        where = f"transactions[{index}]"
        return BundleError(f"{where}.{name}" if name else where, message)

    if not isinstance(transaction, dict):
        raise refuse(None, "must be a JSON object")
    if not transaction.keys() <= FIELD_NAMES:
        unknown = sorted(set(transaction) - FIELD_NAMES)[0]
        raise refuse(unknown, "is not a known field")
    for name, kind in FIELD_KINDS:
        # bool is an int in Python: compare types exactly.
        if type(transaction.get(name)) is not kind:
            raise refuse(name, f"must be a {kind.__name__}")
    if transaction["action"] not in ACTIONS:
        raise refuse("action", "must be insert, update or delete")
    if not 0 < len(transaction["model"]) <= MAX_MODEL_LENGTH:
        raise refuse("model", "must be 1 to 100 characters")
    if not transaction["natural_key"]:
        raise refuse("natural_key", "must not be empty")
    if len(canonical_json(transaction["natural_key"])) > MAX_KEY_LENGTH:
        raise refuse("natural_key", "is longer than 500 characters")
    if not 0 < transaction["schema_version"] <= MAX_SCHEMA_VERSION:
        raise refuse("schema_version", "must be a positive integer")
    if len(transaction["hash"]) != HASH_LENGTH:
        raise refuse("hash", "must be a SHA-256 hex digest")
    return transaction


def check_bundle(bundle: Bundle, read_digest: str | None = None) -> Bundle:
    """Check that the transactions are exactly those the manifest describes.

    ``read_digest`` is the SHA-256 of the lines a file's transactions were read
    from, each already checked: when it is the manifest's, those lines were the
    canonical ones signed, and they need not be written again to compare."""
    manifest = _check_manifest(bundle.manifest)
    if not isinstance(bundle.signature, str) or not bundle.signature:
        raise BundleError("signature", "is missing")
    if len(bundle.transactions) != manifest["count"]:
        raise BundleError(
            "transactions",
            f"holds {len(bundle.transactions)} transactions where the manifest"
            f" announces {manifest['count']}: the bundle is incomplete",
        )
    expected = manifest["first_sequence"]
    for index, transaction in enumerate(bundle.transactions):
        if read_digest is None:
            check_transaction(index, transaction)
        where = f"transactions[{index}]"
        if transaction["producer"] != manifest["producer"]:
            raise BundleError(
                f"{where}.producer",
                f"is {transaction['producer']!r}, not the bundle's producer",
            )
        if transaction["sequence"] != expected:
            raise BundleError(
                f"{where}.sequence",
                f"is {transaction['sequence']} where {expected} was expected:"
                " transactions are missing, repeated or out of order",
            )
        expected += 1
    models = Counter(t["model"] for t in bundle.transactions)
    if dict(models) != manifest["models"]:
        raise BundleError("manifest.models", "does not match the transactions")
    if read_digest == manifest["sha256"]:
        return bundle
    lines = (canonical_json(t) for t in bundle.transactions)
    if _lines_digest(lines) != manifest["sha256"]:
        raise BundleError(
            "manifest.sha256", "does not match the transactions: they were altered"
        )
    return bundle


def bundle_from_json(data: Any) -> Bundle:
    """Read a bundle received as JSON; raise BundleError naming what is wrong."""
    if not isinstance(data, dict):
        raise BundleError("body", "must be a JSON object")
    unknown = set(data) - {"manifest", "signature", "transactions"}
    if unknown:
        raise BundleError(sorted(unknown)[0], "is not a known field")
    transactions = data.get("transactions")
    if not isinstance(transactions, list):
        raise BundleError("transactions", "must be a list")
    return check_bundle(
        Bundle(data.get("manifest"), data.get("signature"), transactions)
    )


def write_bundle_file(bundle: Bundle, stream: IO[bytes]) -> None:
    """Write ``bundle`` as gzip-compressed JSON lines to a binary stream."""
    with gzip.GzipFile(fileobj=stream, mode="wb", mtime=0) as compressed:
        head = {"manifest": bundle.manifest, "signature": bundle.signature}
        compressed.write(canonical_json(head).encode() + b"\n")
        for transaction in bundle.transactions:
            compressed.write(canonical_json(transaction).encode() + b"\n")


def _file_lines(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes]]:
    """The file's lines, inflated as a stream: no line longer than
    MAX_LINE_BYTES, and no more than ``max_bytes`` in all, is ever inflated."""
    read = 0
    number = 0
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as compressed:
            while True:
                allowed = min(MAX_LINE_BYTES, max_bytes - read) + 1
                line = compressed.readline(allowed)
                if not line:
                    return
                number += 1
                read += len(line)
                if read > max_bytes:
                    raise BundleTooLarge(
                        "file", f"holds more than {max_bytes} bytes uncompressed"
                    )
                if not line.endswith(b"\n"):
                    if len(line) == allowed:
                        raise BundleTooLarge(
                            "file",
                            f"line {number} is longer than {MAX_LINE_BYTES} bytes",
                        )
                    raise BundleError("file", f"line {number} is cut short")
                yield number, line
    except EOFError:
        raise BundleError(
            "file", "ends before its end: it is truncated (copy it again)"
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise BundleError(
            "file", f"is not a gzip-compressed sync export ({exc})"
        ) from None


def _file_item(number: int, line: bytes) -> Any:
    try:
        return load_bounded(
            line,
            max_depth=MAX_NESTING,
            max_values=MANIFEST_VALUES if number == 1 else VALUES_PER_TRANSACTION,
            root=f"line {number}",
        )
    except JsonRefused as exc:
        raise BundleError("file", f"line {number} is not JSON: {exc.message}") from None


def read_bundle_file(
    stream: IO[bytes],
    max_bytes: int = 1024**3,
    check_head: Callable[[dict[str, Any], Any], None] | None = None,
) -> Bundle:
    """Read and check a bundle file; raise BundleError with a one-line reason.

    Each line is checked as it is read, and no more transactions are taken
    than the manifest announces, so a bad file stops at its first bad line.
    ``check_head(manifest, signature)`` may refuse the file (by raising) on
    its first line, before any transaction is read: the server checks the
    signature there, so only a producer's own count is ever read."""
    head: Any = None
    transactions = []
    digest = hashlib.sha256()
    for number, line in _file_lines(stream, max_bytes):
        item = _file_item(number, line)
        if head is None:
            if not isinstance(item, dict):
                raise BundleError("file", "has no manifest: it is not a sync export")
            head = item
            manifest = _check_manifest(head.get("manifest"))
            signature = head.get("signature")
            if not isinstance(signature, str) or not signature:
                raise BundleError("signature", "is missing")
            if check_head is not None:
                check_head(manifest, signature)
            continue
        if len(transactions) >= MAX_FILE_TRANSACTIONS:
            raise BundleTooLarge(
                "transactions", f"a file holds at most {MAX_FILE_TRANSACTIONS}"
            )
        if len(transactions) >= manifest["count"]:
            raise BundleError(
                "transactions",
                f"holds more than the {manifest['count']} transactions the"
                " manifest announces: the bundle is incomplete or altered",
            )
        transactions.append(check_transaction(len(transactions), item))
        digest.update(line)
    if not isinstance(head, dict):
        raise BundleError("file", "has no manifest: it is empty or not a sync export")
    return check_bundle(
        Bundle(head.get("manifest"), head.get("signature"), transactions),
        digest.hexdigest(),
    )


def read_bundle_path(
    path: str | Path,
    max_bytes: int = 1024**3,
    check_head: Callable[[dict[str, Any], Any], None] | None = None,
) -> Bundle:
    with open(path, "rb") as stream:
        return read_bundle_file(stream, max_bytes, check_head)


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, which names an imported file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
