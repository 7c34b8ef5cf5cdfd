"""One device, one identity: a sync producer linked to a registry instance
counts its deliveries as the instance's contact and shows on its page."""

from __future__ import annotations

from sync.wire.bundles import make_bundle
from tests.support import REGISTRATION, instance_path
from tests.sync.support import register, wire
from tests.test_cli import manage_command


def detail(client, uuid, auth_headers) -> dict:
    return client.get(f"/api/instances/{uuid}", headers=auth_headers).get_json()


def test_a_linked_producers_push_is_the_instances_contact(
    app, client, signed_in, auth_headers, database_url, tmp_path
):
    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    credential, _ = register(app, "laptop-7")
    manage = manage_command(database_url, tmp_path)
    linked = manage("sync", "link", "laptop-7", uuid)
    assert linked.returncode == 0, linked.stderr
    body = make_bundle(
        [wire("laptop-7", 1, "Household", ["H1"], "insert", {"v": "Mochudi"})],
        credential,
    ).as_json()
    assert client.post("/api/sync/push", json=body).status_code == 200
    assert detail(client, uuid, auth_headers)["last_contact_via"] == "sync"
    page = client.get(instance_path(client, uuid)).get_data(as_text=True)
    assert "sync producer" in page
    assert "laptop-7" in page

    assert manage("sync", "link", "laptop-7", "--unlink").returncode == 0
    assert "laptop-7" not in client.get(instance_path(client, uuid)).get_data(
        as_text=True
    )


def test_linking_refuses_unknown_names_in_one_line(database_url, tmp_path, app):
    manage = manage_command(database_url, tmp_path)
    unknown_producer = manage("sync", "link", "nobody", "no-such-uuid")
    assert unknown_producer.returncode != 0
    assert "no instance with this uuid" in unknown_producer.stderr
    assert "Traceback" not in unknown_producer.stderr
    assert manage("sync", "link", "nobody").returncode == 2


def test_a_linked_allocation_machine_shows_on_the_instances_page(
    app, client, signed_in, database_url, tmp_path
):
    from allocation.models import Machine
    from tracker.extensions import db

    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    with app.app_context():
        db.session.add(Machine(name="cluster-a"))
        db.session.commit()
    manage = manage_command(database_url, tmp_path)
    linked = manage("allocation", "link-machine", "cluster-a", uuid)
    assert linked.returncode == 0, linked.stderr
    page = client.get(instance_path(client, uuid)).get_data(as_text=True)
    assert "allocation machine" in page
    assert "cluster-a" in page
    unknown = manage("allocation", "link-machine", "nowhere", uuid)
    assert unknown.returncode == 2
    assert "no machine of this name" in unknown.stderr
