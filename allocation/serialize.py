"""JSON shapes of ledger lines."""

from __future__ import annotations

from typing import Any

from allocation.ledger import LedgerLine

STATUS_OK = "ok"
STATUS_NEAR = "near"
STATUS_EXCEEDED = "exceeded"


def ledger_status(line: LedgerLine, near_percent: float) -> str:
    """Return ok, near (at least ``near_percent`` used) or exceeded."""
    if line.exceeded:
        return STATUS_EXCEEDED
    return STATUS_NEAR if line.is_near(near_percent) else STATUS_OK


def ledger_line(line: LedgerLine, near_percent: float) -> dict[str, Any]:
    """Return one allocation pool's balance as JSON."""
    return {
        "allocation_pool_id": line.pool_id,
        "project": {"id": line.project_id, "name": line.project},
        "period": {"id": line.period_id, "name": line.period},
        "resource_pool": {
            "id": line.resource_pool_id,
            "name": line.resource_pool,
            "units": line.units,
            "function": line.function,
        },
        "allocated": line.allocated,
        "used": line.used,
        "raw_used": line.raw_used,
        "remaining": line.remaining,
        "used_percent": line.used_percent,
        "exceeded": line.exceeded,
        "status": ledger_status(line, near_percent),
        "days_with_usage": line.days,
    }
