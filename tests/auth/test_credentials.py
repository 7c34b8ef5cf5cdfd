"""An instance's uuid is its client's credential: a viewer, or a read-only
token, never reads it wherever they look; operators and admins read it in the
admin API and the CSV, where they need it. Pages name instances by number."""

from __future__ import annotations

import pytest
from flask import url_for
from sqlalchemy import select

from tests.fleet import JSON, STATUS, Behaviour, Fleet
from tests.support import csrf_token
from tracker.auth.models import User
from tracker.auth.tokens import issue_token
from tracker.batch.models import BatchOperation
from tracker.extensions import db
from tracker.instances.models import Instance, Pause

SETTINGS = {
    "CRAWLING_ENDPOINTS": [{"url": "/system-info"}],
    "CRAWL_DENY_NETWORKS": [],
    "CRAWL_TIMEOUT": 2.0,
    "CRAWL_CONNECT_TIMEOUT": 1.0,
}
REGISTRATION = {"contact": "Ada", "email": "ada@example.org", "organisation": "CERN"}


@pytest.fixture
def fleet():
    behaviours = {
        "127.0.56.1": Behaviour(JSON, data={"version": "3.3"}),
        "127.0.56.2": Behaviour(STATUS, status=500),
    }
    with Fleet(behaviours) as running:
        yield running


def _register(client, url: str) -> str:
    answer = client.post("/api/instance/", json={"url": url, **REGISTRATION})
    assert answer.status_code == 201
    return answer.get_json()["uuid"]


def _token(app, name: str, role: str, read_only: bool = False) -> dict:
    with app.app_context():
        person = User(username=name, role=role)
        person.set_password("a long password")
        db.session.add(person)
        db.session.flush()
        value = issue_token(db.session, person, "tests", read_only=read_only)
        db.session.commit()
    return {"Authorization": f"Bearer {value}"}


def _seeded(app, client, fleet, admin_headers) -> dict:
    """Two instances (one down), each crawled once, one paused and tagged."""
    from tracker.instances.crawling import SCOPE_ALL
    from tracker.instances.launch import launch_crawl
    from tracker.instances.tasks import crawl_now

    uuids = [_register(client, fleet.url(f"127.0.56.{n}")) for n in (1, 2)]
    with app.app_context():
        numbers = db.session.scalars(
            select(Instance.id).where(Instance.uuid.in_(uuids)).order_by(Instance.id)
        ).all()
        operation = launch_crawl(SCOPE_ALL, run=crawl_now).id
    until = {"until": "2099-01-01T00:00:00Z", "note": "moving racks"}
    paused = client.put(
        f"/api/pauses/instance/{uuids[1]}", json=until, headers=admin_headers
    )
    assert paused.status_code == 200
    tagged = client.patch(
        f"/api/instances/{numbers[0]}", json={"tags": ["field"]}, headers=admin_headers
    )
    assert tagged.status_code == 200
    return {"uuids": uuids, "numbers": numbers, "operation": operation}


def _get_routes(app, seed: dict) -> list[str]:
    """Every GET route whose arguments the seed fills, with them filled."""
    values = {
        "number": seed["numbers"][1],
        "reference": seed["numbers"][1],
        "operation_id": seed["operation"],
    }
    paths = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint.endswith("static"):
                continue
            if rule.endpoint in {"oidc.login", "oidc.callback", "auth.logout"}:
                continue
            if not set(rule.arguments) <= set(values):
                continue
            paths.append(
                url_for(
                    rule.endpoint, **{name: values[name] for name in rule.arguments}
                )
            )
    return paths


def _page_read_by_viewer(client) -> None:
    client.post(
        "/login",
        data={
            "csrf_token": csrf_token(client, "/login"),
            "username": "vera",
            "password": "a long password",
        },
    )


def test_no_read_a_viewer_can_make_holds_a_uuid(make_app, fleet, auth_headers):
    app = make_app(**SETTINGS)
    client = app.test_client()
    seed = _seeded(app, client, fleet, auth_headers)
    read_only = _token(app, "rita", "admin", read_only=True)
    viewer = _token(app, "vera", "viewer")
    paths = _get_routes(app, seed)
    assert "/instances/2" in paths and "/api/instances/2" in paths
    assert f"/api/batch-operations/{seed['operation']}/items" in paths
    extra = [
        f"/api/batch-operations/{seed['operation']}/items?outcome=all",
        f"/instances/states.json?number={seed['numbers'][0]}",
        "/instances.csv?per_page=100",
    ]
    for headers in (viewer, read_only):
        for path in paths + extra:
            answer = client.get(path, headers=headers)
            assert answer.status_code < 500, path
            body = answer.get_data().decode("utf-8", "replace")
            answer.close()
            for uuid in seed["uuids"]:
                assert uuid not in body, (path, answer.status_code)
    _page_read_by_viewer(client)
    for path in paths + extra:
        answer = client.get(path)
        body = answer.get_data().decode("utf-8", "replace").lower()
        answer.close()
        for uuid in seed["uuids"]:
            assert uuid not in body, path
    # What a viewer reads names the instances by number instead.
    listed = client.get("/api/instances", headers=viewer).get_json()["items"]
    assert sorted(item["id"] for item in listed) == seed["numbers"]
    assert all("uuid" not in item for item in listed)
    states = client.get(f"/instances/states.json?number={seed['numbers'][0]}")
    assert list(states.get_json()["rows"]) == [str(seed["numbers"][0])]
    [target] = [
        group
        for group in client.get("/api/sd/prometheus", headers=viewer).get_json()
        if group["labels"]["__meta_tracker_id"] == str(seed["numbers"][0])
    ]
    assert target["targets"] == [fleet.url("127.0.56.1").removeprefix("http://")]


def test_operators_read_uuids_in_the_admin_api_and_the_csv(
    make_app, fleet, auth_headers
):
    app = make_app(**SETTINGS)
    client = app.test_client()
    seed = _seeded(app, client, fleet, auth_headers)
    operator = _token(app, "otto", "operator")
    listed = client.get("/api/instances", headers=operator).get_json()["items"]
    assert sorted(item["uuid"] for item in listed) == sorted(seed["uuids"])
    by_uuid = client.get(f"/api/instances/{seed['uuids'][0]}", headers=operator)
    assert by_uuid.get_json()["id"] == seed["numbers"][0]
    csv_text = client.get("/instances.csv", headers=operator).get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("id,uuid,url,")
    assert all(uuid in csv_text for uuid in seed["uuids"])


def test_pages_name_instances_by_number(client, signed_in, auth_headers):
    uuid = _register(signed_in, "https://indico.example.org")
    app = signed_in.application
    with app.app_context():
        number = db.session.scalar(select(Instance.id).where(Instance.uuid == uuid))
    page = signed_in.get(f"/instances/{number}")
    assert page.status_code == 200 and uuid not in page.get_data(as_text=True)
    old_link = signed_in.get(f"/instances/{uuid.upper()}")
    assert old_link.status_code == 302
    assert old_link.headers["Location"].endswith(f"/instances/{number}")
    for missing in ("999999", str(2**40), "99999999999999999999999"):
        assert signed_in.get(f"/instances/{missing}").status_code == 404
        answer = signed_in.get(f"/api/instances/{missing}", headers=auth_headers)
        assert answer.status_code == 404


def test_a_pause_names_its_instance_by_number_and_ends_with_it(
    app, client, auth_headers
):
    uuid = _register(client, "https://indico.example.org")
    until = {"until": "2099-01-01T00:00:00Z"}
    answer = client.put(
        f"/api/pauses/instance/{uuid}", json=until, headers=auth_headers
    )
    assert answer.status_code == 200
    with app.app_context():
        number = db.session.scalar(select(Instance.id).where(Instance.uuid == uuid))
    assert answer.get_json()["value"] == str(number)
    detail = client.get(f"/api/instances/{number}", headers=auth_headers).get_json()
    assert detail["state"]["name"] == "paused"
    assert (
        client.delete(f"/api/instances/{number}", headers=auth_headers).status_code
        == 204
    )
    with app.app_context():
        assert db.session.scalars(select(Pause)).all() == []


def test_a_crawl_runs_items_name_instances_by_number(make_app, fleet, auth_headers):
    app = make_app(**SETTINGS)
    client = app.test_client()
    seed = _seeded(app, client, fleet, auth_headers)
    with app.app_context():
        assert db.session.get(BatchOperation, seed["operation"]).failed == 1
    items = client.get(
        f"/api/batch-operations/{seed['operation']}/items", headers=auth_headers
    ).get_json()["items"]
    assert [item["instance"] for item in items] == [
        {"id": seed["numbers"][1], "url": fleet.url("127.0.56.2")}
    ]
