"""JSON shape of a BatchOperation."""

from tracker.batch.models import BatchOperation


def _iso(value):
    return value.isoformat() if value is not None else None


def batch_operation_summary(operation: BatchOperation) -> dict:
    return {
        "id": operation.id,
        "operation_type": operation.operation_type,
        "scope": operation.scope,
        "context": (
            {"type": operation.context_type, "id": operation.context_id}
            if operation.context_type
            else None
        ),
        "status": operation.status,
        "result": operation.result,
        "progress": {
            "total": operation.total,
            "done": operation.done,
            "failed": operation.failed,
            "skipped": operation.skipped,
        },
        "created": _iso(operation.created),
        "started": _iso(operation.started),
        "finished": _iso(operation.finished),
        "heartbeat": _iso(operation.heartbeat),
        "output": operation.output_data,
        "error": operation.error,
        "fault": operation.fault,
        "notice": operation.notice,
    }
