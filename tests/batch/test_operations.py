"""BatchOperation life cycle, with the database enforcing one active run per scope."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tracker.batch import operations
from tracker.batch.models import BatchOperation
from tracker.db_types import utcnow
from tracker.extensions import db


@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session


def test_asynchronous_operation_life_cycle(session):
    operation = operations.create_asynchronous(session, "crawl", "all", {"x": 1})
    session.commit()
    assert (operation.status, operation.result) == ("unprocessed", "not-available")
    assert operations.mark_running(session, operation.id, total=3)
    assert not operations.mark_running(session, operation.id, total=3)
    operations.add_progress(session, operation.id, done=2)
    assert not operations.finish_if_complete(session, operation.id)
    operations.add_progress(session, operation.id, failed=1)
    assert operations.finish_if_complete(session, operation.id)
    assert not operations.finish_if_complete(session, operation.id)
    session.commit()
    finished = session.get(BatchOperation, operation.id, populate_existing=True)
    assert (finished.status, finished.result) == ("finished", "partial")
    assert (finished.done, finished.failed, finished.total) == (2, 1, 3)
    assert finished.active_key is None


@pytest.mark.parametrize(
    ("done", "failed", "result"),
    [(3, 0, "successful"), (0, 3, "failed"), (1, 2, "partial"), (0, 0, "successful")],
)
def test_result_follows_from_the_counts(session, done, failed, result):
    operation = operations.create_synchronous(session, "job")
    operations.add_progress(session, operation.id, done=done, failed=failed)
    operations.finish(session, operation.id)
    session.commit()
    assert (
        session.get(BatchOperation, operation.id, populate_existing=True).result
        == result
    )


def test_one_active_operation_per_type_and_scope(session):
    first = operations.create_asynchronous(session, "crawl", "all")
    session.commit()
    with pytest.raises(operations.AlreadyActive) as info:
        operations.create_asynchronous(session, "crawl", "all")
    assert info.value.existing.id == first.id
    operations.create_asynchronous(session, "crawl", "instance:1")
    operations.create_asynchronous(session, "housekeeping", "all")
    session.commit()
    operations.finish(session, first.id)
    session.commit()
    operations.create_asynchronous(session, "crawl", "all")
    session.commit()


def test_concurrent_creations_let_exactly_one_through(app):
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        with app.app_context():
            barrier.wait()
            try:
                operations.create_asynchronous(db.session, "crawl", "all")
                db.session.commit()
                outcomes.append("created")
            except operations.AlreadyActive:
                db.session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["refused"] * 7


def test_stale_operations_are_failed_and_unlocked(session):
    stale = operations.create_synchronous(session, "crawl", "all")
    stale.heartbeat = utcnow() - timedelta(seconds=120)
    fresh = operations.create_synchronous(session, "crawl", "instance:1")
    operations.add_progress(session, fresh.id, done=1)
    session.commit()
    assert operations.fail_stale(session, timedelta(seconds=60)) == [stale.id]
    session.commit()
    row = session.get(BatchOperation, stale.id, populate_existing=True)
    assert (row.status, row.result) == ("finished", "failed")
    assert "heartbeat" in row.error
    assert session.get(BatchOperation, fresh.id).status == "running"
    operations.create_synchronous(session, "crawl", "all")  # no longer locked
    session.commit()


def test_progress_after_finish_is_refused(session):
    operation = operations.create_synchronous(session, "crawl", "all")
    operations.finish(session, operation.id, result="failed")
    session.commit()
    assert not operations.add_progress(session, operation.id, done=1)


def test_skipped_runs_are_recorded(session):
    operation = operations.record_skipped(session, "crawl", "all", "busy")
    session.commit()
    assert (operation.status, operation.result, operation.error) == (
        "finished",
        "skipped",
        "busy",
    )


def test_an_operation_whose_heart_beat_meanwhile_is_not_failed(session):
    operation = operations.create_synchronous(session, "crawl", "all")
    session.commit()
    long_ago = utcnow() - timedelta(hours=1)
    assert not operations.finish(
        session, operation.id, result="failed", stale_before=long_ago
    )
    assert session.get(BatchOperation, operation.id, populate_existing=True).is_active
