"""The sync pages as an operator uses them, on a phone and on a desktop screen:
the synchronised records, a producer, and the conflicts with their resolution."""

from __future__ import annotations

import pytest

from tests.support import screenshot, signed_in_tab

pytestmark = pytest.mark.slow

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1440, "height": 900}
SIZES = pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])


def fits(tab) -> bool:
    """Nothing makes the page scroll sideways."""
    return tab.evaluate(
        """() => Math.max(document.documentElement.scrollWidth,
                          document.body.scrollWidth) <= window.innerWidth"""
    )


def table_fits(tab, selector: str) -> bool:
    """The table needs no sideways scrolling, and its buttons are on screen."""
    return tab.evaluate(
        """(selector) => {
            const table = document.querySelector(selector);
            const box = table.closest('.table-scroll') || table.parentElement;
            const buttons = [...table.querySelectorAll('button')].every((button) => {
                const edge = button.getBoundingClientRect();
                return edge.left >= 0 && edge.right <= window.innerWidth;
            });
            return box.scrollWidth <= box.clientWidth && buttons;
        }""",
        selector,
    )


def follow(tab, selector: str) -> None:
    """Click a link or button and wait for the page it leads to."""
    with tab.expect_navigation():
        tab.click(selector)


def show(tab) -> None:
    """Submit the filters and wait for the page they lead to."""
    follow(tab, ".filters button[type=submit]")


def size(viewport) -> str:
    return f"{viewport['width']}x{viewport['height']}"


@SIZES
def test_records_are_browsed_searched_and_offered_for_download(
    browser, every_page, viewport
):
    _app, base, _ids = every_page
    with signed_in_tab(browser, base) as tab:
        tab.set_viewport_size(viewport)
        tab.goto("/sync")
        follow(tab, "a[href='/sync/records']")
        assert tab.locator("#records tbody tr").count() == 2  # the two households
        tab.select_option("select[name=model]", "Member")
        tab.fill("input[name=q]", "achieng")
        show(tab)
        rows = tab.locator("#records tbody tr")
        assert rows.count() == 1 and "KSM-0001-01" in rows.first.inner_text()
        exports = tab.locator("#record-exports a[download]")
        assert exports.nth(0).get_attribute("href") == "/sync/records/Member.csv"
        assert exports.nth(1).get_attribute("href") == "/sync/records/Member.jsonl"
        screenshot(tab, f"sync-records-{size(viewport)}")
        assert fits(tab) and table_fits(tab, "#records")
        tab.fill("input[name=q]", "nobody by that name")
        show(tab)
        assert "No record matches." in tab.inner_text("#records")
        follow(tab, "#conflicts-link")
        assert tab.url.endswith("/sync/conflicts")
        assert tab.errors == []


@SIZES
def test_a_producer_page_shows_its_standing_and_issues_a_new_credential(
    browser, every_page, viewport
):
    _app, base, ids = every_page
    producer = ids["producer_id"]
    with signed_in_tab(browser, base) as tab:
        tab.set_viewport_size(viewport)
        tab.goto("/sync")
        follow(tab, f"#producers a[href='/sync/producers/{producer}']")
        assert tab.inner_text("h1") == producer
        facts = tab.inner_text("#producer-facts")
        assert "Field tablet, Kisumu district team" in facts
        assert tab.inner_text("#producer-conflicts") == "1"
        screenshot(tab, f"sync-producer-{size(viewport)}")
        assert fits(tab)
        tab.once("dialog", lambda dialog: dialog.accept())
        follow(tab, "button:has-text('New credential')")
        credential = tab.inner_text("#issued #credential")
        assert len(credential) == 44
        assert fits(tab)
        follow(tab, "#producer-conflicts a")
        assert tab.locator("#conflicts tbody tr[data-conflict]").count() == 1
        assert tab.errors == []


@SIZES
def test_conflicts_are_filtered_and_resolved(browser, every_page, viewport):
    _app, base, _ids = every_page
    with signed_in_tab(browser, base) as tab:
        tab.set_viewport_size(viewport)
        tab.goto("/sync")
        assert tab.inner_text("#conflicts-link") == "1 open conflict"
        follow(tab, "#conflicts-link")
        rows = tab.locator("#conflicts tbody tr[data-conflict]")
        assert rows.count() == 1
        row = rows.first
        assert "village" in row.inner_text()
        assert "Kisumu Ndogo Estate, behind the dispensary" in row.inner_text()
        screenshot(tab, f"sync-conflicts-{size(viewport)}")
        assert fits(tab) and table_fits(tab, "#conflicts")

        tab.select_option("select[name=status]", "resolved")
        show(tab)
        resolved = tab.locator("#conflicts tbody tr[data-conflict]")
        assert resolved.count() == 1
        assert "kept the applied value" in resolved.first.inner_text()
        assert "(Household" in resolved.first.inner_text()  # parents by natural key
        tab.select_option("select[name=status]", "all")
        tab.select_option("select[name=model]", "Household")
        tab.select_option("select[name=producer]", "laptop-manaus-02")
        show(tab)
        assert tab.locator("#conflicts tbody tr[data-conflict]").count() == 1

        tab.goto("/sync/conflicts")
        tab.once("dialog", lambda dialog: dialog.accept())
        follow(tab, "#conflicts button:has-text('Take other value')")
        assert "the other value is now in the record" in tab.inner_text("main")
        assert "No conflict matches." in tab.inner_text("#conflicts")
        assert tab.inner_text("#open-conflicts") == "0 open"
        tab.goto("/sync/records?model=Household&q=dispensary")
        assert tab.locator("#records tbody tr").count() == 1
        screenshot(tab, f"sync-conflict-resolved-{size(viewport)}")
        assert fits(tab)
        assert tab.errors == []
