"""The Account page in Chromium: revoke a token, change one's password."""

from __future__ import annotations

import pytest

from tests.support import USERNAME, screenshot, signed_in_tab

pytestmark = pytest.mark.slow

NEW_PASSWORD = "a much longer passphrase"


def test_revoke_a_token_and_change_the_password(browser, live_server, token):
    with signed_in_tab(browser, live_server) as tab:
        tab.click("nav a[href='/account']")
        row = tab.locator("#tokens tbody tr").first
        assert "tests" in row.inner_text()
        tab.once("dialog", lambda dialog: dialog.accept())
        row.locator("button[type=submit]").click()
        tab.wait_for_selector(".flash-info")
        assert "revoked" in tab.locator("#tokens tbody tr").first.inner_text()
        assert tab.locator("#tokens button[type=submit]").count() == 0

        tab.fill("#current_password", "correct horse")
        tab.fill("#new_password", NEW_PASSWORD)
        tab.fill("#confirm_password", NEW_PASSWORD)
        tab.click("#change-password button[type=submit]")
        assert "password is changed" in tab.locator(".flash-info").inner_text()
        screenshot(tab, "account")
        tab.click(".signout button[type=submit]")
        tab.fill("#username", USERNAME)
        tab.fill("#password", NEW_PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(live_server + "/")
        assert tab.errors == []
