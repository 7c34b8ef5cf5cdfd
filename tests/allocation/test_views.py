"""Allocation pages: the ledger with highlights, the project tree, the usage chart."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from allocation.importing import import_sacct, import_snapshots
from tests.allocation.example import (
    build_kep_site,
    eight_days_of_cpu,
    eight_days_of_disk,
)
from tracker.extensions import db


def kep_with_usage(app) -> dict[str, int]:
    with app.app_context():
        ids = build_kep_site()
        import_sacct(db.session, eight_days_of_cpu(), ZoneInfo("UTC"))
        import_snapshots(db.session, eight_days_of_disk(), ZoneInfo("UTC"))
        db.session.commit()
        return ids


def test_pages_need_sign_in(client):
    assert client.get("/allocation/").status_code == 302


def test_ledger_highlights_pools_near_or_over_their_allocation(
    app, client, user, login
):
    ids = kep_with_usage(app)
    login()
    page = client.get(f"/allocation/?period_id={ids['period']}").get_data(as_text=True)
    assert re.search(rf'<tr class="ledger-exceeded" data-pool="{ids["q1pd"]}"', page)
    assert re.search(rf'<tr class="ledger-ok" data-pool="{ids["q1pa"]}"', page)
    # Quantities are shown in their pool's unit, humanised.
    assert "700 CPU-hours" in page and "600 KB" in page and "-640 CPU-hours" in page


def test_near_threshold_comes_from_the_settings(app, client, user, login):
    ids = kep_with_usage(app)
    app.config["ALLOCATION_NEAR_PERCENT"] = 10
    login()
    page = client.get("/allocation/").get_data(as_text=True)
    assert f'<tr class="ledger-near" data-pool="{ids["q1pa"]}"' in page


def test_project_tree_shows_usage_and_allocation(app, client, user, login):
    kep_with_usage(app)
    login()
    page = client.get("/allocation/tree").get_data(as_text=True)
    assert page.index("InstituteC") < page.index("ProjectC") < page.index("ProjectD")
    assert "CPU Hours: 700 CPU-hours / 60 CPU-hours" in page
    assert "Disk Space: 100 KB / 600 KB" in page


def test_usage_chart_uses_the_vendored_chart_js_only(app, client, user, login):
    ids = kep_with_usage(app)
    login()
    page = client.get(f"/allocation/pools/{ids['q1pd']}").get_data(as_text=True)
    assert "/static/vendor/chart.umd.min.js" in page
    assert "/allocation/static/allocation/usage-chart.js" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert '"cumulative": [0.0, 100.0' in page
    with client.get("/allocation/static/allocation/usage-chart.js") as script:
        assert script.status_code == 200
    assert client.get("/allocation/pools/999").status_code == 404
    assert client.get("/allocation/?period_id=x").status_code == 400


def test_a_period_asked_for_by_name_is_shown_or_refused(app, client, user, login):
    kep_with_usage(app)
    login()
    shown = client.get("/allocation/?period=2100Q1")
    assert shown.status_code == 200
    unknown = client.get("/allocation/?period=zzz")
    assert unknown.status_code == 404
    assert "No allocation period is named zzz (periods: 2100Q1)." in unknown.get_data(
        as_text=True
    )
    assert client.get("/allocation/tree?period=zzz").status_code == 404
