"""The background jobs pages: filters, a job's detail, retry and cancel."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.support import csrf_token
from tracker.batch.models import BatchItem, BatchOperation
from tracker.instances.models import Instance

DAY = datetime(2026, 11, 20, 12, tzinfo=UTC)


def add_operation(session, **fields) -> int:
    values = {"operation_type": "crawl", "scope": "all", "status": "finished"}
    operation = BatchOperation(**{**values, **fields})
    session.add(operation)
    session.flush()
    return operation.id


def listed(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-operation="(\d+)"', page)]


@pytest.fixture
def jobs(db):
    with db.session() as session:
        ids = {
            "crawl-partial": add_operation(
                session, result="partial", created=DAY, failed=2, done=1, total=3
            ),
            "crawl-ok": add_operation(
                session, result="successful", created=DAY.replace(day=22)
            ),
            "housekeeping": add_operation(
                session,
                operation_type="housekeeping",
                scope="",
                result="successful",
                created=DAY.replace(day=25),
            ),
            "waiting": add_operation(
                session,
                status="unprocessed",
                scope="instance:9",
                result="not-available",
                created=DAY.replace(day=25),
                active_key="crawl:instance:9",
            ),
        }
        session.commit()
    return ids


def test_jobs_filter_by_type_status_result_and_dates(signed_in, jobs):
    def ids(query: str) -> set[int]:
        return set(listed(signed_in.get(f"/batch-operations?{query}").get_data(True)))

    assert ids("") == set(jobs.values())
    assert ids("type=housekeeping") == {jobs["housekeeping"]}
    assert ids("type=crawl&result=successful") == {jobs["crawl-ok"]}
    assert ids("status=unprocessed") == {jobs["waiting"]}
    assert ids("since=2026-11-21&until=2026-11-22") == {jobs["crawl-ok"]}
    assert ids("until=2026-11-20") == {jobs["crawl-partial"]}
    # Nonsense is ignored, never a 500.
    assert ids("status=bogus&since=yesterday&result=") == set(jobs.values())
    page = signed_in.get("/batch-operations?type=nothing").get_data(as_text=True)
    assert "No background job matches these filters." in page


def test_a_failed_count_leads_to_the_items_and_their_reasons(signed_in, db, jobs):
    with db.session() as session:
        session.add_all(
            [
                BatchItem(
                    batch_operation_id=jobs["crawl-partial"],
                    item_id=41,
                    outcome="failed",
                    error="HTTP 503",
                ),
                BatchItem(
                    batch_operation_id=jobs["crawl-partial"], item_id=42, outcome="done"
                ),
            ]
        )
        operation = session.get(BatchOperation, jobs["crawl-partial"])
        operation.input_data = {"instance_ids": [41, 42]}
        operation.output_data = {"notice": "two endpoints", "skipped": {"a": 1}}
        session.commit()
    index = signed_in.get("/batch-operations").get_data(as_text=True)
    link = f"/batch-operations/{jobs['crawl-partial']}?outcome=failed"
    assert f'href="{link}"' in index
    page = signed_in.get(link).get_data(as_text=True)
    assert "#41" in page and "HTTP 503" in page and "#42" not in page
    facts = re.search(r'id="operation-input">.*?</section>', page, re.S).group(0)
    assert "<dt>instance_ids</dt>" in facts and "<li>41</li>" in facts
    output = re.search(r'id="operation-output">.*?</section>', page, re.S).group(0)
    assert "two endpoints" in output


def test_retry_crawls_again_what_failed_as_a_new_job(signed_in, db, jobs):
    with db.session() as session:
        for index, outcome in ((1, "failed"), (2, "done"), (3, "failed")):
            instance = Instance(
                url=f"https://s{index}.example.org",
                contact="C",
                email="c@example.org",
                organisation="O",
            )
            session.add(instance)
            session.flush()
            session.add(
                BatchItem(
                    batch_operation_id=jobs["crawl-partial"],
                    item_id=instance.id,
                    outcome=outcome,
                    error="timeout" if outcome == "failed" else "",
                )
            )
        session.commit()
    path = f"/batch-operations/{jobs['crawl-partial']}"
    assert "Retry what failed" in signed_in.get(path).get_data(as_text=True)
    token = csrf_token(signed_in, path)
    response = signed_in.post(f"{path}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    with db.session() as session:
        retried = session.scalars(
            select(BatchOperation).order_by(BatchOperation.id.desc())
        ).first()
        assert response.headers["Location"] == f"/batch-operations/{retried.id}"
        assert retried.id not in jobs.values()
        assert (retried.operation_type, retried.status) == ("crawl", "unprocessed")
        assert retried.scope == f"retry:{jobs['crawl-partial']}"
        assert retried.input_data == {"instance_ids": [1, 3]}
    # A successful job offers no retry, and refuses one.
    ok = f"/batch-operations/{jobs['crawl-ok']}"
    assert "Retry what failed" not in signed_in.get(ok).get_data(as_text=True)
    refused = signed_in.post(
        f"{ok}/retry", data={"csrf_token": token}, follow_redirects=True
    )
    assert "can be retried" in refused.get_data(as_text=True)


def test_a_job_not_yet_started_can_be_cancelled(signed_in, db, jobs):
    path = f"/batch-operations/{jobs['waiting']}"
    assert f'action="{path}/cancel"' in signed_in.get(path).get_data(as_text=True)
    token = csrf_token(signed_in, path)
    page = signed_in.post(
        f"{path}/cancel", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert '<p class="flash flash-success" role="status">Job' in page
    with db.session() as session:
        cancelled = session.get(BatchOperation, jobs["waiting"])
        assert (cancelled.status, cancelled.result) == ("finished", "cancelled")
    again = signed_in.post(
        f"{path}/cancel", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert "cannot be cancelled" in again
    assert f'action="{path}/cancel"' not in again
