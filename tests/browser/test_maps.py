"""Maps drawn without the bands that shapes crossing the 180th meridian leave."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

# Each drawn country path's width in degrees of longitude, from its SVG box.
SPANS = """(id) => {
  const entry = trackerMap.state[id];
  entry.map.setView([20, 0], 1, {animate: false});  // the whole world in view
  const worldPixels = entry.map.options.crs.scale(entry.map.getZoom());
  const spans = {};
  entry.countries.eachLayer((layer) => {
    const name = layer.feature.properties.name;
    const degrees = layer._path.getBBox().width / worldPixels * 360;
    spans[name] = Math.max(spans[name] || 0, degrees);
  });
  return spans;
}"""


def drawn_spans(page, element_id: str) -> dict[str, float]:
    page.wait_for_selector(f"#{element_id}[data-ready=true]")
    return page.evaluate(SPANS, element_id)


@pytest.mark.parametrize("where", ["statistics", "detail"])
def test_no_country_is_drawn_across_more_than_half_the_world(page, where):
    if where == "statistics":
        page.goto("/statistics")
        element_id = "world-map"
    else:
        page.locator("a.detail").first.click()
        element_id = "instance-map"
    spans = drawn_spans(page, element_id)
    assert len(spans) > 150
    too_wide = {name: round(span) for name, span in spans.items() if span > 180}
    assert too_wide == {}
    # The countries that cross the meridian are still drawn, on both sides.
    for name in ("Russia", "Fiji", "Antarctica"):
        assert 0 < spans[name] <= 180
    assert page.errors == []
