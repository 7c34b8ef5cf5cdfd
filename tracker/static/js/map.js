/* World maps drawn with Leaflet from a GeoJSON country layer: no tile server. */
(function () {
  "use strict";

  var state = {};

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
        return topojson.feature(topology, topology.objects.countries);
      });
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
      var shaded = 0;
      var layer = L.geoJSON(geo, {
        style: function (feature) {
          var country = byId[feature.id];
          if (country) { shaded += 1; }
          return {
            color: "#8a94a6",
            weight: 0.5,
            fillOpacity: 1,
            fillColor: country ? shade(country.percent / (top || 1)) : "#eef1f5",
          };
        },
        onEachFeature: function (feature, featureLayer) {
          var country = byId[feature.id];
          var text = feature.properties.name;
          if (country) { text += ": " + country.count + " (" + country.percent + " %)"; }
          featureLayer.bindTooltip(textOnly(text));
        },
      }).addTo(map);
      layer.bringToBack();
      ready(elementId, {map: map, countries: layer, markers: markers, shaded: shaded});
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
        style: {color: "#8a94a6", weight: 0.5, fillColor: "#eef1f5", fillOpacity: 1},
      }).addTo(map);
      layer.bringToBack();
      ready(elementId, {map: map, countries: layer, markers: marker ? [marker] : []});
    });
  }

  window.trackerMap = {world: world, instance: instance, state: state};

  // An instance's page carries its map's data in a JSON block.
  var instanceData = document.getElementById("map-data");
  if (instanceData && document.getElementById("instance-map")) {
    instance("instance-map", JSON.parse(instanceData.textContent));
  }
})();
