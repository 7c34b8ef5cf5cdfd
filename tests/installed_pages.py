"""Run by an installed wheel's Python (not by pytest): load every page, static
file and translation from the installed packages; print {path: status}."""

from __future__ import annotations

import json
import re
import sys
from importlib import resources
from pathlib import Path

from tracker import create_app
from tracker.extensions import db

PASSWORD = "installed-wheel-pass"


def static_paths(app) -> list[str]:
    """The URL of every file in every static folder the installed app has."""
    paths = []
    folders = (("/static", "tracker"), ("/allocation/static", "allocation"))
    for prefix, package in folders:
        root = Path(str(resources.files(package) / "static"))
        paths += [
            f"{prefix}/{file.relative_to(root)}"
            for file in sorted(root.rglob("*"))
            if file.is_file() and not file.name.startswith(".")
        ]
    return paths


def main(instance: str) -> None:
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/pages.sqlite",
            # The compiled French catalogue must be installed too.
            "BABEL_DEFAULT_LOCALE": "fr_FR",
        },
        instance_path=instance,
        environ={},
    )
    with app.app_context():
        from sync.producers import register_producer
        from tracker.auth.models import User
        from tracker.batch import operations
        from tracker.models import import_all_models

        import_all_models()
        db.create_all()
        user = User(username="admin", role="admin")
        user.set_password(PASSWORD)
        db.session.add(user)
        register_producer(db.session, "laptop-1")
        operation = operations.create_synchronous(db.session, "housekeeping")
        db.session.commit()
        operation_id = operation.id
    client = app.test_client()
    registration = {
        "url": "https://indico.example.org",
        "contact": "Ada",
        "email": "ada@example.org",
        "organisation": "Analytical Engines",
    }
    uuid = client.post("/api/instance/", json=registration).get_json()["uuid"]
    login_page = client.get("/login")
    login = login_page.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', login)
    client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": csrf.group(1)},
    )
    pages = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
        and not rule.arguments
        and not rule.rule.startswith(("/api", "/login"))
        and not rule.rule.endswith((".csv", ".jsonl"))  # downloads
    ]
    pages += [
        client.get(f"/instances/{uuid}").headers["Location"],  # by its number
        f"/batch-operations/{operation_id}",
        "/sync/producers/laptop-1",
    ]
    statuses = {"/login": login_page.status_code}
    statuses.update({path: client.get(path).status_code for path in pages})
    statuses.update({path: client.get(path).status_code for path in static_paths(app)})
    french = client.get("/").get_data(as_text=True)
    statuses["translated"] = 200 if "Se déconnecter" in french else 404
    print(json.dumps(statuses))


if __name__ == "__main__":
    main(sys.argv[1])
