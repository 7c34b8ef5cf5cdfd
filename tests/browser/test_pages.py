"""The dashboard as a person uses it, in headless Chromium."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.support import screenshot

pytestmark = pytest.mark.slow


def only_loopback(tab) -> None:
    hosts = {
        urlsplit(url).hostname for url in tab.requested if not url.startswith("data:")
    }
    assert hosts == {"127.0.0.1"}, hosts


def test_list_filter_sort_paginate_and_detail(page):
    screenshot(page, "list")
    assert page.locator("#instances-active").inner_text().startswith("27 active")
    rows = page.locator("#instances tbody tr")
    assert rows.count() == 10
    assert page.locator(".page-of").inner_text() == "Page 1 of 3"

    page.select_option("select[name=country]", "KE")
    page.click(".filters button[type=submit]")
    assert page.locator("#instances-listed").inner_text().startswith("12 listed")

    page.click("a[data-sort='crawled.events']")
    first = page.locator("#instances tbody tr").first.locator("td[data-column=events]")
    assert first.inner_text() == "1"
    page.click("a[data-sort='crawled.events']")
    first = page.locator("#instances tbody tr").first.locator("td[data-column=events]")
    assert first.inner_text() == "27"

    page.click("a[rel=next]")
    assert page.locator(".page-of").inner_text() == "Page 2 of 2"

    page.locator("a.detail").first.click()
    page.wait_for_selector("#instance-map[data-ready=true]")
    assert page.locator("#instance-map .leaflet-marker-icon").count() == 1
    assert page.locator("#instance-map path.leaflet-interactive").count() > 100
    screenshot(page, "detail")
    assert page.errors == []
    only_loopback(page)


def test_statistics_draws_map_table_and_every_chart(page):
    page.goto("/statistics")
    page.wait_for_selector("#world-map[data-ready=true]")
    page.wait_for_selector("canvas[data-chart=users][data-ready=true]")
    screenshot(page, "statistics")
    shaded = page.evaluate("trackerMap.state['world-map'].shaded")
    assert shaded == 3  # Switzerland, Kenya, Brazil
    assert page.locator("#world-map path.instance-point").count() == 4

    table = page.locator("#country-table tbody tr")
    texts = [table.nth(i).inner_text().split("\t") for i in range(table.count())]
    assert texts[0] == ["Kenya", "12", "44.4"]
    assert ["Unknown", "3", "11.1"] in texts

    charts = page.evaluate(
        """() => Object.fromEntries(Object.entries(trackerCharts.instances).map(
            ([field, chart]) => [field, {type: chart.config.type,
              labels: chart.data.labels, values: chart.data.datasets[0].data,
              width: chart.canvas.width}]))"""
    )
    assert set(charts) == {"registered", "python_version", "events", "rooms", "users"}
    assert charts["python_version"]["type"] == "pie"
    assert sorted(charts["python_version"]["labels"]) == ["3.11", "3.12", "3.13"]
    assert sum(charts["python_version"]["values"]) == 27
    legend = page.evaluate(
        "trackerCharts.instances.python_version.legend.legendItems.map(i => i.text)"
    )
    assert sorted(legend) == ["3.11 (33.3 %)", "3.12 (33.3 %)", "3.13 (33.3 %)"]
    assert charts["events"]["type"] == "bar"
    assert charts["users"]["type"] == "line"
    assert len(charts["users"]["labels"]) == 7
    assert charts["registered"]["values"][-1] == 30
    assert all(chart["width"] > 100 for chart in charts.values())
    assert page.errors == []
    only_loopback(page)


def test_background_jobs_page(page):
    page.goto("/batch-operations")
    screenshot(page, "batch-operations")
    assert "No background job yet." in page.inner_text("#batch-operations")


def test_hostile_values_are_shown_inert(page, dashboard):
    app, _base = dashboard
    from sqlalchemy import select

    from tracker.extensions import db
    from tracker.instances.models import Instance

    with app.app_context():
        instance = db.session.scalar(select(Instance).where(Instance.id == 1))
        instance.url = "javascript:alert(document.cookie)"
        instance.crawled = {"python_version": "<script>window.pwned=1</script>"}
        instance.organisation = "<img src=x onerror=window.pwned=2>"
        number = instance.id
        db.session.commit()
    page.goto("/?sort=url&dir=desc")
    page.goto(f"/instances/{number}")
    assert page.evaluate("window.pwned") is None
    assert page.locator("a[href^='javascript:']").count() == 0
    assert "<script>window.pwned=1</script>" in page.inner_text("#crawled-values")
    page.goto("/?q=javascript")
    assert page.evaluate("window.pwned") is None
    assert page.locator("a[href^='javascript:']").count() == 0
    assert "javascript:alert(document.cookie)" in page.inner_text("#instances")
    page.goto("/statistics")
    page.wait_for_selector("canvas[data-chart=python_version][data-ready=true]")
    assert page.evaluate("window.pwned") is None
