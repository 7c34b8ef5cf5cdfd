"""The workload: what ten field devices send, built by hand as wire transactions.

Each producer enumerates households and their members the way the field app in
tests/sync/field_app.py records them (full field values, ``Member`` at schema
version 2 with its household as parent), then corrects, moves and deletes some:

    ~22% household inserts, ~45% member inserts, ~25% updates (3% of them a
    corrected member identifier, 5% of member updates a move to another
    household), ~8% deletes (members, or households left without members).

A parent is always an earlier transaction of the same producer, so nothing
should park. Building the wire form directly is much faster than going through
a field app's ORM, and gives the same bytes on the wire.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sync.wire.bundles import Bundle, make_bundle, plain_transaction
from sync.wire.payloads import canonical_json

HOUSEHOLD = "Household"
MEMBER = "Member"
MODELS = [HOUSEHOLD, MEMBER]
SCHEMA_VERSIONS = {HOUSEHOLD: 1, MEMBER: 2}
ACTION_SHARES = (
    ("insert_household", 0.22),
    ("insert_member", 0.45),
    ("update", 0.25),
    ("delete", 0.08),
)
RENAME_SHARE = 0.03
MOVE_SHARE = 0.05
HOUSEHOLD_UPDATE_SHARE = 0.3
MEMBER_DELETE_SHARE = 0.8
VILLAGES = (
    "Ankazobe",
    "Betafo",
    "Mahitsy",
    "Ambohimanga",
    "Soavinandriana",
    "Ampefy",
    "Miarinarivo",
    "Faratsiho",
)
NAMES = (
    "Rakoto",
    "Rabe",
    "Rasoa",
    "Andry",
    "Voahangy",
    "Hery",
    "Lalao",
    "Fanja",
    "Tiana",
    "Mamy",
)
START = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)

Key = tuple[str, str]  # (model, canonical JSON natural key), as the server keys


def producer_name(index: int) -> str:
    """The producer id of the INDEX-th field device (from 0)."""
    return f"field-{index + 1:02d}"


class Pool:
    """A set of ids with O(1) add, remove and random choice."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.where: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: int) -> bool:
        return item in self.where

    def add(self, item: int) -> None:
        if item not in self.where:
            self.where[item] = len(self.items)
            self.items.append(item)

    def remove(self, item: int) -> None:
        index = self.where.pop(item, None)
        if index is None:
            return
        last = self.items.pop()
        if last != item:
            self.items[index] = last
            self.where[last] = index

    def choice(self, rng: random.Random) -> int:
        return self.items[rng.randrange(len(self.items))]


@dataclass
class _Device:
    """One field device's records while its transactions are generated."""

    name: str
    rng: random.Random
    households: dict[int, dict[str, Any]]
    members: dict[int, dict[str, Any]]
    member_counts: dict[int, int]
    live_households: Pool
    empty_households: Pool
    live_members: Pool
    next_household: int = 1
    next_member: int = 1
    next_identifier: int = 1

    def household_code(self, household_id: int) -> str:
        return self.households[household_id]["code"]

    def parents(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "household_id": {
                "model": HOUSEHOLD,
                "natural_key": [self.household_code(fields["household_id"])],
            }
        }

    def new_identifier(self) -> str:
        code = f"{self.name[-2:]}m{self.next_identifier:07d}"
        self.next_identifier += 1
        return code

    def join(self, household_id: int) -> None:
        self.member_counts[household_id] += 1
        self.empty_households.remove(household_id)

    def leave(self, household_id: int) -> None:
        self.member_counts[household_id] -= 1
        if not self.member_counts[household_id]:
            self.empty_households.add(household_id)


def _payload(model: str, fields: dict[str, Any], parents: dict[str, Any]) -> dict:
    return {
        "schema_version": SCHEMA_VERSIONS[model],
        "fields": dict(fields),
        "parents": parents,
    }


def _insert_household(device: _Device) -> tuple:
    rng = device.rng
    household_id = device.next_household
    device.next_household += 1
    fields = {
        "id": household_id,
        "code": f"{device.name[-2:]}h{household_id:07d}",
        "village": rng.choice(VILLAGES),
        "income": f"{rng.randrange(5000, 900000) / 100:.2f}",
        "enumerated": (date(2026, 10, 1) + timedelta(rng.randrange(60))).isoformat(),
    }
    device.households[household_id] = fields
    device.member_counts[household_id] = 0
    device.live_households.add(household_id)
    device.empty_households.add(household_id)
    return HOUSEHOLD, [fields["code"]], "insert", _payload(HOUSEHOLD, fields, {})


def _member_fields(device: _Device, member_id: int, household_id: int) -> dict:
    rng = device.rng
    seen = START + timedelta(minutes=rng.randrange(60 * 24 * 60))
    return {
        "id": member_id,
        "identifier": device.new_identifier(),
        "household_id": household_id,
        "name": f"{rng.choice(NAMES)} {rng.choice(NAMES)}",
        "seen": seen.replace(tzinfo=None).isoformat(),
    }


def _insert_member(device: _Device) -> tuple:
    if not device.live_households:
        return _insert_household(device)
    member_id = device.next_member
    device.next_member += 1
    household_id = device.live_households.choice(device.rng)
    fields = _member_fields(device, member_id, household_id)
    device.members[member_id] = fields
    device.live_members.add(member_id)
    device.join(household_id)
    payload = _payload(MEMBER, fields, device.parents(fields))
    return MEMBER, [fields["identifier"]], "insert", payload


def _update_household(device: _Device) -> tuple:
    rng = device.rng
    household_id = device.live_households.choice(rng)
    fields = device.households[household_id]
    fields["income"] = f"{rng.randrange(5000, 900000) / 100:.2f}"
    if rng.random() < 0.3:
        fields["village"] = rng.choice(VILLAGES)
    return HOUSEHOLD, [fields["code"]], "update", _payload(HOUSEHOLD, fields, {})


def _update_member(device: _Device) -> tuple:
    rng = device.rng
    member_id = device.live_members.choice(rng)
    fields = device.members[member_id]
    previous = None
    roll = rng.random()
    if roll < RENAME_SHARE:
        previous = [fields["identifier"]]
        fields["identifier"] = device.new_identifier()
    elif roll < RENAME_SHARE + MOVE_SHARE:
        target = device.live_households.choice(rng)
        device.leave(fields["household_id"])
        device.join(target)
        fields["household_id"] = target
    else:
        fields["name"] = f"{rng.choice(NAMES)} {rng.choice(NAMES)}"
        fields["seen"] = (
            (START + timedelta(minutes=rng.randrange(60 * 24 * 60)))
            .replace(tzinfo=None)
            .isoformat()
        )
    payload = _payload(MEMBER, fields, device.parents(fields))
    if previous is not None:
        payload["previous_natural_key"] = previous
    return MEMBER, [fields["identifier"]], "update", payload


def _update(device: _Device) -> tuple:
    if not device.live_members or (
        device.live_households and device.rng.random() < HOUSEHOLD_UPDATE_SHARE
    ):
        if not device.live_households:
            return _insert_household(device)
        return _update_household(device)
    return _update_member(device)


def _delete(device: _Device) -> tuple:
    rng = device.rng
    if device.empty_households and (
        not device.live_members or rng.random() >= MEMBER_DELETE_SHARE
    ):
        household_id = device.empty_households.choice(rng)
        device.empty_households.remove(household_id)
        device.live_households.remove(household_id)
        fields = device.households.pop(household_id)
        return HOUSEHOLD, [fields["code"]], "delete", _payload(HOUSEHOLD, fields, {})
    if not device.live_members:
        return _insert_member(device)
    member_id = device.live_members.choice(rng)
    device.live_members.remove(member_id)
    fields = device.members.pop(member_id)
    payload = _payload(MEMBER, fields, device.parents(fields))
    device.leave(fields["household_id"])
    return MEMBER, [fields["identifier"]], "delete", payload


STEPS = {
    "insert_household": _insert_household,
    "insert_member": _insert_member,
    "update": _update,
    "delete": _delete,
}


def producer_transactions(index: int, count: int, seed: int) -> list[dict[str, Any]]:
    """The INDEX-th device's COUNT wire transactions, sequences 1..COUNT."""
    name = producer_name(index)
    device = _Device(
        name,
        random.Random(f"{seed}:{name}"),
        {},
        {},
        {},
        Pool(),
        Pool(),
        Pool(),
    )
    steps = [STEPS[step] for step, _ in ACTION_SHARES]
    weights = [share for _, share in ACTION_SHARES]
    chosen = device.rng.choices(steps, weights, k=count)
    transactions = []
    for sequence, step in enumerate(chosen, start=1):
        model, natural_key, action, payload = step(device)
        created = START + timedelta(seconds=7 * sequence)
        transactions.append(
            plain_transaction(
                name, sequence, model, natural_key, action, payload, created
            )
        )
    return transactions


def split(total: int, parts: int) -> list[int]:
    """TOTAL split into PARTS counts that differ by at most one."""
    return [total // parts + (index < total % parts) for index in range(parts)]


@dataclass
class Expected:
    """What the server should hold once transactions are applied."""

    records: dict[Key, tuple[dict[str, Any], int]]  # key -> (fields, version)
    through: dict[str, int]  # producer -> last sequence
    actions: dict[str, int]  # "Model action" -> count


def expected_state(streams: Iterable[list[dict[str, Any]]]) -> Expected:
    """Replay each producer's transactions the way the server applies them."""
    records: dict[Key, tuple[dict[str, Any], int]] = {}
    through: dict[str, int] = {}
    actions: dict[str, int] = {}
    for stream in streams:
        for transaction in stream:
            model = transaction["model"]
            action = transaction["action"]
            label = f"{model} {action}"
            actions[label] = actions.get(label, 0) + 1
            through[transaction["producer"]] = transaction["sequence"]
            key = (model, canonical_json(transaction["natural_key"]))
            if action == "delete":
                records.pop(key, None)
                continue
            payload = json.loads(transaction["payload"])
            existing = records.get(key)
            previous = payload.get("previous_natural_key")
            if previous and previous != transaction["natural_key"]:
                moved = records.pop((model, canonical_json(previous)), None)
                if moved is not None:
                    existing = moved
            version = existing[1] + 1 if existing else 1
            records[key] = (payload["fields"], version)
    return Expected(records, through, actions)


def bundles_of(
    transactions: list[dict[str, Any]], credential: str, size: int
) -> list[Bundle]:
    """Sign TRANSACTIONS in consecutive bundles of at most SIZE."""
    return [
        make_bundle(transactions[start : start + size], credential)
        for start in range(0, len(transactions), size)
    ]
