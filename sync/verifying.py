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
from sync.wire.bundles import Bundle


class UnknownProducer(Exception):
    """The bundle names a producer that is not registered, or is disabled."""


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle signed by the registered producer it names."""

    producer: SyncProducer
    bundle: Bundle


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
    bundle.verify_signature(producer.public_key)
    return VerifiedBundle(producer, bundle)
