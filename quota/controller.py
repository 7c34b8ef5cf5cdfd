"""The controller: pull counts from field clients, then move ceilings safely.

Order matters for the invariant *sum of possible ceilings <= target*:
1. every report settles what a client really has (ceiling, count, used codes);
2. ceilings that go down are sent first, and count as lowered only once the
   client confirms;
3. only then is the freed headroom handed out, each raise recorded as pending
   (and committed) *before* it is sent, so a lost reply or a restart never lets
   the controller hand the same headroom out twice.
Unreachable clients keep whatever they may have; one failure never stops a pull.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from quota.models import ControllerQuota, QuotaApproval, QuotaClient, QuotaHistory
from quota.planning import ClientState, plan
from tracker.db_types import utcnow

RATE_SMOOTHING = 0.5


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
class Address:
    """Where and how to reach a client: plain values, safe to hand to threads."""

    name: str
    endpoint: str
    secret: str

    @classmethod
    def of(cls, client: QuotaClient) -> Address:
        return cls(client.name, client.endpoint, client.secret)


class Transport(Protocol):
    def get(self, client: Address, kind: str) -> dict[str, Any]: ...

    def put(
        self, client: Address, kind: str, body: dict[str, Any]
    ) -> dict[str, Any]: ...


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class HttpTransport:
    """Talks to the field clients' quota blueprint over HTTP with timeouts."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def _call(self, method: str, client: Address, kind: str, body=None) -> dict:
        url = f"{client.endpoint.rstrip('/')}/quota/{kind}"
        try:
            response = requests.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {client.secret}"},
                timeout=self.timeout,
                allow_redirects=False,
            )
            data = response.json()
        except (requests.RequestException, ValueError, RecursionError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}"[:300]) from None
        if not isinstance(data, dict):
            raise TransportError(f"HTTP {response.status_code}: not a JSON object")
        if response.status_code == 409 and _is_count(data.get("count")):
            raise CeilingRefused(data["count"])
        if response.status_code != 200:
            raise TransportError(
                f"HTTP {response.status_code}: {data.get('message', '')}"
            )
        if not (_is_count(data.get("count")) and _is_count(data.get("ceiling"))):
            raise TransportError("the report lacks a whole count and ceiling")
        used = data.get("used_overrides") or []
        if not isinstance(used, list) or not all(isinstance(n, str) for n in used):
            raise TransportError("the report's used_overrides is not a list of codes")
        return data

    def get(self, client: Address, kind: str) -> dict[str, Any]:
        return self._call("GET", client, kind)

    def put(self, client: Address, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", client, kind, body)


@dataclass
class PullSummary:
    reached: int = 0
    unreachable: int = 0
    changed: int = 0


def outstanding_extra(session: Session, client: QuotaClient) -> int:
    """Approved overrides the client may still apply."""
    approvals = session.scalars(
        select(QuotaApproval).where(
            QuotaApproval.client_id == client.id, QuotaApproval.used.is_(False)
        )
    ).all()
    # An approval stops counting once a report made after its expiry omits it.
    return sum(
        a.extra
        for a in approvals
        if client.last_contact is None or a.expires > client.last_contact
    )


def assumed_ceiling(session: Session, client: QuotaClient) -> int:
    """The most this client may be allowed now, whatever messages were lost."""
    return max(client.acknowledged, client.pending or 0) + outstanding_extra(
        session, client
    )


def lock_quota(session: Session, quota: ControllerQuota) -> None:
    """Hold the quota's row until commit: whoever hands out headroom next waits,
    then sees what this transaction handed out (a write locks on every database)."""
    session.execute(
        update(ControllerQuota)
        .where(ControllerQuota.id == quota.id)
        .values(target=ControllerQuota.target)
    )
    session.refresh(quota)


def committed_total(session: Session, quota: ControllerQuota) -> int:
    return sum(assumed_ceiling(session, c) for c in quota.clients)


class Controller:
    """Pull from and push to the clients of one quota (``clients``: names, or all)."""

    def __init__(
        self,
        session: Session,
        quota: ControllerQuota,
        transport: Transport,
        commit: Callable[[], None],
        clients: Iterable[str] | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session = session
        self.quota = quota
        self.transport = transport
        self.commit = commit
        self.now = now
        wanted = set(clients) if clients is not None else None
        self.clients = [c for c in quota.clients if wanted is None or c.name in wanted]
        self.reachable: set[int] = set()

    def _check_active(self) -> None:
        now = self.now()
        quota = self.quota
        if not quota.active or not quota.window_start <= now < quota.window_expires:
            raise QuotaNotActive(f"quota {quota.record_kind!r} is not active now")

    def _history(
        self, client: QuotaClient | None, event: str, detail: str = ""
    ) -> None:
        self.session.add(
            QuotaHistory(
                quota_id=self.quota.id,
                client_id=client.id if client else None,
                event=event,
                count=client.count if client else None,
                ceiling=client.acknowledged if client else None,
                detail=detail,
                at=self.now(),
            )
        )

    def _settle(self, client: QuotaClient, report: dict[str, Any]) -> None:
        now = self.now()
        count = int(report.get("count", 0))
        if client.last_contact is not None:
            hours = max((now - client.last_contact).total_seconds() / 3600, 1 / 60)
            recent = max(0, count - client.count) / hours
            client.rate = RATE_SMOOTHING * recent + (1 - RATE_SMOOTHING) * client.rate
        client.count = count
        client.acknowledged = int(report.get("ceiling", 0))
        client.pending = None
        client.last_contact = now
        client.last_error = ""
        used = set(report.get("used_overrides") or [])
        if used:
            for approval in self.session.scalars(
                select(QuotaApproval).where(
                    QuotaApproval.client_id == client.id, QuotaApproval.nonce.in_(used)
                )
            ):
                approval.used = True

    def get_all(self) -> PullSummary:
        """Ask every client for its ceiling and count; record who answered."""
        self._check_active()
        kind = self.quota.record_kind
        summary = PullSummary()

        def ask(address: Address):
            try:
                return self.transport.get(address, kind), None
            except TransportError as exc:
                return None, str(exc)

        addresses = [Address.of(c) for c in self.clients]
        workers = max(1, min(64, len(self.clients)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            answers = list(pool.map(ask, addresses))
        self.reachable = set()
        for client, (report, error) in zip(self.clients, answers, strict=True):
            if report is None:
                client.last_error = error or "unreachable"
                summary.unreachable += 1
                self._history(client, "unreachable", client.last_error)
                continue
            self._settle(client, report)
            self.reachable.add(client.id)
            summary.reached += 1
            self._history(client, "report")
        self.commit()
        return summary

    def _send_all(self, changes: list[tuple[QuotaClient, int]]) -> int:
        """Send ceilings concurrently; settle the answers; return how many took."""
        quota = self.quota
        window = {
            "window_start": int(quota.window_start.timestamp()),
            "window_expires": int(quota.window_expires.timestamp()),
        }

        kind = quota.record_kind

        def send(call: tuple[Address, int]):
            address, ceiling = call
            try:
                return self.transport.put(address, kind, {"ceiling": ceiling, **window})
            except (CeilingRefused, TransportError) as exc:
                return exc

        if not changes:
            return 0
        calls = [(Address.of(client), ceiling) for client, ceiling in changes]
        workers = max(1, min(64, len(changes)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            answers = list(pool.map(send, calls))
        taken = 0
        for (client, ceiling), answer in zip(changes, answers, strict=True):
            if isinstance(answer, CeilingRefused):
                client.count = answer.count
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

    def post_all(self) -> int:
        """Lower, then raise, ceilings towards the plan; return how many changed."""
        self._check_active()
        states = [
            ClientState(
                c.id,
                c.id in self.reachable,
                c.count,
                assumed_ceiling(self.session, c),
                c.rate,
            )
            for c in self.quota.clients
        ]
        desired = plan(self.quota.target, states)
        ours = [c for c in self.clients if c.id in desired]
        lowered = [(c, desired[c.id]) for c in ours if desired[c.id] < c.acknowledged]
        changed = self._send_all(lowered)
        self.commit()
        lock_quota(self.session, self.quota)
        spare = self.quota.target - committed_total(self.session, self.quota)
        raises = []
        for client in sorted(ours, key=lambda c: -c.rate):
            raise_by = min(desired[client.id] - client.acknowledged, spare)
            if raise_by <= 0 or client.pending is not None:
                continue
            client.pending = client.acknowledged + raise_by
            spare -= raise_by
            raises.append((client, client.pending))
        self.commit()  # every raise is on record before any client can use it
        changed += self._send_all(raises)
        self.commit()
        return changed

    def pull(self) -> PullSummary:
        """One round: reports in, then ceilings out."""
        summary = self.get_all()
        summary.changed = self.post_all()
        return summary
