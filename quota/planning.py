"""How the controller splits what remains of a target: plain arithmetic.

Ceilings are absolute: a ceiling caps a client's cumulative count in the window.
Each reachable client keeps what it already created; the headroom is the target
minus every count, minus what unreachable clients may still use, minus approved
overrides not used yet, minus the override reserve. It is split in three steps:

1. the fair floor: every reachable, active client gets ``floor`` records of room
   while the headroom allows; when it does not, the headroom is split evenly
   among them (the largest remainders to the busiest), so a new or quiet client
   is never left at nothing while others get more;
2. the rest in proportion to weight x (base + recent creation rate), so busy
   clients get more and every client keeps a little;
3. a client's ``max_ceiling`` caps it; what it cannot take goes to the others.

Inactive clients keep what they created and get no room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BASE_WEIGHT = 1.0


@dataclass(frozen=True)
class ClientState:
    id: int
    reachable: bool
    count: int
    assumed: int  # the most this client may be allowed right now
    rate: float
    weight: float = 1.0
    max_ceiling: int | None = None
    active: bool = True
    approved: int = 0  # approved overrides not used yet, part of ``assumed``


def withheld(reserve: int, clients: Sequence[ClientState]) -> int:
    """What the plan leaves unassigned for overrides: the reserve, of which
    approvals not used yet are a part."""
    return max(0, reserve - sum(c.approved for c in clients))


def headroom(
    target: int, clients: Sequence[ClientState], reserve: int = 0, retired: int = 0
) -> int:
    """What is left once reachable clients keep their counts (and approvals),
    unreachable ones keep everything they may have been allowed, and the
    reserve is set aside."""
    held = sum(c.count + c.approved if c.reachable else c.assumed for c in clients)
    return max(0, target - retired - held - withheld(reserve, clients))


def _split(amount: int, weights: dict[int, float], order: list[int]) -> dict[int, int]:
    """Largest-remainder split of ``amount`` by ``weights``; ties go by ``order``."""
    total = sum(weights.values())
    if amount <= 0 or total <= 0:
        return dict.fromkeys(weights, 0)
    exact = {i: amount * w / total for i, w in weights.items()}
    shares = {i: int(v) for i, v in exact.items()}
    rank = {i: n for n, i in enumerate(order)}
    leftover = amount - sum(shares.values())
    for i in sorted(exact, key=lambda i: (shares[i] - exact[i], rank[i]))[:leftover]:
        shares[i] += 1
    return shares


def plan(
    target: int,
    clients: Sequence[ClientState],
    reserve: int = 0,
    floor: int = 0,
    retired: int = 0,
) -> dict[int, int]:
    """The ceiling each reachable client should have."""
    reachable = [c for c in clients if c.reachable]
    if not reachable:
        return {}
    spare = headroom(target, clients, reserve, retired)
    room = {c.id: 0 for c in reachable}
    # How much more each may take at most (None: no cap).
    cap = {
        c.id: (
            0
            if not c.active
            else None
            if c.max_ceiling is None
            else max(0, c.max_ceiling - c.count - c.approved)
        )
        for c in reachable
    }
    busiest = [c.id for c in sorted(reachable, key=lambda c: (-c.rate, c.id))]
    takers = [i for i in busiest if cap[i] != 0]

    def give(amount: int, weights: dict[int, float]) -> int:
        """Hand out up to ``amount`` by weight within the caps; return what was
        given."""
        given = 0
        open_ = dict(weights)
        while amount - given > 0 and open_:
            shares = _split(amount - given, open_, [i for i in busiest if i in open_])
            full = []
            for i, share in shares.items():
                left = None if cap[i] is None else cap[i] - room[i]
                take = share if left is None else min(share, left)
                room[i] += take
                given += take
                if left is not None and take >= left:
                    full.append(i)
            if not full:
                break
            for i in full:
                open_.pop(i)
        return given

    if takers and floor > 0:
        spare -= give(min(spare, floor * len(takers)), dict.fromkeys(takers, 1.0))
    if takers and spare > 0:
        by_id = {c.id: c for c in reachable}
        weights = {
            i: by_id[i].weight * (BASE_WEIGHT + max(0.0, by_id[i].rate))
            for i in takers
            if by_id[i].weight > 0
        }
        give(spare, weights)
    # Approvals not used yet come on top when the device applies them.
    return {c.id: c.count + room[c.id] for c in reachable}
