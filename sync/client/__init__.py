"""The sync toolkit a field application embeds. It never imports the server."""

from sync.client.crypto import (
    InvalidPayload,
    decrypt_payload,
    encrypt_payload,
    new_device_key,
)
from sync.client.models import (
    ProducerNotConfiguredError,
    SyncConfigurationError,
    SyncMixin,
    sync_models,
)
from sync.client.operations import (
    configure_producer,
    mark_sent,
    open_payload,
    pending_transactions,
)
from sync.client.payloads import canonical_json, json_value, transaction_hash

__all__ = [
    "InvalidPayload",
    "ProducerNotConfiguredError",
    "SyncConfigurationError",
    "SyncMixin",
    "canonical_json",
    "configure_producer",
    "decrypt_payload",
    "encrypt_payload",
    "json_value",
    "mark_sent",
    "new_device_key",
    "open_payload",
    "pending_transactions",
    "sync_models",
    "transaction_hash",
]
