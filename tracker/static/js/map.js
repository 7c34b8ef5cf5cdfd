/* World maps drawn with Leaflet from a GeoJSON country layer: no tile server. */
(function () {
  "use strict";

  var state = {};

  // Land and borders follow the page's colours (light or dark).
  function colour(name, fallback) {
    var value = window.getComputedStyle(document.documentElement).getPropertyValue(name);
    return (value || "").trim() || fallback;
  }

  function baseMap(elementId) {
    return L.map(elementId, {
      worldCopyJump: true,
      attributionControl: false,
      minZoom: 1,
      maxZoom: 8,
      zoomSnap: 0.5,
    }).setView([25, 10], 1.5);
  }

  function loadCountries(url) {
    return fetch(url)
      .then(function (response) { return response.json(); })
      .then(function (topology) {
        return splitAtAntimeridian(topojson.feature(topology, topology.objects.countries));
      });
  }

  /* Countries that cross the 180th meridian come as rings that jump from one
     edge of the map to the other (Fiji, Russia's far east) or go round a pole
     (Antarctica). Drawn as they are, each jump is a band across the whole
     map. So rings are cut at every jump and closed along the map's edge (or
     through the pole), and a country whose parts lie on both edges becomes one
     feature per side: no drawn shape spans more than half the world. */
  var JUMP = 180;

  function lonSpan(rings) {
    var min = Infinity;
    var max = -Infinity;
    rings.forEach(function (ring) {
      ring.forEach(function (point) {
        min = Math.min(min, point[0]);
        max = Math.max(max, point[0]);
      });
    });
    return max - min;
  }

  function openRing(ring) {
    var last = ring[ring.length - 1];
    var closed = ring.length > 1 && last[0] === ring[0][0] && last[1] === ring[0][1];
    return closed ? ring.slice(0, -1) : ring.slice();
  }

  function closeRing(points) {
    return points.concat([points[0]]);
  }

  function jumps(points) {
    var found = [];
    for (var i = 0; i < points.length; i++) {
      var previous = points[(i + points.length - 1) % points.length];
      if (Math.abs(points[i][0] - previous[0]) > JUMP) { found.push(i); }
    }
    return found;
  }

  // Sutherland-Hodgman against one side of a meridian: exact for any simple ring.
  function clipRing(points, meridian, keepWest) {
    function inside(point) { return keepWest ? point[0] <= meridian : point[0] >= meridian; }
    function crossing(a, b) {
      var t = (meridian - a[0]) / (b[0] - a[0]);
      return [meridian, a[1] + t * (b[1] - a[1])];
    }
    var out = [];
    points.forEach(function (current, i) {
      var previous = points[(i + points.length - 1) % points.length];
      if (inside(current)) {
        if (!inside(previous)) { out.push(crossing(previous, current)); }
        out.push(current);
      } else if (inside(previous)) {
        out.push(crossing(previous, current));
      }
    });
    return out;
  }

  function cutRing(ring) {
    // The pieces of one outer ring between its jumps, each closed on its own.
    var points = openRing(ring);
    var at = jumps(points);
    if (at.length === 0) { return [ring]; }
    var rotated = points.slice(at[0]).concat(points.slice(0, at[0]));
    var starts = at.map(function (index) { return (index - at[0] + points.length) % points.length; });
    var pieces = starts.map(function (start, k) {
      return rotated.slice(start, k + 1 < starts.length ? starts[k + 1] : rotated.length);
    });
    if (at.length % 2 === 1) {
      // Round a pole: one piece from edge to edge, closed through the pole.
      var piece = pieces[0];
      var pole = piece.reduce(function (sum, p) { return sum + p[1]; }, 0) < 0 ? -90 : 90;
      var closed = piece.concat([[piece[piece.length - 1][0], pole], [piece[0][0], pole]]);
      return [clipRing(closed, 0, true), clipRing(closed, 0, false)]
        .filter(function (half) { return half.length > 2; })
        .map(closeRing);
    }
    return pieces.filter(function (p) { return p.length > 2; }).map(closeRing);
  }

  function cutPolygon(rings) {
    var outer = cutRing(rings[0]);
    // Holes stay with a ring that was not cut; none of the cut ones has any.
    return outer.length === 1 && outer[0] === rings[0] ? [rings] : outer.map(function (r) { return [r]; });
  }

  function splitFeature(feature) {
    var geometry = feature.geometry;
    if (!geometry || (geometry.type !== "Polygon" && geometry.type !== "MultiPolygon")) {
      return [feature];
    }
    var polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    var cut = [];
    polygons.forEach(function (polygon) { cut = cut.concat(cutPolygon(polygon)); });
    var all = [];
    cut.forEach(function (polygon) { all = all.concat(polygon); });
    var sides = lonSpan(all) <= JUMP ? [cut] : [
      cut.filter(function (polygon) { return centre(polygon[0]) < 0; }),
      cut.filter(function (polygon) { return centre(polygon[0]) >= 0; }),
    ];
    return sides.filter(function (side) { return side.length; }).map(function (side) {
      return {
        type: "Feature",
        id: feature.id,
        properties: feature.properties,
        geometry: {type: "MultiPolygon", coordinates: side},
      };
    });
  }

  function centre(ring) {
    var min = Infinity;
    var max = -Infinity;
    ring.forEach(function (point) {
      min = Math.min(min, point[0]);
      max = Math.max(max, point[0]);
    });
    return (min + max) / 2;
  }

  function splitAtAntimeridian(collection) {
    var features = [];
    collection.features.forEach(function (feature) {
      features = features.concat(splitFeature(feature));
    });
    return {type: "FeatureCollection", features: features};
  }

  function shade(fraction) {
    // From a pale to a deep blue as a country's share grows.
    var light = [214, 228, 247];
    var dark = [20, 78, 160];
    var mix = light.map(function (channel, index) {
      return Math.round(channel + (dark[index] - channel) * Math.sqrt(fraction));
    });
    return "rgb(" + mix.join(",") + ")";
  }

  function textOnly(text) {
    // Leaflet puts a string tooltip in as HTML: hand it an element holding
    // the text instead, so a city typed as markup is shown, never run.
    var element = document.createElement("span");
    element.textContent = text;
    return element;
  }

  function ready(elementId, entry) {
    state[elementId] = entry;
    document.getElementById(elementId).dataset.ready = "true";
  }

  function world(elementId, data) {
    var map = baseMap(elementId);
    var byId = {};
    var top = 0;
    data.countries.forEach(function (country) {
      if (country.numeric) {
        byId[country.numeric] = country;
        top = Math.max(top, country.percent);
      }
    });
    var markers = data.points.map(function (point) {
      var marker = L.circleMarker([point.lat, point.lng], {
        radius: 4 + Math.min(10, Math.log2(point.count + 1) * 2),
        color: "#b42318",
        weight: 1,
        fillOpacity: 0.7,
        className: "instance-point",
      });
      marker.bindTooltip(textOnly((point.city || "") + " (" + point.count + ")"));
      return marker.addTo(map);
    });
    loadCountries(data.topology).then(function (geo) {
      var shadedIds = {};
      var layer = L.geoJSON(geo, {
        style: function (feature) {
          var country = byId[feature.id];
          if (country) { shadedIds[feature.id] = true; }
          return {
            color: colour("--map-border", "#8a94a6"),
            weight: 0.5,
            fillOpacity: 1,
            fillColor: country ? shade(country.percent / (top || 1)) : colour("--map-land", "#eef1f5"),
          };
        },
        onEachFeature: function (feature, featureLayer) {
          var country = byId[feature.id];
          var text = (data.names && data.names[feature.id]) || feature.properties.name;
          if (country) { text += ": " + country.count + " (" + country.percent + " %)"; }
          featureLayer.bindTooltip(textOnly(text));
        },
      }).addTo(map);
      layer.bringToBack();
      ready(elementId, {
        map: map, countries: layer, markers: markers, shaded: Object.keys(shadedIds).length,
      });
    });
  }

  function instance(elementId, data) {
    L.Icon.Default.imagePath = data.icons;
    var map = baseMap(elementId);
    var marker = null;
    if (data.point) {
      marker = L.marker([data.point.lat, data.point.lng], {title: data.point.label || ""});
      marker.addTo(map);
      map.setView([data.point.lat, data.point.lng], 4);
    }
    loadCountries(data.topology).then(function (geo) {
      var layer = L.geoJSON(geo, {
        style: {
          color: colour("--map-border", "#8a94a6"),
          weight: 0.5,
          fillColor: colour("--map-land", "#eef1f5"),
          fillOpacity: 1,
        },
      }).addTo(map);
      layer.bringToBack();
      ready(elementId, {map: map, countries: layer, markers: marker ? [marker] : []});
    });
  }

  window.trackerMap = {
    world: world, instance: instance, state: state, splitAtAntimeridian: splitAtAntimeridian,
  };

  // An instance's page carries its map's data in a JSON block.
  var instanceData = document.getElementById("map-data");
  if (instanceData && document.getElementById("instance-map")) {
    instance("instance-map", JSON.parse(instanceData.textContent));
  }
})();
