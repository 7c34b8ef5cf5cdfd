"""How the controller splits what remains of a target: plain arithmetic.

Ceilings are absolute: a client's ceiling caps its cumulative count in the window.
Each reachable client keeps what it already created; the headroom (target minus
every count, minus what unreachable clients may still use) is split in proportion
to recent creation rates, so busy clients get more. Every client gets a little
weight, so a quiet one is not starved when it wakes up.
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


def headroom(target: int, clients: Sequence[ClientState]) -> int:
    """What is left once reachable clients keep their counts and unreachable
    ones keep everything they may have been allowed."""
    held = sum(c.count if c.reachable else c.assumed for c in clients)
    return max(0, target - held)


def plan(target: int, clients: Sequence[ClientState]) -> dict[int, int]:
    """The ceiling each reachable client should have (largest remainder split)."""
    reachable = [c for c in clients if c.reachable]
    if not reachable:
        return {}
    spare = headroom(target, clients)
    weights = {c.id: BASE_WEIGHT + max(0.0, c.rate) for c in reachable}
    total = sum(weights.values())
    exact = {c.id: spare * weights[c.id] / total for c in reachable}
    shares = {i: int(v) for i, v in exact.items()}
    leftover = spare - sum(shares.values())
    for client_id in sorted(exact, key=lambda i: (shares[i] - exact[i], i))[:leftover]:
        shares[client_id] += 1
    return {c.id: c.count + shares[c.id] for c in reachable}
