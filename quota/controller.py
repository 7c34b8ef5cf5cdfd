"""The controller: pull counts from field clients, then move ceilings safely.

Order matters for the invariant *what clients may create <= target*:
1. every report settles what a client really has (ceiling, count, used codes);
2. ceilings that go down are sent first, and count as lowered only once the
   client confirms;
3. only then is the freed headroom handed out, each raise recorded as pending
   (and committed) *before* it is sent, so a lost reply, a restart or a message
   that arrives late never lets the controller hand the same headroom out twice.
   A pending raise is released only when a report shows it applied, or once its
   lease has ended plus the clock bound: a device refuses a raise whose lease has
   passed, so a late message can no longer take effect.
Unreachable clients keep whatever they may have; one failure never stops a pull.
Settling happens with the quota's row locked and the clients re-read, so pulls
and check-ins running at once never overwrite each other's pending raises.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import set_committed_value

from quota.models import ControllerQuota, QuotaApproval, QuotaClient, QuotaHistory
from quota.planning import ClientState, plan, withheld
from tracker.db_types import utcnow
from tracker.devices import note_device_contact

RATE_SMOOTHING = 0.5
MAX_WORKERS = 48  # threads, for a transport that makes one call at a time
HTTP_CONCURRENCY = 100
MAX_ANSWER_BYTES = 1 << 20  # a report is a few hundred bytes; codes add little
QUOTA_COLUMNS = ("target", "retired", "active", "window_start", "window_expires")

VIA_QUOTA = "quota"  # the channel of contact, for the registry


class QuotaNotActive(Exception):
    """The quota is switched off or its window is closed."""


class TransportError(Exception):
    """The client could not be reached, or its answer was lost or unreadable."""


class CeilingRefused(Exception):
    """The client refused a ceiling below its count."""

    def __init__(self, count: int) -> None:
        super().__init__(f"refused: count is {count}")
        self.count = count


@dataclass(frozen=True)
class Policy:
    """How headroom is handed out: the override reserve (records, or a
    percentage of the target such as "5%"), the fair floor, leases and the
    clock bound."""

    reserve: int | str = 0
    floor: int = 0
    lease: timedelta = timedelta(hours=72)
    max_skew: timedelta = timedelta(hours=6)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        return cls(
            reserve=config["QUOTA_OVERRIDE_RESERVE"],
            floor=config["QUOTA_FAIR_FLOOR"],
            lease=timedelta(hours=config["QUOTA_LEASE_HOURS"]),
            max_skew=timedelta(seconds=config["QUOTA_MAX_CLOCK_SKEW"]),
        )

    def reserve_for(self, target: int) -> int:
        """The reserve in records for a quota of ``target``."""
        if isinstance(self.reserve, str):
            return int(target * float(self.reserve.rstrip("%")) / 100)
        return min(self.reserve, target)


@dataclass(frozen=True)
class Address:
    """Where and how to reach a client: plain values, safe to hand to threads."""

    name: str
    endpoint: str
    secret: str

    @classmethod
    def of(cls, client: QuotaClient) -> Address:
        return cls(client.name, client.endpoint, client.secret)


class Transport(Protocol):
    """Reaches the field clients. A transport may also offer
    ``exchange_all(method, kind, calls)`` (see HttpTransport) to make a round
    of calls itself; otherwise the controller makes them from threads."""

    def get(self, client: Address, kind: str) -> dict[str, Any]: ...

    def put(
        self, client: Address, kind: str, body: dict[str, Any]
    ) -> dict[str, Any]: ...


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_report(data: Any) -> dict[str, Any]:
    """Return a client's report if it is well formed; raise TransportError."""
    if not isinstance(data, dict):
        raise TransportError("the report is not a JSON object")
    if not (_is_count(data.get("count")) and _is_count(data.get("ceiling"))):
        raise TransportError("the report lacks a whole count and ceiling")
    used = data.get("used_overrides") or []
    if not isinstance(used, list) or not all(isinstance(n, str) for n in used):
        raise TransportError("the report's used_overrides is not a list of codes")
    for name in ("confirmed", "lease_expires", "clock"):
        if data.get(name) is not None and not _is_count(data[name]):
            raise TransportError(f"the report's {name} is not a whole number")
    install = data.get("install")
    if install is not None and not (
        isinstance(install, str) and 0 < len(install) <= 32
    ):
        raise TransportError("the report's install is not a name of 1 to 32 characters")
    return data


class HttpTransport:
    """Talks to the field clients' quota blueprint over HTTP with timeouts.

    A round of calls (``exchange_all``) runs on one event loop with aiohttp, at
    most ``concurrency`` at a time: a pull over a thousand clients is a round of
    GETs and a round of PUTs, and threads with one blocking call each cost far
    more processor time than the calls themselves. Connections are kept from
    one round to the next (a client's PUT reuses its GET's), so use it in a
    ``with`` block, or ``close()`` it."""

    def __init__(
        self, timeout: float = 10.0, concurrency: int = HTTP_CONCURRENCY
    ) -> None:
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HttpTransport:
        return cls(config["QUOTA_CLIENT_TIMEOUT"], config["QUOTA_PULL_CONCURRENCY"])

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections kept open."""
        loop, session = self._loop, self._session
        self._loop = self._session = None
        if loop is None:
            return
        if session is not None:
            loop.run_until_complete(session.close())
        loop.close()

    def get(self, client: Address, kind: str) -> dict[str, Any]:
        return self._one("GET", client, kind, None)

    def put(self, client: Address, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._one("PUT", client, kind, body)

    def _one(self, method: str, client: Address, kind: str, body) -> dict[str, Any]:
        (answer,) = self.exchange_all(method, kind, [(client, body)])
        if isinstance(answer, Exception):
            raise answer
        return answer

    def exchange_all(
        self, method: str, kind: str, calls: list[tuple[Address, dict | None]]
    ) -> list[dict[str, Any] | TransportError]:
        """Make every call; return each report, or the TransportError (or
        CeilingRefused) it ended in, in the order of ``calls``."""
        if not calls:
            return []
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self._exchange_all(method, kind, calls))

    async def _exchange_all(self, method: str, kind: str, calls) -> list:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,  # field clients are reached directly, no proxy
            )
        session = self._session
        gate = asyncio.Semaphore(self.concurrency)

        async def one(client: Address, body):
            async with gate:
                try:
                    return await self._request(session, method, client, kind, body)
                except (TransportError, CeilingRefused) as exc:
                    return exc

        return await asyncio.gather(*(one(c, b) for c, b in calls))

    async def _request(
        self,
        session: aiohttp.ClientSession,
        method: str,
        client: Address,
        kind: str,
        body: dict | None,
    ) -> dict[str, Any]:
        """One call; the report, or TransportError / CeilingRefused."""
        url = f"{client.endpoint.rstrip('/')}/quota/{kind}"
        try:
            async with session.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {client.secret}"},
                allow_redirects=False,
            ) as response:
                status = response.status
                raw = await response.content.read(MAX_ANSWER_BYTES + 1)
        except TimeoutError:
            raise TransportError(f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientConnectorError:
            raise TransportError("could not connect to the client") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise TransportError(f"the request failed: {exc}"[:300]) from None
        if len(raw) > MAX_ANSWER_BYTES:
            raise TransportError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise TransportError(f"the answer (HTTP {status}) is not JSON") from None
        if not isinstance(data, dict):
            raise TransportError(f"HTTP {status}: not a JSON object")
        if status == 409 and _is_count(data.get("count")):
            raise CeilingRefused(data["count"])
        if status == 401:
            raise TransportError("the client refused the secret (HTTP 401)")
        if status != 200:
            message = str(data.get("message", ""))[:200]
            raise TransportError(f"the client answered HTTP {status}: {message}")
        data = check_report(data)
        data["_received"] = time.time()
        return data


@dataclass
class PullSummary:
    reached: int = 0
    unreachable: int = 0
    changed: int = 0


def _outstanding(approvals: Iterable[QuotaApproval], last_contact) -> int:
    # An approval stops counting once a report made after it can no longer be
    # applied (its expiry plus the clock bound) omits it.
    return sum(
        a.extra
        for a in approvals
        if last_contact is None or (a.held_until or a.expires) > last_contact
    )


def outstanding_by_client(session: Session, quota: ControllerQuota) -> dict[int, int]:
    """Approved overrides each client of the quota may still apply."""
    contacts = {c.id: c.last_contact for c in quota.clients}
    approvals: dict[int, list[QuotaApproval]] = {}
    for approval in session.scalars(
        select(QuotaApproval)
        .join(QuotaClient)
        .where(QuotaClient.quota_id == quota.id, QuotaApproval.used.is_(False))
    ):
        approvals.setdefault(approval.client_id, []).append(approval)
    return {
        client_id: _outstanding(rows, contacts.get(client_id))
        for client_id, rows in approvals.items()
    }


def outstanding_extra(session: Session, client: QuotaClient) -> int:
    """Approved overrides the client may still apply."""
    return _outstanding(
        session.scalars(
            select(QuotaApproval).where(
                QuotaApproval.client_id == client.id, QuotaApproval.used.is_(False)
            )
        ),
        client.last_contact,
    )


def assumed_ceiling(
    session: Session, client: QuotaClient, outstanding: int | None = None
) -> int:
    """The most this client may be allowed now, whatever messages were lost."""
    if outstanding is None:
        outstanding = outstanding_extra(session, client)
    return max(client.acknowledged, client.pending or 0) + outstanding


def lock_quota(session: Session, quota: ControllerQuota) -> None:
    """Hold the quota's row until commit: whoever hands out headroom next waits,
    then sees what this transaction handed out (a write locks on every database)."""
    session.execute(
        update(ControllerQuota)
        .where(ControllerQuota.id == quota.id)
        .values(target=ControllerQuota.target)
    )
    # The quota's own columns and every client's row, read again; the loaded
    # list of clients is kept (re-reading it would cost a second load).
    session.refresh(quota, QUOTA_COLUMNS)
    reread_clients(session, quota)


def reread_clients(session: Session, quota: ControllerQuota) -> None:
    """Read every client's row of the quota again, in one query.

    The secret is left as it is: it does not change what may be created, and
    decrypting it for every client was most of what a re-read cost. The
    quota's list of clients is set from the same rows (loaded on its own, it
    would read every secret again)."""
    clients = session.scalars(
        select(QuotaClient)
        .where(QuotaClient.quota_id == quota.id)
        .order_by(QuotaClient.id)
        .options(defer(QuotaClient.secret))
        .execution_options(populate_existing=True)
    ).all()
    set_committed_value(quota, "clients", list(clients))


def committed_total(session: Session, quota: ControllerQuota) -> int:
    """What every client may create, approvals included, plus what removed
    clients created."""
    outstanding = outstanding_by_client(session, quota)
    return quota.retired + sum(
        assumed_ceiling(session, c, outstanding.get(c.id, 0)) for c in quota.clients
    )


def client_states(
    session: Session, quota: ControllerQuota, reachable: Callable[[QuotaClient], bool]
) -> list[ClientState]:
    """What the plan needs to know of every client of the quota."""
    outstanding = outstanding_by_client(session, quota)
    return [
        ClientState(
            c.id,
            reachable(c),
            c.count,
            assumed_ceiling(session, c, outstanding.get(c.id, 0)),
            c.rate,
            weight=c.weight,
            max_ceiling=c.max_ceiling,
            active=c.active,
            approved=outstanding.get(c.id, 0),
        )
        for c in quota.clients
    ]


def free_records(session: Session, quota: ControllerQuota) -> int:
    """What no client may create yet: the reserve and any reclaimed headroom."""
    return max(0, quota.target - committed_total(session, quota))


class Controller:
    """Pull from and push to the clients of one quota (``clients``: names, or all)."""

    def __init__(
        self,
        session: Session,
        quota: ControllerQuota,
        transport: Transport | None,
        commit: Callable[[], None],
        clients: Iterable[str] | None = None,
        now: Callable[[], datetime] = utcnow,
        policy: Policy | None = None,
        actor: str = "pull",
    ) -> None:
        self.session = session
        self.quota = quota
        self.transport = transport
        self.commit = commit
        self.now = now
        self.policy = policy or Policy()
        self.actor = actor
        self._wanted = set(clients) if clients is not None else None
        self.reachable: set[int] = set()
        self.reports: dict[int, dict[str, Any]] = {}
        self._addresses: dict[int, Address] = {}
        self._history_rows: list[dict[str, Any]] = []

    @functools.cached_property
    def clients(self) -> list[QuotaClient]:
        """The clients pulled from and pushed to (a check-in needs none: it
        never loads them all with their secrets)."""
        wanted = self._wanted
        return [c for c in self.quota.clients if wanted is None or c.name in wanted]

    def _address(self, client: QuotaClient) -> Address:
        """Where to reach ``client``, read once: its secret is not read again
        after a commit."""
        address = self._addresses.get(client.id)
        if address is None:
            address = self._addresses[client.id] = Address.of(client)
        return address

    def _commit(self) -> None:
        """Write the history noted so far (one bulk insert), then commit."""
        if self._history_rows:
            self.session.execute(insert(QuotaHistory), self._history_rows)
            self._history_rows = []
        self.commit()

    def _check_active(self) -> None:
        now = self.now()
        quota = self.quota
        if not quota.active or not quota.window_start <= now < quota.window_expires:
            raise QuotaNotActive(f"quota {quota.record_kind!r} is not active now")

    def _history(
        self, client: QuotaClient | None, event: str, detail: str = ""
    ) -> None:
        self._history_rows.append(
            {
                "quota_id": self.quota.id,
                "client_id": client.id if client else None,
                "client_name": client.name if client else "",
                "actor": self.actor,
                "event": event,
                "count": client.count if client else None,
                "ceiling": client.acknowledged if client else None,
                "detail": detail,
                "at": self.now(),
            }
        )

    def _observe_install(self, client: QuotaClient, install: str | None) -> None:
        """A report of another install (or of none: a wiped device that has
        no quota row yet) than the one last seen means a new install."""
        if install == client.install:
            return
        if client.install is not None:
            self._reinstalled(client, "the device reports another install")
        client.install = install

    def _observe_count(self, client: QuotaClient, device_count: int) -> None:
        """Take the device's count; a count that goes back means the device was
        reinstalled (or restored): what it created before stays counted."""
        if device_count < client.count - client.earlier:
            before = client.count - client.earlier
            self._reinstalled(
                client, f"the device's count went back from {before} to {device_count}"
            )
        client.count = client.earlier + device_count

    def _reinstalled(self, client: QuotaClient, why: str) -> None:
        """Close the device's previous install: everything it may have created
        stays counted -- the records seen in ``earlier``, and what it may have
        made since its last report (up to its ceiling, raises on their way and
        codes approved for it) in the quota's ``retired``. A ceiling sent to
        the device, or a raise still on its way, may yet reach the new install;
        codes approved stay held too (one asked for on the new install before
        this report may still be applied)."""
        outstanding = outstanding_extra(self.session, client)
        held = max(client.acknowledged, client.pending or 0) + outstanding
        unseen = max(0, held - client.count)
        old_earlier = client.earlier
        client.earlier = client.count
        self.quota.retired += unseen
        if client.pending is not None:
            client.pending = client.earlier + (client.pending - old_earlier)
        # Until the new install reports, it may hold what was last sent.
        client.acknowledged = client.earlier + (client.acknowledged - old_earlier)
        client.reinstalled = self.now()
        self._history(
            client,
            "reinstalled",
            f"{why}: the {client.count} records seen stay counted"
            + (
                f", and the {unseen} more it may have created since its last"
                " report are held"
                if unseen
                else ""
            ),
        )

    def _settle(self, client: QuotaClient, report: dict[str, Any]) -> None:
        now = self.now()
        self._observe_install(client, report.get("install"))
        before = client.count
        self._observe_count(client, int(report["count"]))
        if client.last_contact is not None:
            hours = max((now - client.last_contact).total_seconds() / 3600, 1 / 60)
            recent = max(0, client.count - before) / hours
            client.rate = RATE_SMOOTHING * recent + (1 - RATE_SMOOTHING) * client.rate
        skew = self.policy.max_skew.total_seconds()
        ceiling = int(report["ceiling"])
        may = ceiling
        confirmed, lease = report.get("confirmed"), report.get("lease_expires") or 0
        if confirmed is not None and lease and now.timestamp() >= lease + skew:
            may = min(ceiling, confirmed)  # the lease is over on any clock
        device_count = client.count - client.earlier
        client.acknowledged = client.earlier + max(may, device_count)
        if client.pending is not None and (
            client.earlier + ceiling >= client.pending
            or (
                client.pending_until is not None
                and now >= client.pending_until + self.policy.max_skew
            )
        ):
            client.pending = None
            client.pending_until = None
        if report.get("clock") is not None:
            received = report.get("_received", time.time())
            client.clock_skew = float(report["clock"]) - received
        client.last_contact = now
        client.last_error = ""
        note_device_contact(self.session, client.instance_id, VIA_QUOTA, now)
        used = set(report.get("used_overrides") or [])
        if used:
            for approval in self.session.scalars(
                select(QuotaApproval).where(
                    QuotaApproval.client_id == client.id,
                    QuotaApproval.nonce.in_(used),
                    QuotaApproval.used.is_(False),
                )
            ):
                approval.used = True

    def _locked(self) -> None:
        """Lock the quota and re-read its clients before settling answers."""
        lock_quota(self.session, self.quota)

    def get_all(self) -> PullSummary:
        """Ask every client for its ceiling and count; record who answered."""
        self._check_active()
        summary = PullSummary()
        answers = self._exchange(
            "GET", [(self._address(c), None) for c in self.clients]
        )
        self._locked()
        self.reachable = set()
        for client, report in zip(self.clients, answers, strict=True):
            if isinstance(report, Exception):
                client.last_error = str(report) or "unreachable"
                summary.unreachable += 1
                self._history(client, "unreachable", client.last_error)
                continue
            self._settle(client, report)
            self.reports[client.id] = report
            self.reachable.add(client.id)
            summary.reached += 1
            self._history(client, "report")
        self._commit()
        return summary

    def _exchange(self, method: str, calls: list[tuple[Address, dict | None]]):
        """Make the calls at once; each answer is a report or the exception
        (TransportError, CeilingRefused) the call ended in."""
        if not calls:
            return []
        kind = self.quota.record_kind
        exchange_all = getattr(self.transport, "exchange_all", None)
        if exchange_all is not None:
            return exchange_all(method, kind, calls)

        def call(item: tuple[Address, dict | None]):
            address, body = item
            try:
                if method == "GET":
                    return self.transport.get(address, kind)
                return self.transport.put(address, kind, body)
            except (CeilingRefused, TransportError) as exc:
                return exc

        workers = max(1, min(MAX_WORKERS, len(calls)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(call, calls))

    def _body(self, client: QuotaClient, ceiling: int, leased: bool) -> dict:
        quota = self.quota
        body = {
            "ceiling": ceiling - client.earlier,
            "window_start": int(quota.window_start.timestamp()),
            "window_expires": int(quota.window_expires.timestamp()),
            "controller_time": int(time.time()),
            "max_clock_skew": int(self.policy.max_skew.total_seconds()),
        }
        if leased:
            body["confirmed"] = max(0, client.acknowledged - client.earlier)
            body["lease_expires"] = int((self.now() + self.policy.lease).timestamp())
        return body

    def _calls(
        self, changes: list[tuple[QuotaClient, int, bool]]
    ) -> list[tuple[Address, dict]]:
        """The address and body of each change, made while the rows are loaded."""
        return [
            (self._address(client), self._body(client, ceiling, leased))
            for client, ceiling, leased in changes
        ]

    def _send_all(
        self,
        changes: list[tuple[QuotaClient, int, bool]],
        calls: list[tuple[Address, dict]] | None = None,
    ) -> int:
        """Send ceilings concurrently; settle the answers; return how many took."""
        if not changes:
            return 0
        if calls is None:
            calls = self._calls(changes)
        answers = self._exchange("PUT", calls)
        self._locked()
        taken = 0
        for (client, ceiling, _leased), answer in zip(changes, answers, strict=True):
            if isinstance(answer, CeilingRefused):
                self._observe_count(client, answer.count)
                self._history(client, "refused", f"ceiling {ceiling}: {answer}")
            elif isinstance(answer, TransportError):
                client.last_error = str(answer)
                self._history(client, "unconfirmed", f"ceiling {ceiling}: {answer}")
            else:
                self._settle(client, answer)
                self._history(
                    client, "ceiling", f"ceiling set to {client.acknowledged}"
                )
                taken += 1
        return taken

    def _needs_refresh(self, client: QuotaClient) -> bool:
        """A reachable client whose window differs, or whose lease is half over."""
        report = self.reports.get(client.id)
        if report is None:
            return False
        quota = self.quota
        if report.get("window_start") != int(quota.window_start.timestamp()):
            return True
        if report.get("window_expires") != int(quota.window_expires.timestamp()):
            return True
        lease = report.get("lease_expires") or 0
        if report.get("confirmed") is None or not lease:
            return False
        half = self.policy.lease.total_seconds() / 2
        return lease - self.now().timestamp() < half

    def _raise_room(self, states: list[ClientState]) -> int:
        """What may be handed out now: free records less the reserve."""
        reserve = withheld(self.policy.reserve_for(self.quota.target), states)
        return self.quota.target - committed_total(self.session, self.quota) - reserve

    def _desired(self, reachable: Callable[[QuotaClient], bool]) -> dict[int, int]:
        states = client_states(self.session, self.quota, reachable)
        return plan(
            self.quota.target,
            states,
            reserve=self.policy.reserve_for(self.quota.target),
            floor=self.policy.floor,
            retired=self.quota.retired,
        )

    def _grant(
        self, client: QuotaClient, desired: int, spare: int
    ) -> tuple[int | None, int]:
        """Record a raise towards ``desired`` (or resend the pending one); return
        the ceiling to send (None: nothing to raise) and the records it adds."""
        base = max(client.acknowledged, client.pending or 0)
        raise_by = max(0, min(desired - base, spare))
        if raise_by:
            client.pending = base + raise_by
        elif client.pending is None:
            return None, 0
        client.pending_until = self.now() + self.policy.lease
        return client.pending, raise_by

    def post_all(self) -> int:
        """Lower, then raise, ceilings towards the plan; return how many changed."""
        self._check_active()
        reread_clients(self.session, self.quota)  # one query, not one a client
        desired = self._desired(lambda c: c.id in self.reachable)
        ours = [c for c in self.clients if c.id in desired]
        lowered = [
            (c, desired[c.id], False) for c in ours if desired[c.id] < c.acknowledged
        ]
        changed = self._send_all(lowered)
        self._commit()
        self._locked()
        states = client_states(self.session, self.quota, lambda c: False)
        spare = self._raise_room(states)
        raises, lowered_ids = [], {c.id for c, _, _ in lowered}
        for client in sorted(ours, key=lambda c: -c.rate):
            if client.id in lowered_ids:
                continue
            ceiling, added = self._grant(client, desired[client.id], spare)
            if ceiling is not None:
                spare -= added
                raises.append((client, ceiling, True))
            elif self._needs_refresh(client):
                raises.append((client, client.acknowledged, False))
        calls = self._calls(raises)
        self._commit()  # every raise is on record before any client can use it
        changed += self._send_all(raises, calls)
        self._commit()
        return changed

    def pull(self) -> PullSummary:
        """One round: reports in, then ceilings out."""
        summary = self.get_all()
        summary.changed = self.post_all()
        return summary

    def reclaim(self, needed: int) -> int:
        """Ask the idlest reachable clients to confirm lower ceilings (never
        below their count plus the fair floor) until ``needed`` records are
        free; return how many were freed."""
        self.get_all()
        reread_clients(self.session, self.quota)
        before = free_records(self.session, self.quota)
        left = needed - before
        lowered = []
        idle_first = sorted(
            (c for c in self.clients if c.id in self.reachable),
            key=lambda c: (c.rate, c.id),
        )
        for client in idle_first:
            room = client.acknowledged - client.count - self.policy.floor
            if left <= 0 or room <= 0 or client.pending is not None:
                continue
            take = min(room, left)
            lowered.append((client, client.acknowledged - take, False))
            left -= take
        self._send_all(lowered)
        self._commit()
        return free_records(self.session, self.quota) - before

    def check_in(self, client: QuotaClient, report: dict[str, Any]) -> dict[str, Any]:
        """Settle a client's own report and answer with its ceiling; the raise
        is on record (committed) before the answer leaves."""
        self._check_active()
        self._locked()
        self._settle(client, report)
        self.reports[client.id] = report
        self._history(client, "check-in")
        # Shares are planned as if every client had answered (their last
        # counts); what is really free limits the raise.
        desired = self._desired(lambda c: True)[client.id]
        states = client_states(self.session, self.quota, lambda c: False)
        spare = self._raise_room(states)
        if desired < client.acknowledged:
            # Lowered only once a later report confirms it.
            body = self._body(client, desired, leased=False)
            self._history(client, "ceiling", f"asked to lower the ceiling to {desired}")
        else:
            ceiling, _added = self._grant(client, desired, spare)
            if ceiling is None:
                body = self._body(client, client.acknowledged, leased=False)
            else:
                body = self._body(client, ceiling, leased=True)
                self._history(client, "ceiling", f"ceiling {ceiling} sent")
        self._commit()
        return body
