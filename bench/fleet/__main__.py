"""Fleet health and notifications at fleet size.

    python -m bench.fleet [--instances 10000] [--repeat 5]

On SQLite, in-process: the state of every instance (what the list's summary,
its state filter, the alert evaluation and service discovery compute), the
evaluation of alerts when a tenth of the fleet goes down at once and when
nothing changed, the list page and one instance's 30-day uptime. The baseline
in the same run is plain loading of the same instances (``select(Instance)``),
the least any per-instance judgement must cost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from bench.common import bounded_int
from tracker import create_app
from tracker.auth.models import User
from tracker.db_types import utcnow
from tracker.extensions import db
from tracker.instances.fleet import fleet_states
from tracker.instances.models import ContactEvent, CrawlResult, Instance, InstanceTag
from tracker.instances.states import expectations
from tracker.instances.uptime import instance_uptime
from tracker.models import import_all_models
from tracker.notifications.events import evaluate


def seed(size: int) -> None:
    now = datetime.now(UTC)
    rows = []
    for index in range(size):
        offline = index % 3 == 0
        rows.append(
            {
                "uuid": f"00000000-0000-4000-8000-{index:012d}",
                "url": f"https://site{index}.example.org",
                "contact": "C",
                "email": "c@example.org",
                "organisation": f"Org {index % 50}",
                "approved": True,
                "registered": now - timedelta(days=60),
                "updated": now,
                "health": "unknown" if offline else "up",
                "last_contact": now - timedelta(minutes=index % 90),
                "last_contact_via": "heartbeat" if offline else "crawl",
                "contact_every": 3600 if offline else None,
                "crawled": {"version": "3.3"},
            }
        )
    db.session.execute(insert(Instance), rows)
    ids = list(db.session.scalars(select(Instance.id).order_by(Instance.id)))
    db.session.execute(
        insert(InstanceTag),
        [{"instance_id": i, "tag": f"t{i % 20}"} for i in ids[::2]],
    )
    first = ids[0]
    db.session.execute(
        insert(CrawlResult),
        [
            {
                "instance_id": first,
                "crawled_at": now - timedelta(hours=h),
                "health": "down" if h % 50 == 0 else "up",
                "duration_ms": 10,
                "error": "",
                "data": {},
            }
            for h in range(24 * 30)
        ],
    )
    db.session.execute(
        insert(ContactEvent),
        [
            {
                "instance_id": first,
                "at": now - timedelta(minutes=5 * m),
                "via": "heartbeat",
            }
            for m in range(12 * 24 * 30)
        ],
    )
    db.session.add(User(username="bench", password_hash="x"))
    db.session.commit()


def median_ms(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
        db.session.rollback()
        db.session.expire_all()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=bounded_int(100, 1_000_000), default=10_000)
    parser.add_argument("--repeat", type=bounded_int(1, 100), default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(folder) / 'bench.sqlite'}",
                "SECRET_KEY": "bench-" * 6,
                "NOTIFICATION_URLS": ["json://127.0.0.1:9/bench"],
                "WTF_CSRF_ENABLED": False,
            },
            instance_path=folder,
        )
        with app.app_context():
            import_all_models()
            db.create_all()
            seed(args.instances)
            config, now = app.config, utcnow()
            baseline = median_ms(
                lambda: db.session.scalars(select(Instance)).all(), args.repeat
            )
            states = median_ms(
                lambda: fleet_states(db.session, config, now), args.repeat
            )
            quiet = median_ms(lambda: evaluate(db.session, config, now), args.repeat)
            db.session.execute(
                Instance.__table__.update()
                .where(Instance.id % 10 == 1, Instance.contact_every.is_(None))
                # As a crawl records it: the stored state is to be judged again.
                .values(
                    health="down", down_since=now, last_error="HTTP 500", state=None
                )
            )
            db.session.commit()
            started = time.perf_counter()
            told = evaluate(db.session, config, now)
            db.session.commit()
            burst = (time.perf_counter() - started) * 1000
            first = db.session.scalar(select(Instance).order_by(Instance.id))
            schedule = expectations(db.session, config).schedule(first)
            uptime = median_ms(
                lambda: instance_uptime(
                    db.session, first.id, first.registered, schedule, now
                ),
                args.repeat,
            )
            client = app.test_client()
            with client.session_transaction() as session:
                session["_user_id"] = str(db.session.scalar(select(User.id)))
            page = median_ms(lambda: client.get("/"), args.repeat)
            db.session.execute(Instance.__table__.update().values(state=None))
            db.session.commit()
            page_stale = median_ms(lambda: client.get("/"), 1)
    rows = [
        ("baseline: load every instance", baseline),
        ("state of every instance", states),
        ("evaluate alerts, nothing changed", quiet),
        (f"evaluate alerts, {told} new (a tenth down)", burst),
        ("list page with the fleet summary (states stored)", page),
        ("list page, every state to judge (after a crawl run)", page_stale),
        ("30-day uptime of one instance (8,640 heartbeats)", uptime),
    ]
    print(f"{args.instances} instances, SQLite, median of {args.repeat}")
    for label, ms in rows:
        print(f"  {label:<52} {ms:9.1f} ms   {ms / baseline:6.2f}x baseline")


if __name__ == "__main__":
    main()
