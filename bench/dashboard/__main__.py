"""Server time of the dashboard pages with 1,000 and 10,000 instances.

    python -m bench.dashboard [--sizes 1000,10000] [--days 30] [--repeat 7]

Each page is requested in-process through Flask's test client (so the figure is
server time, no network), signed in, on SQLite; the median of ``--repeat`` runs is
reported. The naive baseline does what the original tracker did: load every
instance (and every history row) as ORM objects and filter, sort and aggregate in
Python.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from tracker import create_app
from tracker.auth.models import User
from tracker.extensions import db
from tracker.instances.charts import Row, aggregate_value, chart_series, field_settings
from tracker.instances.models import CrawlResult, Instance
from tracker.models import import_all_models

FIELDS = {
    "python_version": {"label": "Python", "chart": True, "chart_type": "pie"},
    "events": {
        "chart": True,
        "chart_aggregation": "sum",
        "chart_aggregate_by": "country",
    },
    "rooms": {
        "chart": True,
        "aggregation": "sum",
        "chart_aggregation": "avg",
        "chart_aggregate_by": "python_version",
    },
    "users": {"chart": True, "chart_type": "line", "chart_aggregation": "sum"},
}
COUNTRIES = [
    ("CH", "Switzerland"),
    ("KE", "Kenya"),
    ("BR", "Brazil"),
    ("IN", "India"),
    ("US", "United States"),
    (None, None),
]
PAGES = {
    "list: first page": "/",
    "list: filtered": "/?country=KE&q=site1&health=up",
    "list: sorted by crawled field": "/?sort=crawled.events&dir=desc",
    "statistics": "/statistics",
}
RESULTS = Path(__file__).resolve().parents[1] / "results"


def seed(size: int, days: int, rng: random.Random) -> None:
    """Bulk-insert ``size`` instances and ``days`` daily crawl results each."""
    now = datetime.now(UTC)
    rows = []
    for index in range(size):
        code, name = COUNTRIES[index % len(COUNTRIES)]
        rows.append(
            {
                "uuid": f"00000000-0000-4000-8000-{index:012d}",
                "enabled": True,
                "approved": True,
                "url": f"https://site{index}.example.org",
                "contact": "C",
                "email": "c@example.org",
                "organisation": f"Org {index % 50}",
                "registered": now - timedelta(days=rng.randrange(900)),
                "updated": now,
                "health": rng.choice(["up", "up", "down", "unknown"]),
                "last_error": "",
                "crawled_sources": {},
                "location_manual": False,
                "crawled": {
                    "python_version": rng.choice(["3.10", "3.11", "3.12", "3.13"]),
                    "events": rng.randrange(1000),
                    "users": rng.randrange(500),
                    "rooms": [rng.randrange(5) for _ in range(3)],
                },
                "country_code": code,
                "country_name": name,
                "latitude": rng.uniform(-50, 60) if code else None,
                "longitude": rng.uniform(-120, 140) if code else None,
            }
        )
    db.session.execute(insert(Instance), rows)
    ids = db.session.scalars(select(Instance.id)).all()
    batch = []
    for day in range(days):
        moment = now - timedelta(days=day, minutes=5)
        for instance_id in ids:
            batch.append(
                {
                    "instance_id": instance_id,
                    "crawled_at": moment,
                    "health": "up",
                    "status": 200,
                    "duration_ms": 40,
                    "error": "",
                    "data": {"users": rng.randrange(500), "events": 3},
                }
            )
        if len(batch) > 50000:
            db.session.execute(insert(CrawlResult), batch)
            batch.clear()
    if batch:
        db.session.execute(insert(CrawlResult), batch)
    user = User(username="bench")
    user.set_password("bench")
    db.session.add(user)
    db.session.commit()


def signed_in_client(app):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post(
        "/login", data={"username": "bench", "password": "bench", "csrf_token": token}
    )
    return client


def median_ms(action, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def naive_list(sort_field: str | None, page_size: int) -> None:
    """Load every instance, sort and slice in Python."""
    instances = db.session.scalars(select(Instance)).all()
    if sort_field:
        instances.sort(
            key=lambda i: (i.crawled or {}).get(sort_field) or 0, reverse=True
        )
    db.session.expunge_all()
    return instances[:page_size]


def naive_statistics() -> None:
    """Load every instance and every history row as objects, aggregate in Python."""
    fields = field_settings(FIELDS)
    instances = db.session.scalars(select(Instance)).all()
    rows = [Row(i.crawled or {}, i.country_name) for i in instances]
    for setting in fields.values():
        if setting.chart_type != "line":
            chart_series(rows, setting, fields)
    history = db.session.scalars(
        select(CrawlResult).order_by(CrawlResult.crawled_at)
    ).all()
    last_of_day: dict = {}
    for result in history:
        value = aggregate_value(result.data.get("users"), None)
        last_of_day.setdefault(result.crawled_at.date(), {})[result.instance_id] = value
    {day: sum(filter(None, values.values())) for day, values in last_of_day.items()}
    db.session.expunge_all()


def run_size(size: int, days: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as folder:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.sqlite",
                "CRAWLED_FIELDS_SETTINGS": FIELDS,
                "SECRET_KEY": "bench",
            },
            instance_path=Path(folder) / "instance",
            environ={},
        )
        with app.app_context():
            import_all_models()
            db.create_all()
            began = time.perf_counter()
            seed(size, days, random.Random(size))
            print(
                f"  seeded {size} instances, {size * days} history rows "
                f"in {time.perf_counter() - began:.1f} s"
            )
        client = signed_in_client(app)
        figures = {}
        for name, path in PAGES.items():

            def request(path=path):
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)

            request()  # warm caches, as a page already open all day would be
            figures[name] = median_ms(request, repeat)
        with app.app_context():
            page_size = app.config["DASHBOARD_PAGE_SIZE"]
            figures["naive list: sorted by crawled field"] = median_ms(
                lambda: naive_list("events", page_size), max(3, repeat // 2)
            )
            figures["naive statistics"] = median_ms(naive_statistics, 3)
            db.engine.dispose()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"{size} instances, {args.days} days of history:")
        figures = run_size(size, args.days, args.repeat)
        results[size] = figures
        for name, value in figures.items():
            print(f"  {name:<38} {value:9.1f} ms")
        ratio_list = (
            figures["naive list: sorted by crawled field"]
            / figures["list: sorted by crawled field"]
        )
        ratio_stats = figures["naive statistics"] / figures["statistics"]
        print(
            f"  ratio naive/ours: sorted list x{ratio_list:.1f}, "
            f"statistics x{ratio_stats:.1f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
