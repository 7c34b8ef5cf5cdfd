"""The OpenAPI document describes every API route the app serves, and its request
schemas say what the validators accept."""

import re
from datetime import UTC, datetime

import pytest

from sync.openapi import BUNDLE
from sync.wire.bundles import BundleError, check_transaction, plain_transaction

REGISTRATION = {
    "url": "https://indico.example.org",
    "contact": "Ada Lovelace",
    "email": "ada@example.org",
    "organisation": "Analytical Engines",
}
LOCATION = {"latitude": -0.1, "longitude": 34.75, "country_code": "KE"}


def test_every_api_route_is_documented(app, client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
        if method != "parameters"
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.split(".")[0].endswith("_api"):
            continue  # pages and static files are not part of the API
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert served - documented == set()
    assert documented - served == set()


def _schema(client, name):
    return client.get("/api/openapi.json").get_json()["components"]["schemas"][name]


def _request_schema(client, path, method):
    document = client.get("/api/openapi.json").get_json()
    body = document["paths"][path][method]["requestBody"]
    return body["content"]["application/json"]["schema"]


def _of_length(schema, length):
    """A value the schema's format allows, ``length`` characters long."""
    if schema.get("format") == "uri":
        prefix = "https://example.org/"
        return prefix + "a" * (length - len(prefix))
    if schema.get("format") == "email":
        domain = "@example.org"
        return "a" * (length - len(domain)) + domain
    return "a" * length


def _refused(reply, field):
    assert reply.status_code == 400, reply.get_json()
    assert reply.get_json()["field"] == field
    return True


def test_registration_accepts_what_its_schema_documents(client):
    schema = _schema(client, "InstanceRegistration")
    for name in schema["required"]:
        body = {key: value for key, value in REGISTRATION.items() if key != name}
        assert _refused(client.post("/api/instance/", json=body), name)
    for name, field in schema["properties"].items():
        body = {**REGISTRATION}
        if name == "organization":
            del body["organisation"]
        longest = _of_length(field, field["maxLength"])
        fits = client.post("/api/instance/", json={**body, name: longest})
        assert fits.status_code == 201, (name, fits.get_json())
        over = _of_length(field, field["maxLength"] + 1)
        assert _refused(client.post("/api/instance/", json={**body, name: over}), name)


def test_update_accepts_what_its_schema_documents(client):
    schema = _schema(client, "InstanceUpdate")
    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    path = f"/api/instance/{uuid}"
    assert schema["additionalProperties"] is False
    unexpected = client.patch(path, json={"colour": "red"})
    assert unexpected.status_code == 400
    assert unexpected.get_json()["error"] == "Unexpected data"
    for name, field in schema["properties"].items():
        assert "null" in field["type"]
        assert client.patch(path, json={name: None}).status_code == 200
        if "maxLength" in field:
            over = _of_length(field, field["maxLength"] + 1)
            assert _refused(client.patch(path, json={name: over}), name)


def test_location_accepts_what_its_schema_documents(client, auth_headers):
    uuid = client.post("/api/instance/", json=REGISTRATION).get_json()["uuid"]
    path = f"/api/instances/{uuid}/location"
    schema = _request_schema(client, "/api/instances/{reference}/location", "put")

    def put(body):
        return client.put(path, json=body, headers=auth_headers)

    assert put({**LOCATION, "altitude": 3}).status_code == 400
    for name in schema["required"]:
        body = {key: value for key, value in LOCATION.items() if key != name}
        assert _refused(put(body), name)
    for name, field in schema["properties"].items():
        if "maximum" in field:
            assert put({**LOCATION, name: field["maximum"]}).status_code == 200
            assert put({**LOCATION, name: field["minimum"]}).status_code == 200
            assert _refused(put({**LOCATION, name: field["maximum"] + 0.5}), name)
            assert _refused(put({**LOCATION, name: field["minimum"] - 0.5}), name)
        if "maxLength" in field:
            over = "K" * (field["maxLength"] + 1)
            assert _refused(put({**LOCATION, name: over}), name)


def test_producer_registration_accepts_what_its_schema_documents(client, auth_headers):
    path = "/api/sync/producers"
    schema = _request_schema(client, path, "post")

    def post(body):
        return client.post(path, json=body, headers=auth_headers)

    assert schema["required"] == ["producer_id"]
    assert _refused(post({"description": "no id"}), "producer_id")
    assert schema["additionalProperties"] is False
    assert post({"producer_id": "clinic-1", "colour": "red"}).status_code == 400
    producer_id = schema["properties"]["producer_id"]
    longest = "p" * producer_id["maxLength"]
    assert re.fullmatch(producer_id["pattern"], longest)
    assert post({"producer_id": longest}).status_code == 201
    assert _refused(post({"producer_id": longest + "p"}), "producer_id")
    assert _refused(post({"producer_id": "no spaces"}), "producer_id")
    description = schema["properties"]["description"]["maxLength"]
    fits = post({"producer_id": "clinic-2", "description": "d" * description})
    assert fits.status_code == 201
    over = {"producer_id": "clinic-3", "description": "d" * (description + 1)}
    assert _refused(post(over), "description")
    assert schema["properties"]["encrypt"]["type"] == "boolean"
    assert _refused(post({"producer_id": "clinic-4", "encrypt": "yes"}), "encrypt")


def _transaction(**changes):
    transaction = plain_transaction(
        "tablet-1",
        1,
        "Household",
        ["H1"],
        "insert",
        {"schema_version": 1, "fields": {"village": "Mochudi"}, "parents": {}},
        datetime(2025, 1, 1, tzinfo=UTC),
    )
    transaction.update(changes)
    return transaction


def _violations(schema, bounded=True):
    """Values just outside what ``schema`` allows."""
    kind = schema["type"]
    yield None
    yield 1.5 if kind in ("string", "array", "boolean") else "1"
    if not bounded:
        return
    if "enum" in schema:
        yield "upsert"
    if "minLength" in schema:
        yield "a" * (schema["minLength"] - 1)
    if "maxLength" in schema:
        yield "a" * (schema["maxLength"] + 1)
    if "minItems" in schema:
        yield []
    if "minimum" in schema:
        yield schema["minimum"] - 1
    if "maximum" in schema:
        yield schema["maximum"] + 1


def test_wire_transactions_are_checked_as_documented():
    transaction = BUNDLE["properties"]["transactions"]["items"]
    assert BUNDLE["additionalProperties"] is False
    assert transaction["additionalProperties"] is False
    valid = _transaction()
    assert check_transaction(0, valid) == valid
    with pytest.raises(BundleError, match=r"transactions\[0\]\.colour"):
        check_transaction(0, {**valid, "colour": "red"})
    assert set(transaction["required"]) == set(transaction["properties"])
    for name in transaction["required"]:
        missing = {key: value for key, value in valid.items() if key != name}
        with pytest.raises(BundleError) as refused:
            check_transaction(0, missing)
        assert refused.value.field == f"transactions[0].{name}"
    for name, field in transaction["properties"].items():
        # A transaction's producer and sequence are bounded by its bundle's
        # manifest, which check_bundle compares them with.
        bounded = name not in ("producer", "sequence")
        for value in _violations(field, bounded):
            with pytest.raises(BundleError) as refused:
                check_transaction(0, _transaction(**{name: value}))
            assert refused.value.field == f"transactions[0].{name}", value
