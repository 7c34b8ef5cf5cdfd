"""Sending a field client's transactions: REST push and export to a file.

Both read the outgoing table in sequence order and sign what they send with the
producer's credential. A push marks transactions sent only after the receiver
acknowledged them; an export only remembers how far it wrote, so a later push
still delivers the same transactions (the server ignores what it already has).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sync.client.models import PRODUCER_ROW, ProducerNotConfiguredError
from sync.client.operations import mark_sent
from sync.wire.bundles import Bundle, make_bundle, transaction_wire, write_bundle_file
from sync.wire.crypto import decrypt_payload, encrypt_payload
from sync.wire.payloads import transaction_hash
from sync.wire.signing import position_request

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
PUSH_PATH = "/api/sync/push"
POSITION_PATH = "/api/sync/position"


class TransferError(Exception):
    """The receiver refused a bundle, or stayed unreachable after every retry."""


class Unreachable(TransferError):
    """The receiver could not be reached or did not answer."""


class Transport(Protocol):
    def post(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST ``body`` as JSON; return the status and the JSON reply."""


class HttpTransport:
    """The real transport: ``requests`` with a timeout per attempt."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.session = requests.Session()

    def post(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            response = self.session.post(
                url,
                data=json.dumps(body, separators=(",", ":")).encode(),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise Unreachable(f"{url}: {exc.__class__.__name__}: {exc}") from None
        try:
            reply = response.json()
        except ValueError:
            reply = {}
        return response.status_code, reply if isinstance(reply, dict) else {}


@dataclass
class Retry:
    """How often and how patiently to retry: exponential backoff with jitter."""

    attempts: int = 6
    first_delay: float = 1.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.first_delay * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


def push_url(base_url: str) -> str:
    """The push endpoint of a server or middleman given its base URL."""
    return base_url.rstrip("/") + PUSH_PATH


def send_bundle(
    transport: Transport, url: str, bundle: Bundle, retry: Retry
) -> dict[str, Any]:
    """Send one bundle until it is acknowledged; return the receiver's reply."""
    problem = ""
    for attempt in range(retry.attempts):
        if attempt:
            retry.sleep(retry.delay(attempt - 1))
        try:
            status, reply = transport.post(url, bundle.as_json())
        except Unreachable as exc:
            problem = str(exc)
            continue
        if status == 200 and reply.get("acknowledged_through") == (
            bundle.last_sequence
        ):
            return reply
        message = reply.get("message") or reply.get("error") or f"HTTP {status}"
        if status not in RETRY_STATUSES:
            raise TransferError(f"the receiver refused the bundle: {message}")
        problem = message
    raise Unreachable(
        f"gave up after {retry.attempts} attempts; last problem: {problem}"
    )


def _state(session: Session, state_model: type) -> Any:
    table = state_model.__table__
    state = session.execute(select(table).where(table.c.id == PRODUCER_ROW)).first()
    if state is None:
        raise ProducerNotConfiguredError(
            "no sync producer is configured: call configure_producer() first"
        )
    if not state.credential:
        raise ProducerNotConfiguredError(
            f"producer {state.producer_id!r} has no credential: configure the one"
            " the server issued for it"
        )
    return state


def contiguous_run(
    session: Session,
    outgoing_model: type,
    limit: int,
    after: int = 0,
    sent: bool | None = False,
) -> list[Any]:
    """The next run of transactions with consecutive numbers past ``after``;
    only unsent ones when ``sent`` is False, any when it is None."""
    statement = select(outgoing_model).where(outgoing_model.sequence > after)
    if sent is not None:
        statement = statement.where(outgoing_model.sent.is_(sent))
    rows = list(
        session.scalars(statement.order_by(outgoing_model.sequence).limit(limit))
    )
    for index in range(1, len(rows)):
        if rows[index].sequence != rows[index - 1].sequence + 1:
            return rows[:index]
    return rows


@dataclass
class Recovered:
    highest_received: int
    next_sequence: int
    # Unsent local transactions the server holds another change under.
    unsent_conflicts: int
    # Those moved (with every later unsent one, in order) after the server's.
    renumbered: int = 0
    # Unsent ones the server holds as they are (their answer was lost).
    delivered: int = 0


POSITION_SEQUENCES = 1000


def _ask_position(
    transport: Transport, url: str, body: dict[str, Any], sequences: list[int]
) -> dict[str, Any]:
    status, reply = transport.post(
        url, {**body, "sequences": sequences} if sequences else body
    )
    highest = reply.get("highest_received")
    if status != 200 or not isinstance(highest, int) or highest < 0:
        message = reply.get("message") or reply.get("error") or f"HTTP {status}"
        raise TransferError(f"the server did not give the position: {message}")
    return reply


def recover(
    session: Session,
    state_model: type,
    outgoing_model: type,
    base_url: str,
    transport: Transport | None = None,
    commit: Callable[[], None] | None = None,
) -> Recovered:
    """Learn from the server the highest sequence it holds for this producer and
    continue after it, so a wiped or reinstalled device never reuses a number.
    Never moves the next sequence back.

    Changes made here before recovering took numbers the server may hold
    already: those it holds as they are are marked sent; from the first it
    holds another change under, every unsent transaction is renumbered, in
    order, after the server's highest, so each is delivered once."""
    transport = transport or HttpTransport()
    commit = commit or session.commit
    state = _state(session, state_model)
    body = position_request(state.producer_id, state.credential)
    url = base_url.rstrip("/") + POSITION_PATH
    session.rollback()
    highest = _ask_position(transport, url, body, [])["highest_received"]
    unsent = session.execute(
        select(outgoing_model.id, outgoing_model.sequence, outgoing_model.hash)
        .where(outgoing_model.sent.is_(False), outgoing_model.sequence <= highest)
        .order_by(outgoing_model.sequence)
    ).all()
    session.rollback()
    held: dict[str, str] = {}
    for start in range(0, len(unsent), POSITION_SEQUENCES):
        part = [row.sequence for row in unsent[start : start + POSITION_SEQUENCES]]
        held.update(_ask_position(transport, url, body, part).get("hashes") or {})
    delivered = [row.id for row in unsent if held.get(str(row.sequence)) == row.hash]
    differing = [
        row.sequence
        for row in unsent
        if str(row.sequence) in held and held[str(row.sequence)] != row.hash
    ]
    if delivered:
        session.execute(
            update(outgoing_model)
            .where(outgoing_model.id.in_(delivered))
            .values(sent=True)
        )
    renumbered = (
        _renumber(session, state, state_model, outgoing_model, min(differing), highest)
        if differing
        else 0
    )
    table = state_model.__table__
    session.execute(
        update(table)
        .where(table.c.id == PRODUCER_ROW, table.c.next_sequence <= highest)
        .values(next_sequence=highest + 1)
    )
    session.execute(
        update(table)
        .where(table.c.id == PRODUCER_ROW, table.c.exported_through < highest)
        .values(exported_through=highest)
    )
    next_sequence = session.scalar(
        select(table.c.next_sequence).where(table.c.id == PRODUCER_ROW)
    )
    commit()
    return Recovered(highest, next_sequence, len(differing), renumbered, len(delivered))


def _renumber(
    session: Session,
    state: Any,
    state_model: type,
    outgoing_model: type,
    first: int,
    highest: int,
) -> int:
    """Give every unsent transaction from ``first`` on, in order, a number
    after both the server's highest and every number this device used; its hash
    (and its sealed payload, bound to the number) follow. Return how many."""
    moved = session.scalars(
        select(outgoing_model)
        .where(outgoing_model.sent.is_(False), outgoing_model.sequence >= first)
        .order_by(outgoing_model.sequence)
    ).all()
    kept = session.scalar(
        select(func.max(outgoing_model.sequence)).where(
            outgoing_model.id.not_in([row.id for row in moved])
        )
    )
    start = max(highest, kept or 0) + 1
    # Out of the way first: the numbers are unique.
    for row in moved:
        row.sequence = -row.sequence
    session.flush()
    for number, row in enumerate(moved, start):
        context = f"{row.producer_id}:{-row.sequence}"
        text = (
            decrypt_payload(row.payload, state.encryption_key, context)
            if row.encrypted
            else row.payload
        )
        row.sequence = number
        if row.encrypted:
            row.payload = encrypt_payload(
                text, state.encryption_key, f"{row.producer_id}:{number}"
            )
        row.hash = transaction_hash(
            row.producer_id,
            number,
            row.model,
            json.loads(row.natural_key),
            row.action,
            json.loads(text),
        )
    session.flush()
    table = state_model.__table__
    session.execute(
        update(table)
        .where(table.c.id == PRODUCER_ROW, table.c.next_sequence <= number)
        .values(next_sequence=number + 1)
    )
    return len(moved)


_COUNTED = re.compile(r"(\d+) (.*)", re.DOTALL)


@dataclass
class ReplyTotals:
    """What the server's answers said across bundles: the held transactions by
    reason, and each warning once, a count it starts with summed over bundles
    (so that equal warnings of several bundles are neither lost nor repeated)."""

    held: int = 0
    held_reasons: dict[str, int] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)

    def add(self, reply: dict[str, Any]) -> None:
        for item in reply.get("held") or []:
            self.held += 1
            reason = str(item.get("reason", ""))
            self.held_reasons[reason] = self.held_reasons.get(reason, 0) + 1
        for warning in reply.get("warnings") or []:
            match = _COUNTED.fullmatch(warning)
            count, rest = (int(match[1]), match[2]) if match else (0, warning)
            if rest in self.counted:
                self.counted[rest] += count
            else:
                self.counted[rest] = count if match else -1

    @property
    def warnings(self) -> list[str]:
        return [
            rest if count < 0 else f"{count} {rest}"
            for rest, count in self.counted.items()
        ]

    def held_lines(self) -> list[str]:
        """The total held and why, for a command to print."""
        if not self.held:
            return []
        return [
            f"held by the server: {self.held} transactions (taken, not applied)",
            *(f"  {count}: {reason}" for reason, count in self.held_reasons.items()),
        ]


@dataclass
class PushSummary:
    bundles: int = 0
    sent: int = 0
    duplicates: int = 0
    quarantined: int = 0
    totals: ReplyTotals = field(default_factory=ReplyTotals)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    last_reply: dict[str, Any] = field(default_factory=dict)


def push(
    session: Session,
    outgoing_model: type,
    state_model: type,
    url: str,
    transport: Transport | None = None,
    batch_size: int = 500,
    retry: Retry | None = None,
    commit: Callable[[], None] | None = None,
    on_bundle: Callable[[PushSummary], None] | None = None,
) -> PushSummary:
    """Push every unsent transaction to ``url`` in signed bundles of at most
    ``batch_size``; commit after each acknowledged bundle."""
    if not 0 < batch_size <= 10_000:
        raise ValueError("batch_size is 1 to 10000")
    transport = transport or HttpTransport()
    retry = retry or Retry()
    commit = commit or session.commit
    state = _state(session, state_model)
    summary = PushSummary()
    after = 0
    while rows := contiguous_run(session, outgoing_model, batch_size, after):
        bundle = make_bundle([transaction_wire(row) for row in rows], state.credential)
        session.rollback()  # hold no read transaction while waiting on the network
        reply = send_bundle(transport, url, bundle, retry)
        rejected = {item.get("sequence") for item in reply.get("rejected", [])}
        summary.sent += mark_sent(
            session,
            outgoing_model,
            bundle.producer,
            [
                t["sequence"]
                for t in bundle.transactions
                if t["sequence"] not in rejected
            ],
        )
        commit()
        summary.bundles += 1
        summary.duplicates += int(reply.get("duplicates", 0))
        summary.quarantined += len(reply.get("quarantined", []))
        summary.totals.add(reply)
        summary.rejected.extend(reply.get("rejected", []))
        summary.last_reply = reply
        after = bundle.last_sequence
        if on_bundle:
            on_bundle(summary)
    return summary


def write_bundle_to(bundle: Bundle, path: str | Path) -> Path:
    """Write a bundle file whole or not at all (a crash leaves a ``.part``)."""
    target = Path(path)
    partial = target.with_name(target.name + ".part")
    with open(partial, "wb") as stream:
        write_bundle_file(bundle, stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(partial, target)
    return target


@dataclass
class ExportSummary:
    path: Path
    first_sequence: int
    last_sequence: int
    count: int


def export(
    session: Session,
    outgoing_model: type,
    state_model: type,
    path: str | Path,
    from_sequence: int | None = None,
    limit: int = 100_000,
    commit: Callable[[], None] | None = None,
) -> ExportSummary | None:
    """Write the transactions after the last export (or from ``from_sequence``)
    to a signed bundle file; None when there is nothing new."""
    commit = commit or session.commit
    state = _state(session, state_model)
    start = state.exported_through if from_sequence is None else from_sequence - 1
    rows = contiguous_run(session, outgoing_model, limit, after=start, sent=None)
    if not rows:
        return None
    if Path(path).exists():
        # It may not have been carried yet: replacing it would lose its sequences.
        raise FileExistsError(
            f"{path} exists (an earlier export, perhaps not yet carried):"
            " export to another name"
        )
    bundle = make_bundle([transaction_wire(row) for row in rows], state.credential)
    target = write_bundle_to(bundle, path)
    table = state_model.__table__
    session.execute(
        update(table)
        .where(
            table.c.id == PRODUCER_ROW,
            table.c.exported_through < bundle.last_sequence,
        )
        .values(exported_through=bundle.last_sequence)
    )
    commit()
    return ExportSummary(
        target, bundle.first_sequence, bundle.last_sequence, len(bundle.transactions)
    )


def _check_names_free(
    session: Session,
    outgoing_model: type,
    state_model: type,
    path: str | Path,
    from_sequence: int | None,
    per_file: int,
    max_files: int | None,
) -> None:
    """Raise FileExistsError, before anything is written, if a file the export
    would write exists (one not yet carried would lose its sequences)."""
    after = (
        _state(session, state_model).exported_through
        if from_sequence is None
        else from_sequence - 1
    )
    pending = session.scalar(
        select(func.count())
        .select_from(outgoing_model)
        .where(outgoing_model.sequence > after)
    )
    files = -(-pending // per_file)
    if max_files is not None:
        files = min(files, max_files)
    for number in range(1, files + 1):
        name = numbered_path(path, number)
        if name.exists():
            raise FileExistsError(
                f"{name} exists (an earlier export, perhaps not yet carried):"
                " nothing was written; export to another name"
            )


def numbered_path(path: str | Path, number: int) -> Path:
    """The name of the NUMBERth file of an export: survey.jsonl.gz,
    survey-2.jsonl.gz, survey-3.jsonl.gz..."""
    target = Path(path)
    if number == 1:
        return target
    stem, dot, suffixes = target.name.partition(".")
    return target.with_name(f"{stem}-{number}{dot}{suffixes}")


def export_all(
    session: Session,
    outgoing_model: type,
    state_model: type,
    path: str | Path,
    from_sequence: int | None = None,
    per_file: int = 100_000,
    max_files: int | None = None,
    commit: Callable[[], None] | None = None,
) -> tuple[list[ExportSummary], int]:
    """Write every transaction after the last export (or from ``from_sequence``)
    in files of at most ``per_file``, numbered after ``path``, up to
    ``max_files``; return them and how many transactions remain unwritten."""
    _check_names_free(
        session, outgoing_model, state_model, path, from_sequence, per_file, max_files
    )
    written: list[ExportSummary] = []
    start = from_sequence
    while max_files is None or len(written) < max_files:
        summary = export(
            session,
            outgoing_model,
            state_model,
            numbered_path(path, len(written) + 1),
            start,
            per_file,
            commit,
        )
        if summary is None:
            break
        written.append(summary)
        start = summary.last_sequence + 1
    if start is None:
        start = _state(session, state_model).exported_through + 1
    remaining = session.scalar(
        select(func.count())
        .select_from(outgoing_model)
        .where(outgoing_model.sequence >= start)
    )
    return written, remaining
