"""Single sign-on in Chromium: the sign-in page's button, the provider on
loopback, and back signed in with the role the provider's claim gives."""

from __future__ import annotations

import pytest

from tests.openid_provider import running_provider, sso_settings
from tests.support import screenshot, serious_violations, serve, with_axe

pytestmark = pytest.mark.slow


def test_sign_in_through_the_button(browser, make_app):
    with running_provider() as provider:
        provider.claims["groups"] = ["operations"]
        app = make_app(**sso_settings(provider))
        with serve(app) as base:
            context = browser.new_context(base_url=base)
            try:
                tab = context.new_page()
                errors = []
                tab.on("pageerror", lambda error: errors.append(str(error)))
                tab.goto("/batch-operations")
                assert tab.url.startswith(base + "/login")
                screenshot(tab, "sso-login")
                tab.click("#sso")
                tab.wait_for_url(base + "/batch-operations")
                tab.goto("/account")
                assert "grace" in tab.inner_text("h1")
                assert "operator" in tab.inner_text("#api-tokens")
                assert tab.locator("#no-password").is_visible()
                screenshot(tab, "sso-account")
                assert errors == []
            finally:
                context.close()
    (asked,) = provider.authorizations
    assert asked["redirect_uri"] == base + "/login/oidc/callback"


def test_a_refusal_is_a_page_that_says_why(browser, make_app):
    with running_provider() as provider:
        provider.claims["groups"] = ["visitors"]
        app = make_app(**sso_settings(provider))
        with serve(app) as base:
            context = browser.new_context(base_url=base)
            with_axe(context)
            try:
                tab = context.new_page()
                tab.goto("/login")
                assert serious_violations(tab) == []
                tab.click("#sso")
                tab.wait_for_selector("#sso-problem")
                assert "gives you no role here" in tab.inner_text("#sso-problem")
                assert serious_violations(tab) == []
                screenshot(tab, "sso-refused")
                tab.click("text=Back to the sign-in page")
                tab.wait_for_url(base + "/login")
            finally:
                context.close()
