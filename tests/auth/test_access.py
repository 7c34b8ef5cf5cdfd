"""Every route of the application, for every role: allowed, 403, or refused
for want of a sign-in (401 in the API, the sign-in page elsewhere).

The table below is the decision for each route: a route added without a line
here fails the suite. Each request stops right after the access check (a
last request hook answers 299), so no route's own work runs.
"""

from __future__ import annotations

import shutil

import pytest
from werkzeug.routing import IntegerConverter, PathConverter, UUIDConverter

from tests.conftest import build_app
from tracker.extensions import db as database

PUBLIC, VIEWER, OPERATOR, SUPERVISE, ADMIN = (
    "public",
    "viewer",
    "operator",
    "supervise",
    "admin",
)

ALLOCATION_RECORDS = (
    "account-maps",
    "allocation-pools",
    "allocations",
    "grants",
    "machines",
    "periods",
    "projects",
    "resource-pools",
    "resources",
    "schemes",
)

ACCESS: dict[tuple[str, str], str] = {
    # the registry's frozen client API and the machines' own channels
    ("instances_api.register", "POST"): PUBLIC,
    ("instances_api.register_no_slash", "POST"): PUBLIC,
    ("instances_api.register_legacy", "POST"): PUBLIC,
    ("instances_api.register_legacy_no_slash", "POST"): PUBLIC,
    ("instances_api.show", "GET"): PUBLIC,
    ("instances_api.show_legacy", "GET"): PUBLIC,
    ("instances_api.update", "PATCH"): PUBLIC,
    ("instances_api.update_legacy", "PATCH"): PUBLIC,
    ("instances_api.heartbeat", "POST"): PUBLIC,
    ("quota_api.check_in", "POST"): PUBLIC,
    ("sync_api.push", "POST"): PUBLIC,
    ("sync_api.position", "POST"): PUBLIC,
    ("auth.login", "GET"): PUBLIC,
    ("auth.login", "POST"): PUBLIC,
    ("oidc.login", "GET"): PUBLIC,  # single sign-on: the provider vouches
    ("oidc.callback", "GET"): PUBLIC,
    ("monitoring.healthz", "GET"): PUBLIC,
    ("monitoring.readyz", "GET"): PUBLIC,
    ("monitoring.metrics", "GET"): PUBLIC,  # METRICS_ALLOWED_NETWORKS guards it
    ("openapi_api.openapi_document", "GET"): PUBLIC,
    ("static", "GET"): PUBLIC,
    ("allocation.static", "GET"): PUBLIC,
    ("sync.static", "GET"): PUBLIC,
    ("favicon", "GET"): PUBLIC,
    # one's own account
    ("auth.account", "GET"): VIEWER,
    ("auth.change_password", "POST"): VIEWER,
    ("auth.logout", "POST"): VIEWER,
    ("auth.new_token", "POST"): VIEWER,
    ("auth.revoke", "POST"): VIEWER,
    # users and the audit trail
    ("users.index", "GET"): ADMIN,
    ("users.create", "POST"): ADMIN,
    ("users.set_role", "POST"): ADMIN,
    ("users.set_user_active", "POST"): ADMIN,
    ("users.reset", "POST"): ADMIN,
    ("users.delete", "POST"): ADMIN,
    ("users.revoke", "POST"): ADMIN,
    ("audit.index", "GET"): ADMIN,
    ("audit_api.events", "GET"): ADMIN,
    # the registry
    ("instances.index", "GET"): VIEWER,
    ("instances.detail", "GET"): VIEWER,
    ("instances.detail_by_uuid", "GET"): VIEWER,
    ("instances.statistics", "GET"): VIEWER,
    ("instances.export_csv", "GET"): VIEWER,
    ("instances.approve", "POST"): OPERATOR,
    ("instances.bulk", "POST"): OPERATOR,  # its delete action: admin
    ("instances.clear_location", "POST"): OPERATOR,
    ("instances.set_location", "POST"): OPERATOR,
    ("instances.crawl_all", "POST"): OPERATOR,
    ("instances.crawl_one", "POST"): OPERATOR,
    ("instances.edit", "POST"): OPERATOR,
    ("instances.set_enabled", "POST"): OPERATOR,
    ("instances.delete", "POST"): ADMIN,
    ("instances_api.list_instances", "GET"): VIEWER,
    ("instances_api.show_instance", "GET"): VIEWER,
    ("instances_api.admin_update", "PATCH"): OPERATOR,
    ("instances_api.approve_instance", "POST"): OPERATOR,
    ("instances_api.clear_location", "DELETE"): OPERATOR,
    ("instances_api.set_location", "PUT"): OPERATOR,
    ("instances_api.crawl_all", "POST"): OPERATOR,
    ("instances_api.crawl_one", "POST"): OPERATOR,
    ("instances_api.delete_instance", "DELETE"): ADMIN,
    ("fleet.live_states", "GET"): VIEWER,
    ("fleet.pause", "POST"): OPERATOR,
    ("fleet.resume", "POST"): OPERATOR,
    ("fleet.set_schedule", "POST"): OPERATOR,
    ("fleet.set_organisation_schedule", "POST"): OPERATOR,
    ("fleet.set_tags", "POST"): OPERATOR,
    ("fleet_api.list_pauses", "GET"): VIEWER,
    ("fleet_api.organisation_schedule", "GET"): VIEWER,
    ("fleet_api.prometheus_sd", "GET"): VIEWER,
    ("fleet_api.pause", "PUT"): OPERATOR,
    ("fleet_api.resume", "DELETE"): OPERATOR,
    ("fleet_api.set_organisation_schedule", "PUT"): OPERATOR,
    # background jobs and notifications
    ("batch.index", "GET"): VIEWER,
    ("batch.detail", "GET"): VIEWER,
    ("batch.progress", "GET"): VIEWER,
    ("batch.cancel", "POST"): OPERATOR,
    ("batch.retry", "POST"): OPERATOR,
    ("batch_api.index", "GET"): VIEWER,
    ("batch_api.show", "GET"): VIEWER,
    ("batch_api.items", "GET"): VIEWER,
    ("notifications.index", "GET"): VIEWER,
    # quota
    ("quota.index", "GET"): VIEWER,
    ("quota.pull", "POST"): OPERATOR,
    ("quota.approve_override", "POST"): SUPERVISE,
    ("quota.add", "POST"): ADMIN,
    ("quota.change_client", "POST"): ADMIN,
    ("quota.remove", "POST"): ADMIN,
    ("quota.update", "POST"): ADMIN,
    ("quota_api.list_quotas", "GET"): VIEWER,
    ("quota_api.show", "GET"): VIEWER,
    ("quota_api.history", "GET"): VIEWER,
    ("quota_api.approve_override", "POST"): SUPERVISE,
    ("quota_api.create", "POST"): ADMIN,
    ("quota_api.change", "PATCH"): ADMIN,
    ("quota_api.add", "POST"): ADMIN,
    ("quota_api.change_client", "PATCH"): ADMIN,
    ("quota_api.remove", "DELETE"): ADMIN,
    # sync
    ("sync.index", "GET"): VIEWER,
    ("sync.producer", "GET"): VIEWER,
    ("sync.records", "GET"): VIEWER,
    ("sync.records_csv", "GET"): VIEWER,
    ("sync.records_jsonl", "GET"): VIEWER,
    ("sync.conflicts", "GET"): VIEWER,
    ("sync.resolve", "POST"): OPERATOR,
    ("sync_api.list_conflicts", "GET"): VIEWER,
    ("sync_api.resolve", "POST"): OPERATOR,
    ("sync.upload", "POST"): OPERATOR,
    ("sync.reapply_set_aside", "POST"): OPERATOR,
    ("sync.register", "POST"): ADMIN,
    ("sync.new_credential", "POST"): ADMIN,
    ("sync.set_active", "POST"): ADMIN,
    ("sync_api.list_producers", "GET"): VIEWER,
    ("sync_api.show_producer", "GET"): VIEWER,
    ("sync_api.list_records", "GET"): VIEWER,
    ("sync_api.producer_keys", "GET"): VIEWER,  # public keys, for the middleman
    ("sync_api.upload_file", "POST"): OPERATOR,
    ("sync_api.reapply_set_aside", "POST"): OPERATOR,
    ("sync_api.create_producer", "POST"): ADMIN,
    ("sync_api.new_credential", "POST"): ADMIN,
    ("sync_api.set_producer_active", "POST"): ADMIN,
    # allocation
    ("allocation.index", "GET"): VIEWER,
    ("allocation.tree", "GET"): VIEWER,
    ("allocation.machines", "GET"): VIEWER,
    ("allocation.pool", "GET"): VIEWER,
    ("allocation.project_usage", "GET"): VIEWER,
    ("allocation.ledger_export", "GET"): VIEWER,
    ("allocation.usage_export", "GET"): VIEWER,
    ("allocation.records_index", "GET"): VIEWER,
    ("allocation.records", "GET"): VIEWER,
    ("allocation.record_new", "GET"): ADMIN,
    ("allocation.record_edit", "GET"): ADMIN,
    ("allocation.record_delete_confirm", "GET"): ADMIN,
    ("allocation.record_create", "POST"): ADMIN,
    ("allocation.record_update", "POST"): ADMIN,
    ("allocation.record_delete", "POST"): ADMIN,
    ("allocation_api.show_ledger", "GET"): VIEWER,
    ("allocation_api.pool_usage", "GET"): VIEWER,
    ("allocation_api.list_changes", "GET"): VIEWER,
    ("allocation_api.upload_sacct", "POST"): OPERATOR,
    ("allocation_api.upload_disk", "POST"): OPERATOR,
}
for _collection in ALLOCATION_RECORDS:
    ACCESS[(f"allocation_api.{_collection}_list", "GET")] = VIEWER
    ACCESS[(f"allocation_api.{_collection}_show", "GET")] = VIEWER
    ACCESS[(f"allocation_api.{_collection}_create", "POST")] = ADMIN
    ACCESS[(f"allocation_api.{_collection}_update", "PATCH")] = ADMIN
    ACCESS[(f"allocation_api.{_collection}_delete", "DELETE")] = ADMIN

# Who signs in, and with what role, supervisor permission and token kind.
PEOPLE = {
    "viewer": ("viewer", False, False),
    "operator": ("operator", False, False),
    "supervisor": ("operator", True, False),
    "admin": ("admin", False, False),
    "read-only admin token": ("admin", False, True),
}
ALLOWED = {
    PUBLIC: set(PEOPLE),
    VIEWER: set(PEOPLE),
    OPERATOR: {"operator", "supervisor", "admin"},
    SUPERVISE: {"supervisor", "admin"},
    ADMIN: {"admin"},
}
REACHED = 299
SAMPLE_ARGUMENTS = {
    "int": "999999",
    "uuid": "0c8f1c2e-7d4e-4c1b-9a5e-6f0e2a3b4c5d",
    "path": "sample",
    "default": "sample",
}


def _reached():
    return "reached", REACHED


@pytest.fixture(scope="module")
def access_app(sqlite_schema, tmp_path_factory):
    """The app with every route ending right after the access check."""
    directory = tmp_path_factory.mktemp("access")
    path = directory / "access.sqlite"
    shutil.copyfile(sqlite_schema, path)
    app = build_app(
        f"sqlite:///{path}",
        directory / "instance",
        WTF_CSRF_ENABLED=False,
        # Not RATELIMIT_ENABLED: the limiter is one object for every app.
        LOGIN_RATE_LIMIT=None,
        API_REGISTRATION_RATE_LIMIT=None,
        API_HEARTBEAT_RATE_LIMIT=None,
    )
    app.before_request_funcs.setdefault(None, []).append(_reached)
    from tracker.auth.models import User
    from tracker.auth.tokens import issue_token

    tokens = {}
    with app.app_context():
        for name, (role, supervisor, read_only) in PEOPLE.items():
            user = User(
                username=name.replace(" ", "-"), role=role, supervisor=supervisor
            )
            user.set_password("not used here")
            database.session.add(user)
            tokens[name] = issue_token(database.session, user, read_only=read_only)
        database.session.commit()
    yield app, tokens
    with app.app_context():
        database.engine.dispose()


def _sample_path(rule) -> str:
    values = {}
    for name, converter in rule._converters.items():
        if isinstance(converter, IntegerConverter):
            values[name] = SAMPLE_ARGUMENTS["int"]
        elif isinstance(converter, UUIDConverter):
            values[name] = SAMPLE_ARGUMENTS["uuid"]
        elif isinstance(converter, PathConverter):
            values[name] = SAMPLE_ARGUMENTS["path"]
        else:
            values[name] = SAMPLE_ARGUMENTS["default"]
    if rule.endpoint.endswith("static"):
        values["filename"] = "tracker.css"
    return rule.build(values, append_unknown=False)[1]


def _routes(app) -> list[tuple[str, str, str]]:
    return sorted(
        (rule.endpoint, method, _sample_path(rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def test_every_route_has_a_decision(access_app):
    app, _tokens = access_app
    routes = {(endpoint, method) for endpoint, method, _path in _routes(app)}
    assert sorted(routes - set(ACCESS)) == [], "routes without a decision"
    assert sorted(set(ACCESS) - routes) == [], "decisions for routes that are gone"


def _is_api(path: str) -> bool:
    return path.startswith(("/api/", "/instance/")) or path == "/instance"


def test_every_route_answers_each_role_as_decided(access_app):
    app, tokens = access_app
    client = app.test_client()
    wrong = []
    for endpoint, method, path in _routes(app):
        level = ACCESS.get((endpoint, method))
        if level is None:
            continue  # reported by the test above
        anonymous = client.open(path, method=method)
        if level == PUBLIC:
            expected_anonymous = REACHED
        elif _is_api(path):
            expected_anonymous = 401
        else:
            expected_anonymous = 302
        if anonymous.status_code != expected_anonymous or (
            expected_anonymous == 302
            and "/login" not in anonymous.headers.get("Location", "")
        ):
            wrong.append((endpoint, method, "anonymous", anonymous.status_code))
        for person, token in tokens.items():
            answer = client.open(
                path, method=method, headers={"Authorization": f"Bearer {token}"}
            )
            expected = REACHED if person in ALLOWED[level] else 403
            if answer.status_code != expected:
                wrong.append((endpoint, method, person, answer.status_code))
    assert wrong == [], "\n".join(map(str, wrong))


def test_a_refusal_says_what_is_needed(access_app):
    app, tokens = access_app
    client = app.test_client()
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    answer = client.delete(f"/api/instances/{SAMPLE_ARGUMENTS['uuid']}", headers=viewer)
    assert answer.status_code == 403
    assert answer.get_json()["message"] == "this needs the admin role"
    read_only = {"Authorization": f"Bearer {tokens['read-only admin token']}"}
    answer = client.post("/api/instances/crawl", headers=read_only)
    assert answer.get_json()["message"] == "this API token is read-only"
    supervisor = {"Authorization": f"Bearer {tokens['operator']}"}
    answer = client.post("/api/quotas/households/approvals", headers=supervisor)
    assert answer.get_json()["message"] == "this needs the supervisor permission"
