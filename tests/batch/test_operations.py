"""BatchOperation life cycle, with the database enforcing one active run per scope."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tracker.batch import operations
from tracker.batch.models import BatchItem, BatchOperation
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


def test_items_count_once_however_often_they_are_reported(session):
    operation = operations.create_asynchronous(session, "crawl", "all")
    session.commit()
    assert operations.mark_running(session, operation.id, total=4)
    operations.add_items(session, operation.id, [1, 2, 3, 4])
    session.commit()
    assert operations.claim_items(session, operation.id, [1, 2, 9]) == {1, 2}
    operations.settle_items(
        session, operation.id, {1: ("done", ""), 2: ("failed", "HTTP 500")}
    )
    session.commit()
    # A redelivery reports 2 again, and 3: only 3 is new.
    assert operations.claim_items(session, operation.id, [2, 3]) == {3}
    operations.settle_items(session, operation.id, {3: ("skipped", "disabled")})
    session.commit()
    assert operations.pending_items(session, operation.id) == [4]
    assert operations.pending_items(session, operation.id, among=[1, 4]) == [4]
    row = session.get(BatchOperation, operation.id, populate_existing=True)
    assert (row.done, row.failed, row.skipped, row.total) == (1, 1, 1, 4)
    assert not operations.finish_if_complete(session, operation.id)
    assert operations.claim_items(session, operation.id, [4]) == {4}
    operations.settle_items(session, operation.id, {4: ("done", "")})
    assert operations.finish_if_complete(session, operation.id, "successful")
    session.commit()
    row = session.get(BatchOperation, operation.id, populate_existing=True)
    assert (row.status, row.result, row.processed) == ("finished", "successful", 4)
    assert operations.item_errors(session, operation.id) == {
        "HTTP 500": 1,
        "disabled": 1,
    }


def test_a_claim_waits_for_the_other_and_gets_nothing(app):
    """Two deliveries of the same work at once: each item goes to one of them."""
    with app.app_context():
        operation = operations.create_synchronous(db.session, "crawl", "all")
        operations.add_items(db.session, operation.id, list(range(1, 101)))
        db.session.commit()
        operation_id = operation.id
    got: list[set[int]] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        with app.app_context():
            barrier.wait()
            claimed = operations.claim_items(
                db.session, operation_id, list(range(1, 101))
            )
            operations.settle_items(
                db.session, operation_id, {i: ("done", "") for i in claimed}
            )
            db.session.commit()
            got.append(claimed)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(claimed) for claimed in got) == [0, 0, 0, 100]
    with app.app_context():
        assert db.session.get(BatchOperation, operation_id).done == 100


def test_a_resume_is_taken_once_and_progress_clears_the_count(session):
    operation = operations.create_synchronous(session, "crawl", "all")
    operation.heartbeat = utcnow() - timedelta(seconds=120)
    session.commit()
    cutoff = utcnow() - timedelta(seconds=60)
    assert operations.resume(session, operation.id, "worker lost", cutoff)
    # Its heart beat with the resume: a second housekeeper finds nothing stale.
    assert not operations.resume(session, operation.id, "worker lost", cutoff)
    session.commit()
    row = session.get(BatchOperation, operation.id, populate_existing=True)
    assert (row.resumed, row.fault) == (1, "worker lost")
    operations.add_progress(session, operation.id)  # a heartbeat alone
    session.commit()
    assert session.get(BatchOperation, operation.id, populate_existing=True).resumed
    operations.add_progress(session, operation.id, done=1)
    session.commit()
    row = session.get(BatchOperation, operation.id, populate_existing=True)
    assert row.resumed == 0


@pytest.mark.parametrize(("done", "result"), [(0, "failed"), (2, "partial")])
def test_an_operation_that_cannot_finish_is_closed_naming_the_fault(
    session, done, result
):
    operation = operations.create_synchronous(session, "crawl", "all")
    operations.set_total(session, operation.id, 5)
    operations.add_progress(session, operation.id, done=done)
    session.commit()
    assert operations.close_unfinished(
        session, operation.id, "worker lost: gone", utcnow() + timedelta(seconds=1)
    )
    session.commit()
    row = session.get(BatchOperation, operation.id, populate_existing=True)
    assert (row.status, row.result, row.error) == (
        "finished",
        result,
        "worker lost: gone",
    )


def test_items_of_old_operations_are_pruned(session):
    old = operations.create_synchronous(session, "crawl", "all")
    recent = operations.create_synchronous(session, "crawl", "instance:1")
    operations.add_items(session, old.id, [1, 2])
    operations.add_items(session, recent.id, [1])
    operations.finish(session, old.id)
    operations.finish(session, recent.id)
    session.commit()
    old.finished = utcnow() - timedelta(days=40)
    session.commit()
    assert operations.prune_items(session, keep_days=30) == 2
    session.commit()
    assert operations.pending_items(session, recent.id) == [1]
    assert operations.pending_items(session, old.id) == []


def test_old_operations_are_pruned_with_their_items(session):
    old = operations.create_synchronous(session, "crawl", "all")
    running = operations.create_synchronous(session, "crawl", "instance:2")
    recent = operations.create_synchronous(session, "crawl", "instance:1")
    operations.add_items(session, old.id, [1, 2])
    operations.finish(session, old.id)
    operations.finish(session, recent.id)
    session.commit()
    old.finished = utcnow() - timedelta(days=200)
    running.created = utcnow() - timedelta(days=200)
    session.commit()
    old_id = old.id
    assert operations.prune_operations(session, keep_days=180) == 1
    session.commit()
    remaining = set(session.scalars(select(BatchOperation.id)))
    assert remaining == {running.id, recent.id}
    assert (
        session.scalar(
            select(func.count())
            .select_from(BatchItem)
            .where(BatchItem.batch_operation_id == old_id)
        )
        == 0
    )


def test_only_an_operation_not_yet_started_can_be_cancelled(session):
    waiting = operations.create_asynchronous(session, "crawl", "all")
    started = operations.create_asynchronous(session, "crawl", "instance:1")
    session.commit()
    assert operations.mark_running(session, started.id, total=1)
    assert operations.cancel_unstarted(session, waiting.id, "ada")
    assert not operations.cancel_unstarted(session, started.id, "ada")
    session.commit()
    cancelled = session.get(BatchOperation, waiting.id, populate_existing=True)
    assert (cancelled.status, cancelled.result) == ("finished", "cancelled")
    assert cancelled.error == "cancelled before it started (by ada)"
    assert cancelled.active_key is None
    # A worker that gets it afterwards does not run it.
    assert not operations.mark_running(session, waiting.id, total=1)
    # The scope is free again.
    operations.create_asynchronous(session, "crawl", "all")
