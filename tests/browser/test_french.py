"""Every page in French shows no English interface text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.support import (
    SIGNED_OUT_ENDPOINTS,
    page_paths,
    screenshot,
    signed_in_tab,
    visit,
)

pytestmark = pytest.mark.slow

CATALOGUE = (
    Path(__file__).resolve().parents[2]
    / "tracker/translations/fr/LC_MESSAGES/messages.po"
)
PLACEHOLDER = re.compile(r"(%\([a-z_]+\)[sd])")
# A number in any locale's digits and separators; any text for the rest.
NUMBER = r"[0-9][0-9\s.,\u202f\xa0]*"
# What the seeded data itself says, which is not interface text.
DATA = {"all", "Users"}  # "Users": a seeded crawled field named users
# Every visible text node, and the texts of titles, placeholders and labels.
TEXTS = """() => {
  const texts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (parent && !parent.closest("script, style") && parent.offsetParent !== null) {
      texts.push(node.textContent);
    }
  }
  document.querySelectorAll("[title], [placeholder], [aria-label]").forEach((el) => {
    ["title", "placeholder", "aria-label"].forEach((name) => {
      if (el.hasAttribute(name)) { texts.push(el.getAttribute(name)); }
    });
  });
  return texts.map((text) => text.replace(/\\s+/g, " ").trim()).filter(Boolean);
}"""


def english_patterns() -> list[tuple[str, re.Pattern]]:
    """Each English message that French says otherwise, as a pattern that
    matches a whole text (placeholders match anything)."""
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle)
    patterns = []
    for message in catalogue:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = (
            message.string if isinstance(message.string, tuple) else (message.string,)
        )
        for english, french in zip(ids, strings, strict=False):
            if not english or english == french or len(english) < 3:
                continue
            pattern = "".join(
                (NUMBER if part.endswith("d") else ".+?")
                if PLACEHOLDER.fullmatch(part)
                else re.escape(part.replace("%%", "%"))
                for part in PLACEHOLDER.split(english)
            )
            patterns.append((english, re.compile(pattern)))
    return patterns


def english_on(tab, patterns) -> set[str]:
    found = set()
    for text in tab.evaluate(TEXTS):
        if text in DATA:
            continue
        found.update(english for english, p in patterns if p.fullmatch(text))
    return found


def test_french_pages_show_no_english_interface_text(browser, every_page_in_french):
    app, base, ids = every_page_in_french
    patterns = english_patterns()
    assert len(patterns) > 200
    paths = page_paths(app, ids)
    english: dict[str, set[str]] = {}
    with signed_in_tab(browser, base) as tab:
        for endpoint, path in sorted(paths.items()):
            if endpoint in SIGNED_OUT_ENDPOINTS or not visit(tab, path):
                continue
            tab.wait_for_load_state("networkidle")
            assert tab.evaluate("document.documentElement.lang") == "fr"
            screenshot(tab, f"french-{endpoint}")
            english[path] = english_on(tab, patterns)
        tab.goto("/no/such/page")
        screenshot(tab, "french-not-found")
        english["404"] = english_on(tab, patterns)
        assert "Page introuvable" in tab.inner_text("h1")
    context = browser.new_context(base_url=base)
    try:
        tab = context.new_page()
        for endpoint in SIGNED_OUT_ENDPOINTS & set(paths):
            visit(tab, paths[endpoint])
            english[paths[endpoint]] = english_on(tab, patterns)
    finally:
        context.close()
    assert {path: found for path, found in english.items() if found} == {}
