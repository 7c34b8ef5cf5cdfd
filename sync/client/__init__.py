"""The sync toolkit a field application embeds. It never imports the server."""

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
from sync.client.relay import forward, make_relay_blueprint, relay_models
from sync.client.transfer import (
    HttpTransport,
    Retry,
    TransferError,
    Unreachable,
    export,
    push,
    push_url,
)
from sync.wire.crypto import (
    InvalidPayload,
    decrypt_payload,
    encrypt_payload,
    new_device_key,
)
from sync.wire.payloads import canonical_json, json_value, transaction_hash
from sync.wire.signing import new_credential, public_key_of

__all__ = [
    "HttpTransport",
    "InvalidPayload",
    "ProducerNotConfiguredError",
    "Retry",
    "SyncConfigurationError",
    "SyncMixin",
    "TransferError",
    "Unreachable",
    "canonical_json",
    "configure_producer",
    "decrypt_payload",
    "encrypt_payload",
    "export",
    "forward",
    "json_value",
    "make_relay_blueprint",
    "mark_sent",
    "new_credential",
    "new_device_key",
    "open_payload",
    "pending_transactions",
    "public_key_of",
    "push",
    "push_url",
    "relay_models",
    "sync_models",
    "transaction_hash",
]
