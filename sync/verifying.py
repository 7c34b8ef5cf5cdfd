"""Verifying a delivered bundle, the first step of a delivery: it names a
registered, active producer, and that producer's credential signed it.

Nothing is stored before a bundle is verified, and it is verified once: what
comes next (receiving, then applying) takes the verified bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.models import SyncProducer
from sync.wire.bundles import Bundle, BundleError


class UnknownProducer(Exception):
    """The bundle names a producer that is not registered, or is disabled."""


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle signed by the registered producer it names."""

    producer: SyncProducer
    bundle: Bundle
    # Signed with the producer's current credential (not a retired one).
    current_key: bool = False


def verify_bundle(session: Session, bundle: Bundle) -> VerifiedBundle:
    """Check that ``bundle``'s producer is registered and active and signed it;
    raise UnknownProducer or BundleError (naming the signature) otherwise."""
    producer = session.scalar(
        select(SyncProducer).where(SyncProducer.producer_id == bundle.producer)
    )
    if producer is None or not producer.active:
        raise UnknownProducer(
            f"producer {bundle.producer!r} is not registered or is disabled"
        )
    if bundle.signed_by(producer.public_key):
        # Receiving bounds the retired credentials, once the server takes some
        # of it (a push all rejected, from a wiped device, bounds nothing).
        return VerifiedBundle(producer, bundle, current_key=True)
    retired = next(
        (
            key
            for key in producer.retired_keys or ()
            if bundle.signed_by(key["public_key"])
        ),
        None,
    )
    if retired is None:
        replaced = producer.credential_changed
        raise BundleError(
            "signature",
            f"the bundle is not signed by producer {bundle.producer!r} with its"
            " credential"
            + (
                f" (replaced on {replaced:%Y-%m-%d}; the old one was voided:"
                " configure the new one on the device, flask sync configure)"
                if replaced
                else ""
            ),
        )
    through = retired["through"]
    if through is not None and bundle.last_sequence > through:
        first = max(bundle.first_sequence, through + 1)
        raise BundleError(
            "signature",
            f"signed by producer {bundle.producer!r} with its credential replaced on"
            f" {retired['retired'][:10]}, which signs only what the device made"
            f" before, through sequence {through}; this bundle carries"
            f" {bundle.first_sequence}-{bundle.last_sequence}: on the device, if it"
            " still holds them,"
            f" export them again with its new credential (flask sync export"
            f" --from-sequence {first})",
        )
    return VerifiedBundle(producer, bundle)


def bound_retired_keys(producer: SyncProducer, through: int) -> None:
    """Limit the producer's retired credentials still unbounded to the
    sequences through ``through``, and never below what the server holds: from
    the first word the device says with its new credential, what it signs comes
    after."""
    through = max(through, producer.highest_received or 0)
    keys = producer.retired_keys or []
    if any(key["through"] is None for key in keys):
        producer.retired_keys = [
            {**key, "through": max(through, 0)} if key["through"] is None else key
            for key in keys
        ]
