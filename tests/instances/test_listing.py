"""The server list's filters, sorting and pages, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from tests.support import Database, Login
from tracker.instances.models import Instance

VERSIONS = ["3.12", "3.9", "10.0", "3.10.1", "2.7", "3.9.2rc1", "beta", 5, None]


def add_instances(db, rows: list[dict]) -> None:
    with db.session() as session:
        for index, values in enumerate(rows):
            session.add(
                Instance(
                    url=f"https://site{index}.example.org",
                    contact="C",
                    email="c@example.org",
                    **values,
                )
            )
        session.commit()


def listed_urls(page: str) -> list[str]:
    return re.findall(r'<td class="url"><a href="([^"]+)"', page)


def signed_in_client(app):
    client = app.test_client()
    Login(client)()
    return client


def test_versions_sort_as_versions(make_app, user):
    app = make_app(CRAWLED_FIELDS_SETTINGS={"version": {}})
    add_instances(
        Database(app),
        [
            {"organisation": "O", "crawled": {} if v is None else {"version": v}}
            for v in VERSIONS
        ],
    )
    client = signed_in_client(app)
    page = client.get("/?sort=crawled.version&dir=asc").get_data(as_text=True)
    order = [VERSIONS[int(url[12:-12])] for url in listed_urls(page)]
    versions = ["2.7", "3.9", "3.9.2rc1", "3.10.1", "3.12", "10.0"]
    assert order == [5, *versions, "beta", None]
    page = client.get("/?sort=crawled.version&dir=desc").get_data(as_text=True)
    order = [VERSIONS[int(url[12:-12])] for url in listed_urls(page)]
    assert order[:7] == [5, "10.0", "3.12", "3.10.1", "3.9.2rc1", "3.9", "2.7"]


def test_organisation_filter_is_a_case_insensitive_substring(signed_in, db):
    names = ["Mobile Clinics", "clinic network", "HPC centre", "Clin_ics"]
    add_instances(db, [{"organisation": name} for name in names])
    page = signed_in.get("/?organisation=CLINIC").get_data(as_text=True)
    assert sorted(listed_urls(page)) == [
        "https://site0.example.org",
        "https://site1.example.org",
    ]
    # LIKE's wildcards are plain characters here.
    page = signed_in.get("/?organisation=n_i").get_data(as_text=True)
    assert listed_urls(page) == ["https://site3.example.org"]


def test_a_page_past_the_end_shows_the_last_page(make_app, user):
    app = make_app(DASHBOARD_PAGE_SIZE=2)
    add_instances(Database(app), [{"organisation": "O"} for _ in range(5)])
    page = signed_in_client(app).get("/?page=99").get_data(as_text=True)
    assert "Page 3 of 3" in page
    assert len(listed_urls(page)) == 1
    assert "Page 99" not in page
