"""Every page of the dashboard on a phone and on a desktop screen: nothing
scrolls the page sideways, every navigation entry can be reached."""

from __future__ import annotations

import re

import pytest

from tests.support import (
    SCREENSHOTS,
    SIGNED_OUT_ENDPOINTS,
    page_paths,
    screenshot,
    serious_violations,
    signed_in_tab,
    visit,
    with_axe,
)

pytestmark = pytest.mark.slow

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


def slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"


def page_overflow(tab) -> int:
    """How many pixels the page is wider than the window (0 when it fits)."""
    return tab.evaluate(
        """() => Math.max(document.documentElement.scrollWidth,
                          document.body.scrollWidth) - window.innerWidth"""
    )


def inside_window(tab, locator) -> bool:
    box = locator.bounding_box()
    width = tab.viewport_size["width"]
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


def check_navigation(tab, narrow: bool, shot: str | None = None) -> None:
    """Every navigation entry and the sign-out button are on screen, at once
    on a wide screen, after opening the menu on a narrow one."""
    toggle = tab.locator(".topbar .menu-toggle")
    entries = tab.locator(".topbar nav a")
    assert entries.count() >= 5
    if narrow:
        assert toggle.is_visible()
        assert toggle.get_attribute("aria-expanded") == "false"
        assert not entries.first.is_visible()
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"
    else:
        assert not toggle.is_visible()
    for index in range(entries.count()):
        entry = entries.nth(index)
        assert entry.is_visible(), entry.inner_text()
        assert inside_window(tab, entry), entry.inner_text()
    sign_out = tab.locator(".signout button")
    assert sign_out.is_visible() and inside_window(tab, sign_out)
    if shot:
        tab.screenshot(path=str(SCREENSHOTS / f"{shot}.png"))
    if narrow:
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "false"
        assert not entries.first.is_visible()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_every_page_fits_and_every_entry_is_reachable(browser, every_page, viewport):
    app, base, ids = every_page
    paths = page_paths(app, ids)
    narrow = viewport["width"] < 760
    size = f"{viewport['width']}x{viewport['height']}"
    seen = []
    violations = {}
    with signed_in_tab(browser, base) as tab:
        with_axe(tab.context)
        tab.set_viewport_size(viewport)
        for endpoint, path in sorted(paths.items()):
            if endpoint in SIGNED_OUT_ENDPOINTS or not visit(tab, path):
                continue
            tab.wait_for_load_state("networkidle")
            seen.append(endpoint)
            screenshot(tab, f"layout-{size}-{slug(path)}")
            assert page_overflow(tab) <= 0, (path, page_overflow(tab))
            violations[path] = serious_violations(tab)
            menu = f"layout-{size}-menu" if endpoint == "instances.index" else None
            check_navigation(tab, narrow, menu)
        assert tab.errors == []
    # The registry's pages, background jobs and every domain's pages.
    assert {
        "instances.index",
        "instances.detail",
        "instances.statistics",
        "batch.index",
        "batch.detail",
        "quota.index",
        "sync.index",
        "sync.producer",
        "sync.records",
        "sync.conflicts",
        "allocation.index",
        "allocation.tree",
        "allocation.pool",
    } <= set(seen)

    context = browser.new_context(base_url=base, viewport=viewport)
    with_axe(context)
    try:
        tab = context.new_page()
        for endpoint in sorted(SIGNED_OUT_ENDPOINTS & set(paths)):
            assert visit(tab, paths[endpoint])
            screenshot(tab, f"layout-{size}-{slug(paths[endpoint])}")
            assert page_overflow(tab) <= 0, paths[endpoint]
            violations[paths[endpoint]] = serious_violations(tab)
        tab.goto("/no/such/page")
        screenshot(tab, f"layout-{size}-not-found")
        assert page_overflow(tab) <= 0
        violations["404"] = serious_violations(tab)
    finally:
        context.close()
    assert {path: found for path, found in violations.items() if found} == {}


def test_url_cells_stay_on_one_line_with_the_full_url_on_hover(page, dashboard):
    from sqlalchemy import update

    from tracker.extensions import db
    from tracker.instances.models import Instance

    app, _base = dashboard
    long_url = "https://a-very-long-host-name.clinics.example.org/" + "path/" * 30
    with app.app_context():
        db.session.execute(update(Instance).values(url=long_url))
        db.session.commit()
    page.set_viewport_size(DESKTOP)
    page.goto("/")
    screenshot(page, "list-long-urls")
    links = page.locator("#instances td.url a")
    assert links.count() == 10
    for index in range(links.count()):
        link = links.nth(index)
        assert link.get_attribute("title") == long_url
        # One line box: the URL neither wraps nor spills out of its cell.
        lines = "a => new Set([...a.getClientRects()].map(r => r.top)).size"
        assert link.evaluate(lines) == 1
        cell = link.locator("xpath=..")
        assert cell.evaluate("td => td.getBoundingClientRect().height") < 40, (
            cell.evaluate("td => td.parentElement.innerText")
        )
    assert page_overflow(page) <= 0


def test_favicon_is_served(page):
    response = page.request.get("/favicon.ico")
    assert response.status == 200
    assert response.headers["content-type"] == "image/vnd.microsoft.icon"
    assert response.body()[:4] == b"\x00\x00\x01\x00"
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(icon).status == 200


def test_dark_mode_follows_the_system_and_stays_readable(browser, every_page):
    app, base, ids = every_page
    paths = page_paths(app, ids)
    with signed_in_tab(browser, base) as tab:
        with_axe(tab.context)
        tab.emulate_media(color_scheme="dark")
        for endpoint in ("instances.index", "batch.detail", "sync.index"):
            tab.goto(paths[endpoint])
            background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(18, 21, 27)", background
            screenshot(tab, f"dark-{endpoint}")
            assert serious_violations(tab) == [], endpoint


def test_users_and_audit_tables_need_no_sideways_scrolling_on_a_phone(
    browser, every_page
):
    _app, base, _ids = every_page
    with signed_in_tab(browser, base) as tab:
        tab.set_viewport_size(PHONE)
        for path, table in (("/users", "#users"), ("/audit", "#audit-events")):
            assert visit(tab, path)
            wider = tab.evaluate(
                """(selector) => {
                    const box = document.querySelector(selector).parentElement;
                    return box.scrollWidth - box.clientWidth;
                }""",
                table,
            )
            assert wider <= 0, (path, wider)
            select = tab.locator(f"{table} select").first
            if select.count():
                assert select.evaluate("s => s.scrollWidth <= s.clientWidth + 1")
