"""Server time of the dashboard pages with 1,000 and 10,000 instances.

    python -m bench.dashboard [--sizes 1000,10000] [--days 30] [--repeat 7]
                              [--naive-max 10000]

Each page is requested in-process through Flask's test client (so the figure is
server time, no network), signed in, on SQLite; the median of ``--repeat`` runs is
reported. Every instance has ``--days`` daily values of the line chart's field
(and, up to ``--naive-max`` instances, as many crawl results).

Two baselines, measured in the same run: "folded statistics" computes the page's
numbers per request from the instances' crawled values and every daily value
(grouped queries plus a fold in Python); the naive one does what the original
tracker did: load every instance (and every history row) as ORM objects and
filter, sort and aggregate in Python. The statistics page reads totals kept as
instances change; building them once from every instance (after a change of
CRAWLED_FIELDS_SETTINGS) is timed apart, and so is what keeping them costs a
day's crawl of every instance when it is recorded.
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

from sqlalchemy import delete, func, insert, select

from tracker import create_app
from tracker.auth.models import User
from tracker.extensions import db
from tracker.instances.charts import (
    Row,
    aggregate_value,
    chart_series,
    field_settings,
    registrations_series,
)
from tracker.instances.crawler import CrawlOutcome, Endpoint, EndpointResult
from tracker.instances.geo import Locator
from tracker.instances.models import ChartBuilt, CrawlResult, DailyValue, Instance
from tracker.instances.recording import record_outcomes
from tracker.instances.statistics import gather
from tracker.instances.tallies import configured_charts, rebuild_daily_totals
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


def seed(size: int, days: int, rng: random.Random, history: bool) -> None:
    """Bulk-insert ``size`` instances and ``days`` daily values each (and as many
    crawl results, if ``history``)."""
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
    values = []
    for day in range(days):
        moment = now - timedelta(days=day, minutes=5)
        for instance_id in ids:
            values.append(
                {
                    "field": "users",
                    "day": moment.date(),
                    "instance_id": instance_id,
                    "value": rng.randrange(500),
                }
            )
            if len(values) >= 50000:
                db.session.execute(insert(DailyValue), values)
                values.clear()
    if values:
        db.session.execute(insert(DailyValue), values)
    rebuild_daily_totals(db.session)
    batch = []
    for day in range(days if history else 0):
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


# CPU time of this process per figure: on a shared machine, wall time also
# counts the other processes' turns.
CPU: dict[str, float] = {}


def median_ms(action, repeat: int, name: str | None = None) -> float:
    """The median wall milliseconds of ``action``; its CPU median goes to CPU."""
    timings, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        timings.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    if name:
        CPU[name] = statistics.median(cpu)
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


def folded_statistics(days: int) -> None:
    """The page's numbers folded per request: every enabled instance's crawled
    values and country decoded and folded in Python, the daily values grouped
    by day in SQL, every registration date loaded."""
    fields = field_settings(FIELDS)
    rows = [
        Row(crawled or {}, country)
        for crawled, country in db.session.execute(
            select(Instance.crawled, Instance.country_name).where(
                Instance.enabled.is_(True)
            )
        )
    ]
    since = (datetime.now(UTC) - timedelta(days=days)).date()
    for setting in fields.values():
        if setting.chart_type != "line":
            chart_series(rows, setting, fields)
            continue
        db.session.execute(
            select(DailyValue.day, func.sum(DailyValue.value))
            .where(DailyValue.field == setting.name, DailyValue.day >= since)
            .group_by(DailyValue.day)
        ).all()
    registrations_series(db.session.scalars(select(Instance.registered)))
    db.session.execute(
        select(Instance.country_code, Instance.country_name, func.count())
        .where(Instance.enabled.is_(True))
        .group_by(Instance.country_code, Instance.country_name)
    ).all()
    db.session.execute(
        select(Instance.latitude, Instance.longitude, Instance.city).where(
            Instance.enabled.is_(True), Instance.latitude.is_not(None)
        )
    ).all()


def build_once() -> float:
    """Build the charts' totals from every instance, as after a change of
    settings; return the milliseconds it took."""
    db.session.execute(delete(ChartBuilt))
    db.session.commit()
    began = time.perf_counter()
    gather(db.session, field_settings(FIELDS))
    return (time.perf_counter() - began) * 1000


def record_a_day(charts) -> float:
    """Record one up crawl of every instance (new values for each) through the
    recording path, in batches of a crawl chunk; return the milliseconds."""
    rng = random.Random(7)
    endpoint = Endpoint("/stats")
    ids = db.session.scalars(select(Instance.id)).all()
    now = datetime.now(UTC)
    began = time.perf_counter()
    for start in range(0, len(ids), 1000):
        outcomes = [
            CrawlOutcome(
                instance_id,
                now,
                20,
                "up",
                200,
                "",
                (
                    EndpointResult(
                        "/stats",
                        {
                            "python_version": rng.choice(["3.12", "3.13"]),
                            "events": rng.randrange(1000),
                            "users": rng.randrange(500),
                            "rooms": [rng.randrange(5) for _ in range(3)],
                        },
                        200,
                        "",
                    ),
                ),
                None,
            )
            for instance_id in ids[start : start + 1000]
        ]
        record_outcomes(
            db.session,
            outcomes,
            (endpoint,),
            Locator(),
            daily_fields={"users": None},
            charts=charts,
        )
        db.session.commit()
    return (time.perf_counter() - began) * 1000


def run_size(size: int, days: int, repeat: int, naive_max: int) -> dict:
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
            naive = size <= naive_max
            seed(size, days, random.Random(size), history=naive)
            print(
                f"  seeded {size} instances, {size * days} daily values"
                f"{f' and {size * days} history rows' if naive else ''} "
                f"in {time.perf_counter() - began:.1f} s"
            )
            figures = {"statistics: building the totals once": build_once()}
        client = signed_in_client(app)
        for name, path in PAGES.items():

            def request(path=path):
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)

            request()  # warm caches, as a page already open all day would be
            figures[name] = median_ms(request, repeat, name)
        with app.app_context():
            page_size = app.config["DASHBOARD_PAGE_SIZE"]
            figures["naive list: sorted by crawled field"] = median_ms(
                lambda: naive_list("events", page_size), max(3, repeat // 2)
            )
            figures["folded statistics"] = median_ms(
                lambda: folded_statistics(days), 3, "folded statistics"
            )
            if naive:
                figures["naive statistics"] = median_ms(naive_statistics, 3)
            # What keeping the totals costs the recording of a crawl: the same
            # day recorded twice, without and with charts of current values
            # (each with new values, so that every entry changes).
            figures["recording a crawl, no chart totals"] = record_a_day(())
            figures["recording a crawl, with chart totals"] = record_a_day(
                configured_charts(app.config)
            )
            db.engine.dispose()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--naive-max",
        type=int,
        default=10000,
        help="largest size at which the naive baseline runs (it loads everything)",
    )
    args = parser.parse_args()
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"{size} instances, {args.days} days of history:", flush=True)
        figures = run_size(size, args.days, args.repeat, args.naive_max)
        for name, value in figures.items():
            cpu = f" (CPU {CPU[name]:7.1f} ms)" if name in CPU else ""
            print(f"  {name:<38} {value:9.1f} ms{cpu}")
        ratio_list = (
            figures["naive list: sorted by crawled field"]
            / figures["list: sorted by crawled field"]
        )
        folded = figures["folded statistics"] / figures["statistics"]
        folded_cpu = CPU["folded statistics"] / CPU["statistics"]
        naive = figures.get("naive statistics", float("nan")) / figures["statistics"]
        keeping = (
            figures["recording a crawl, with chart totals"]
            / figures["recording a crawl, no chart totals"]
        )
        print(
            f"  ratio naive/ours: sorted list x{ratio_list:.1f}, "
            f"statistics x{naive:.1f}; folded/ours: statistics x{folded:.1f} "
            f"(CPU x{folded_cpu:.1f}); "
            f"recording with/without chart totals x{keeping:.2f}"
        )
        print(
            f"  goal: statistics under 200 ms: {figures['statistics']:.0f} ms "
            f"({'met' if figures['statistics'] < 200 else 'not met'})"
        )
        results[size] = {**figures, "cpu": dict(CPU)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
