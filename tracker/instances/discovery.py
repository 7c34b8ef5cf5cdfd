"""The fleet as a source of truth for other tools: Prometheus HTTP service
discovery and an Ansible dynamic inventory, built from the registry.

Only tracked (enabled) instances are listed. The uuid is an instance's
credential and goes to neither: Prometheus gets the instance's number as the
``__meta_tracker_id`` label, Ansible none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from yarl import URL

from tracker.instances.models import Instance
from tracker.instances.states import Expectations, expectations, instance_state

DEFAULT_PORTS = {"http": 80, "https": 443}
NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_]")


def _tracked(session: Session) -> Iterator[Instance]:
    yield from session.scalars(
        select(Instance).where(Instance.enabled.is_(True)).order_by(Instance.id)
    )


def _labels(instance: Instance, expected: Expectations, now: datetime) -> dict:
    tags = sorted(expected.tags.get(instance.id, ()))
    return {
        "organisation": instance.organisation,
        "country": instance.country_code or "",
        "state": instance_state(instance, expected, now).name,
        # Prometheus's convention for a list in one label (as for Consul tags).
        "tags": f",{','.join(tags)}," if tags else "",
    }


def prometheus_targets(session: Session, config: Mapping, now: datetime) -> list:
    """Prometheus HTTP SD: a list of ``{"targets": [...], "labels": {...}}``."""
    expected = expectations(session, config)
    groups = []
    for instance in _tracked(session):
        url = URL(instance.url)
        port = url.explicit_port or DEFAULT_PORTS.get(url.scheme, 80)
        host = f"[{url.host}]" if ":" in (url.host or "") else url.host
        groups.append(
            {
                "targets": [f"{host}:{port}"],
                "labels": {
                    **_labels(instance, expected, now),
                    "__scheme__": url.scheme,
                    "__meta_tracker_id": str(instance.id),
                    "__meta_tracker_url": instance.url,
                },
            }
        )
    return groups


def _group_name(prefix: str, value: str) -> str:
    return prefix + NOT_IN_A_NAME.sub("_", value).lower()


def ansible_inventory(session: Session, config: Mapping, now: datetime) -> dict:
    """An Ansible dynamic inventory (``--list``): groups by organisation and tag,
    host variables from the registry and the crawled values."""
    expected = expectations(session, config)
    hostvars: dict[str, dict] = {}
    groups: dict[str, list[str]] = {}
    for instance in _tracked(session):
        host = URL(instance.url).host or instance.url
        name = host if host not in hostvars else f"{host}#{instance.id}"
        labels = _labels(instance, expected, now)
        port = URL(instance.url).explicit_port
        hostvars[name] = {
            "ansible_host": host,
            **({"ansible_port": port} if port else {}),
            "tracker_url": instance.url,
            "tracker_organisation": instance.organisation,
            "tracker_country": labels["country"] or None,
            "tracker_state": labels["state"],
            "tracker_tags": sorted(expected.tags.get(instance.id, ())),
            "tracker_crawled": instance.crawled or {},
        }
        groups.setdefault(_group_name("org_", instance.organisation), []).append(name)
        for tag in expected.tags.get(instance.id, ()):
            groups.setdefault(_group_name("tag_", tag), []).append(name)
    inventory: dict = {name: {"hosts": hosts} for name, hosts in sorted(groups.items())}
    inventory["all"] = {"hosts": list(hostvars), "children": sorted(groups)}
    inventory["_meta"] = {"hostvars": hostvars}
    return inventory
