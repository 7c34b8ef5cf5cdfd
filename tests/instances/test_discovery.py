"""The fleet as a source of truth: Prometheus HTTP SD (read by a real
Prometheus) and the Ansible dynamic inventory."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
import requests

from tests.services import free_port, scratch_directory, unavailable
from tests.support import REGISTRATION
from tests.test_cli import manage_command


def register(client, url, organisation="Clinics of Kisumu"):
    payload = {**REGISTRATION, "url": url, "organisation": organisation}
    return client.post("/api/instance/", json=payload).get_json()["uuid"]


@pytest.fixture
def fleet(client, auth_headers):
    clinic = register(client, "https://clinic-1.example.org")
    lab = register(client, "http://lab.example.org:8080/tracker", "Lab & Co")
    client.patch(
        f"/api/instances/{clinic}",
        json={"tags": ["ke", "clinic"]},
        headers=auth_headers,
    )
    gone = register(client, "https://gone.example.org")
    client.patch(
        f"/api/instances/{gone}", json={"enabled": False}, headers=auth_headers
    )
    number = client.get(f"/api/instances/{clinic}", headers=auth_headers)
    return {"clinic": clinic, "lab": lab, "clinic_number": number.get_json()["id"]}


def test_prometheus_sd_lists_tracked_instances_with_their_labels(
    client, auth_headers, fleet
):
    response = client.get("/api/sd/prometheus", headers=auth_headers)
    assert response.status_code == 200
    groups = {tuple(g["targets"]): g["labels"] for g in response.get_json()}
    assert set(groups) == {("clinic-1.example.org:443",), ("lab.example.org:8080",)}
    clinic = groups[("clinic-1.example.org:443",)]
    assert clinic["organisation"] == "Clinics of Kisumu"
    assert clinic["tags"] == ",clinic,ke,"
    # Its number, never its uuid (the client's credential).
    assert clinic["__meta_tracker_id"] == str(fleet["clinic_number"])
    assert fleet["clinic"] not in response.get_data(as_text=True)
    assert clinic["__scheme__"] == "https"
    assert clinic["state"] == "checking_in"
    assert client.get("/api/sd/prometheus").status_code == 401


def test_ansible_inventory_groups_by_organisation_and_tag(
    database_url, tmp_path, fleet
):
    manage = manage_command(database_url, tmp_path)
    result = manage("inventory", "--list")
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert inventory["org_clinics_of_kisumu"]["hosts"] == ["clinic-1.example.org"]
    assert inventory["org_lab___co"]["hosts"] == ["lab.example.org"]
    assert inventory["tag_ke"]["hosts"] == ["clinic-1.example.org"]
    hostvars = inventory["_meta"]["hostvars"]
    assert hostvars["lab.example.org"]["tracker_url"] == (
        "http://lab.example.org:8080/tracker"
    )
    assert "gone.example.org" not in hostvars
    assert fleet["clinic"] not in result.stdout  # the uuid is a credential
    one = manage("inventory", "--host", "lab.example.org")
    assert json.loads(one.stdout)["ansible_host"] == "lab.example.org"
    refused = manage("inventory")
    assert refused.returncode == 2
    assert "--list" in refused.stderr


def test_a_real_prometheus_discovers_the_fleet(live_server, token, fleet):
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("prometheus not installed")
    directory = scratch_directory("tracker-prometheus-")
    (directory / "token").write_text(token)
    (directory / "prometheus.yml").write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1h"},
                "scrape_configs": [
                    {
                        "job_name": "fleet",
                        "http_sd_configs": [
                            {
                                "url": f"{live_server}/api/sd/prometheus",
                                "refresh_interval": "1s",
                                # Without the type, Prometheus 2.42 sends the
                                # bare token in its discovery requests.
                                "authorization": {
                                    "type": "Bearer",
                                    "credentials_file": str(directory / "token"),
                                },
                            }
                        ],
                    }
                ],
            }
        )
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        targets = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(targets) < 2:
            time.sleep(0.5)
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/api/v1/targets", timeout=5
                ).json()
            except (requests.ConnectionError, ValueError):
                continue
            targets = answer["data"]["activeTargets"]
        discovered = {t["discoveredLabels"]["__address__"]: t for t in targets}
        assert set(discovered) == {"clinic-1.example.org:443", "lab.example.org:8080"}
        clinic = discovered["clinic-1.example.org:443"]
        assert clinic["labels"]["organisation"] == "Clinics of Kisumu"
        assert clinic["labels"]["tags"] == ",clinic,ke,"
        assert clinic["scrapeUrl"].startswith("https://clinic-1.example.org:443/")
        # Its number is a discovered (meta) label; its uuid is nowhere.
        number = str(fleet["clinic_number"])
        assert clinic["discoveredLabels"]["__meta_tracker_id"] == number
        assert fleet["clinic"] not in json.dumps(clinic)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
