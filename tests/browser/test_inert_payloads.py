"""Script payloads in every field a user or an instance controls stay inert on
every page, popup and tooltip; the pages run with a strict Content-Security-
Policy and break none of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allocation.models import Machine, Project
from quota.models import ControllerQuota, QuotaClient
from sync.models import SyncProducer
from tests.browser.conftest import FIELDS, seed
from tests.support import serve, signed_in_tab
from tracker.batch import operations
from tracker.batch.models import RESULT_FAILED
from tracker.extensions import db
from tracker.instances.models import Instance


def payload(mark: int) -> str:
    """Markup that runs ``window.pwned = mark`` wherever it is not escaped."""
    return (
        f'"><img src=x onerror="window.pwned={mark}">'
        f"<script>window.pwned={mark}</script><svg onload=window.pwned={mark}>"
    )


# The elements a payload would leave behind if a page parsed it as markup.
INJECTED = "img[src='x'], svg[onload], [onerror], script:not([src]):not([type])"


def plant_payloads(app) -> str:
    """Put a payload in each field; answer the poisoned instance's uuid."""
    with app.app_context():
        seed(10)
        instance = db.session.get(Instance, 1)
        instance.url = "https://x.example.org/" + payload(1)
        instance.contact = payload(2)
        instance.email = "a@example.org" + payload(3)
        instance.organisation = payload(4)
        instance.city = payload(5)  # set by hand, as an admin would
        instance.country_name = payload(6)
        instance.country_code = "KE"
        instance.latitude, instance.longitude = 12.5, 40.5
        instance.location_manual = True
        instance.last_error = payload(7)  # what the crawl of it said
        instance.crawled = {
            "python_version": payload(8),
            "users": 3,
            payload(9): payload(10),  # a crawled key of its own choosing
        }
        now = datetime.now(UTC)
        db.session.add(
            SyncProducer(
                producer_id="laptop-7",
                description=payload(11),
                public_key="k" * 64,
                last_contact=now,
            )
        )
        quota = ControllerQuota(
            record_kind=payload(12)[:90],
            target=10,
            window_start=now - timedelta(days=1),
            window_expires=now + timedelta(days=1),
        )
        db.session.add(quota)
        db.session.flush()
        db.session.add(
            QuotaClient(
                quota_id=quota.id,
                name=payload(13)[:90],
                endpoint="https://clinic.example.org/" + payload(14),
                secret="s" * 40,
                last_error=payload(15),
            )
        )
        db.session.add(Project(name=payload(16)[:90], description=payload(17)))
        db.session.add(Machine(name=payload(18)[:90], description=payload(19)))
        operations.record_skipped(
            db.session, "crawl", payload(20)[:100], payload(21), RESULT_FAILED
        )
        db.session.commit()
        return instance.uuid


@pytest.fixture
def poisoned(make_app):
    app = make_app(CRAWLED_FIELDS_SETTINGS=FIELDS, DASHBOARD_PAGE_SIZE=10)
    uuid = plant_payloads(app)
    with serve(app) as base:
        yield base, uuid


def assert_inert(tab, where: str) -> None:
    assert tab.evaluate("window.pwned") is None, where
    assert tab.locator(INJECTED).count() == 0, where
    assert tab.locator("a[href^='javascript:']").count() == 0, where


def test_every_page_popup_and_tooltip_stays_inert(browser, poisoned):
    base, uuid = poisoned
    with signed_in_tab(browser, base) as tab:
        refused = []
        tab.on(
            "console",
            lambda message: (
                refused.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        pages = [
            "/",
            "/?q=example",
            "/?sort=url&dir=desc",
            f"/instances/{uuid}",
            "/statistics",
            "/batch-operations",
            "/batch-operations/1",
            "/sync",
            "/sync/producers/laptop-7",
            "/quotas",
            "/allocation/",
            "/allocation/tree",
        ]
        for path in pages:
            reply = tab.goto(path)
            assert reply.status == 200, path
            tab.wait_for_load_state("networkidle")
            assert_inert(tab, path)
        # The detail page shows the payloads as text, and draws its map.
        tab.goto(f"/instances/{uuid}")
        tab.wait_for_selector("#instance-map[data-ready=true]")
        values = tab.evaluate(
            "Array.from(document.querySelectorAll('input')).map(i => i.value)"
        )
        assert payload(2) in values  # the contact, in its edit field
        assert payload(8) in tab.inner_text("#crawled-values")
        # The statistics map: the hand-set city is the point's tooltip, as text.
        tab.goto("/statistics")
        tab.wait_for_selector("#world-map[data-ready=true]")
        shown = []
        for point in tab.locator("path.instance-point").all():
            point.hover(force=True)
            tooltip = tab.locator(".leaflet-tooltip")
            if tooltip.count():
                shown.append(tooltip.last.inner_text())
                assert tooltip.last.locator("img, svg, script").count() == 0
        assert any(payload(5) in text for text in shown), shown
        # Hovering a country shows its tooltip too.
        tab.mouse.move(650, 330)
        assert_inert(tab, "statistics after hovering")
        assert tab.errors == []
    assert refused == []  # no script of ours is inline: the policy refused none


def test_the_policy_refuses_an_inline_script(browser, poisoned):
    """The header is really enforced: an inline script put in by hand is refused."""
    base, _uuid = poisoned
    with signed_in_tab(browser, base) as tab:
        tab.goto("/")
        tab.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.pwned = 99'; document.body.appendChild(s); }"
        )
        assert tab.evaluate("window.pwned") is None
