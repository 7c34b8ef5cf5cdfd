"""One hostile instance never costs the others their results: every way a
crawled document or an address could break the write is that instance's error."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from tests.fleet import JSON, RAW, Behaviour, Fleet
from tracker.extensions import db
from tracker.instances.crawler import CrawlSettings
from tracker.instances.crawling import crawl_chunk
from tracker.instances.geo import Locator
from tracker.instances.models import CrawlResult, DailyValue, Instance

SETTINGS = {
    "CRAWLING_ENDPOINTS": [{"url": "/info"}],
    "CRAWL_DENY_NETWORKS": [],
    "CRAWL_TIMEOUT": 3.0,
    "CRAWLED_FIELDS_SETTINGS": {"users": {"chart": True, "chart_type": "line"}},
}
GOOD = "127.0.21.1"
# address -> (answer, what the instance's error must say)
HOSTILE = {
    "127.0.21.2": (b'{"users": 1' + b"0" * 400 + b"}", "signed 64-bit"),
    "127.0.21.3": (b'{"v": 1e400}', "number too large"),
    "127.0.21.4": (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "deeper than 32"),
    "127.0.21.5": (
        json.dumps({f"k{n}": n for n in range(1500)}).encode(),
        "more than 1000 keys",
    ),
    "127.0.21.6": (json.dumps({"x" * 300: 1}).encode(), "longer than 200"),
    "127.0.21.7": (b'{"v": "a\\u0000b"}', "NUL"),
    "127.0.21.8": (b'{"v": "\\ud800"}', "lone surrogate"),
}


@pytest.fixture
def fleet():
    behaviours = {GOOD: Behaviour(JSON, data={"users": 5})}
    behaviours.update(
        {address: Behaviour(RAW, body=body) for address, (body, _) in HOSTILE.items()}
    )
    with Fleet(behaviours) as running:
        yield running


@pytest.fixture
def crawl_app(make_app):
    app = make_app(**SETTINGS)
    with app.app_context():
        from tracker.models import import_all_models

        import_all_models()
        db.create_all()
    return app


def add_instance(url: str) -> int:
    instance = Instance(url=url, contact="C", email="c@example.org", organisation="O")
    db.session.add(instance)
    db.session.commit()
    return instance.id


def crawl(app, ids):
    return crawl_chunk(
        db.session,
        None,
        ids,
        CrawlSettings.from_config(app.config),
        Locator(),
        False,
        db.session.commit,
        daily_fields={"users": None},
    )


def test_each_hostile_document_is_its_instances_error(crawl_app, fleet):
    with crawl_app.app_context():
        good = add_instance(fleet.url(GOOD))
        hostile = {add_instance(fleet.url(a)): why for a, (_, why) in HOSTILE.items()}
        counts = crawl(crawl_app, [good, *hostile])
        assert (counts.up, counts.down, counts.skipped) == (1, len(HOSTILE), 0)
        assert db.session.get(Instance, good).crawled == {"users": 5}
        for instance_id, why in hostile.items():
            instance = db.session.get(Instance, instance_id)
            assert instance.health == "down"
            assert why in instance.last_error, (why, instance.last_error)
            assert instance.crawled in (None, {})
        history = db.session.scalars(select(CrawlResult.instance_id)).all()
        assert sorted(history) == sorted([good, *hostile])
        # The list sorts by the charted field without tripping over any value.
        assert db.session.scalars(select(DailyValue.value)).all() == [5.0]


def test_an_address_with_a_zone_id_is_refused_and_stored_without_it(crawl_app, fleet):
    # The registry may hold such a URL; its zone id overflows the address column.
    url = f"http://[::1%25{'a' * 60}]:{fleet.port}"
    with crawl_app.app_context():
        good = add_instance(fleet.url(GOOD))
        zoned = add_instance(url)
        counts = crawl(crawl_app, [good, zoned])
        assert (counts.up, counts.skipped) == (1, 1)
        instance = db.session.get(Instance, zoned)
        assert "zone id" in instance.last_error
        assert instance.address == "::1"


def _refuse_daily_values_of(instance_id: int) -> None:
    """A real fault in the database for one instance's rows: a trigger."""
    if db.engine.dialect.name == "sqlite":
        db.session.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON daily_values "
                f"WHEN NEW.instance_id = {instance_id} "
                "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
            )
        )
    else:
        db.session.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.instance_id = {instance_id} THEN "
                "RAISE EXCEPTION 'refused by a trigger'; END IF; RETURN NEW; "
                "END $$ LANGUAGE plpgsql"
            )
        )
        db.session.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON daily_values "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )
    db.session.commit()


def test_a_write_the_database_refuses_costs_only_its_instance(crawl_app, fleet):
    with crawl_app.app_context():
        first = add_instance(fleet.url(GOOD))
        refused = add_instance(fleet.url(GOOD))
        others = [add_instance(fleet.url(GOOD)) for _ in range(3)]
        _refuse_daily_values_of(refused)
        counts = crawl(crawl_app, [first, refused, *others])
        assert (counts.up, counts.down, counts.skipped) == (4, 1, 0)
        for instance_id in (first, *others):
            assert db.session.get(Instance, instance_id).crawled == {"users": 5}
        instance = db.session.get(Instance, refused)
        assert instance.health == "down"
        assert "could not be recorded" in instance.last_error
        assert "refused by a trigger" in instance.last_error
        recorded = db.session.scalars(select(DailyValue.instance_id)).all()
        assert sorted(recorded) == sorted([first, *others])
        history = db.session.scalars(select(CrawlResult.instance_id)).all()
        assert sorted(history) == sorted([first, refused, *others])


def test_a_large_answer_keeps_only_the_configured_fields_in_history(make_app):
    """One instance cannot add more than CRAWL_HISTORY_MAX_BYTES of history per
    crawl; its latest values are still kept whole."""
    from tracker.instances.crawling import SCOPE_ALL
    from tracker.instances.launch import launch_crawl
    from tracker.instances.tasks import crawl_now

    big = {"users": 7, "blob": "x" * 50_000}
    behaviours = {
        "127.0.21.30": Behaviour(JSON, data=big),
        "127.0.21.31": Behaviour(JSON, data={"users": 3, "note": "small"}),
    }
    with Fleet(behaviours) as fleet:
        app = make_app(**SETTINGS, CRAWL_HISTORY_MAX_BYTES=4096)
        with app.app_context():
            large = add_instance(fleet.url("127.0.21.30"))
            small = add_instance(fleet.url("127.0.21.31"))
            launch_crawl(SCOPE_ALL, run=crawl_now)
            db.session.expire_all()
            rows = {
                row.instance_id: row for row in db.session.scalars(select(CrawlResult))
            }
            assert (rows[large].data, rows[large].data_trimmed) == ({"users": 7}, True)
            assert (rows[small].data, rows[small].data_trimmed) == (
                {"users": 3, "note": "small"},
                False,
            )
            assert db.session.get(Instance, large).crawled == big
