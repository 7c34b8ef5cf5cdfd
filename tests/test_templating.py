"""Crawled values as the dashboard shows them: lists and mappings readable,
numbers in the locale's format, every text escaped."""

from __future__ import annotations

from flask_babel import force_locale

from tracker.templating import crawled_html, crawled_summary


def test_lists_and_mappings_read_as_text(app):
    with app.test_request_context():
        assert crawled_summary(["en", "fr", "sw"]) == "en, fr, sw"
        assert crawled_summary({"disk": 12, "cpu": "x86"}) == "cpu: x86; disk: 12"
        assert crawled_summary({"a": [1, 2], "b": {"c": True}}) == (
            "a: 1, 2; b: (c: yes)"
        )
        assert crawled_summary(1234567.5) == "1,234,567.5"
        assert crawled_summary(None) == ""
        assert crawled_summary("3.12") == "3.12"
        deep = [[[[["x"]]]]]
        assert crawled_summary(deep) == '[["x"]]'


def test_numbers_follow_the_locale(app):
    with app.test_request_context(), force_locale("fr"):
        assert (
            crawled_summary(1234567.5)
            == "1\N{NARROW NO-BREAK SPACE}234\N{NARROW NO-BREAK SPACE}567,5"
        )
        assert crawled_summary([True, False]) == "oui, non"


def test_values_are_laid_out_and_escaped(app):
    with app.test_request_context():
        html = str(crawled_html({"<b>": ["<script>", 2]}))
    assert html == (
        '<dl class="value-map"><dt>&lt;b&gt;</dt><dd><ul class="value-list">'
        "<li>&lt;script&gt;</li><li>2</li></ul></dd></dl>"
    )
