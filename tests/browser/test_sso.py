"""Single sign-on in Chromium: the sign-in page's button, the provider on
loopback, and back signed in with the role the provider's claim gives."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests.openid_provider import running_provider, sso_settings
from tests.support import screenshot, serious_violations, serve, with_axe

pytestmark = pytest.mark.slow


@contextmanager
def tab_beside_a_provider(browser, make_app, groups: list[str]):
    """A Chromium tab on the tracker, whose provider says ``groups``;
    yields (tab, base URL, provider)."""
    with running_provider() as provider:
        provider.claims["groups"] = groups
        with serve(make_app(**sso_settings(provider))) as base:
            context = browser.new_context(base_url=base)
            with_axe(context)
            try:
                tab = context.new_page()
                tab.errors = []
                tab.on("pageerror", lambda error: tab.errors.append(str(error)))
                yield tab, base, provider
                assert tab.errors == []
            finally:
                context.close()


def test_sign_in_through_the_button(browser, make_app):
    with tab_beside_a_provider(browser, make_app, ["operations"]) as (
        tab,
        base,
        provider,
    ):
        tab.goto("/batch-operations")
        assert tab.url.startswith(base + "/login")
        assert serious_violations(tab) == []
        screenshot(tab, "sso-login")
        tab.click("#sso")
        tab.wait_for_url(base + "/batch-operations")
        tab.goto("/account")
        assert "grace" in tab.inner_text("h1")
        assert "operator" in tab.inner_text("#api-tokens")
        assert tab.locator("#no-password").is_visible()
        screenshot(tab, "sso-account")
    (asked,) = provider.authorizations
    assert asked["redirect_uri"] == base + "/login/oidc/callback"


def test_a_refusal_is_a_page_that_says_why(browser, make_app):
    with tab_beside_a_provider(browser, make_app, ["visitors"]) as (tab, base, _):
        tab.goto("/login")
        tab.click("#sso")
        tab.wait_for_selector("#sso-problem")
        assert "gives you no role here" in tab.inner_text("#sso-problem")
        assert serious_violations(tab) == []
        screenshot(tab, "sso-refused")
        tab.click("text=Back to the sign-in page")
        tab.wait_for_url(base + "/login")
