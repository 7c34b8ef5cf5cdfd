"""Allocation pages in headless Chromium: a record typed in, kept, deleted."""

from __future__ import annotations

from tests.allocation.example import build_kep_site
from tests.support import serve, signed_in_tab


def test_a_resource_pool_is_typed_edited_and_deleted_after_confirming(
    browser, app, user
):
    with app.app_context():
        build_kep_site()
    with serve(app) as base, signed_in_tab(browser, base) as tab:
        tab.goto("/allocation/records/resource-pools/new")
        tab.fill("#field-name", "Scratch")
        tab.fill("#field-units", "gb")
        tab.select_option("#field-function", "max")
        tab.click("#record-form button[type=submit]")
        tab.wait_for_url(base + "/allocation/records/resource-pools/")
        row = tab.locator("#records tr", has_text="Scratch")
        assert "GB" in row.inner_text()
        row.get_by_role("link", name="Edit").click()
        tab.fill("#field-units", "parsecs")
        tab.click("#record-form button[type=submit]")
        error = tab.locator('[data-field="units"]').inner_text()
        assert "must be one of CPU-hours" in error
        tab.goto("/allocation/records/resource-pools/")
        tab.locator("#records tr", has_text="Scratch").get_by_role(
            "link", name="Delete"
        ).click()
        assert "Delete the resource pool Scratch?" in tab.inner_text("h1")
        tab.click("#delete-form button")
        tab.wait_for_url(base + "/allocation/records/resource-pools/")
        assert "Deleted Scratch." in tab.inner_text(".flash")
        assert tab.locator("#records tr", has_text="Scratch").count() == 0
        tab.goto("/allocation/")
        assert tab.locator("#ledger").is_visible()
        assert tab.errors == []
        assert all(url.startswith(base) for url in tab.requested)
