// Keeps the instance list's states and the fleet summary current without a
// reload: asks the server for the states of the rows shown, every few seconds.
(function () {
  "use strict";
  var summary = document.getElementById("fleet-summary");
  if (!summary) return;
  var url = summary.getAttribute("data-states-url");
  var cells = Array.prototype.slice.call(document.querySelectorAll("td.state[data-number]"));
  var REFRESH_MS = 15000;

  function badge(state, label) {
    var span = document.createElement("span");
    span.className = "badge state-" + state;
    span.textContent = label;
    return span;
  }

  function updateRow(cell, row) {
    cell.textContent = "";
    cell.setAttribute("data-live", "1");
    cell.appendChild(badge(row.state, row.label));
    if (row.since) {
      var since = document.createElement("span");
      since.className = "since";
      since.textContent = " " + row.since;
      cell.appendChild(since);
    }
    if (row.reason) {
      var reason = document.createElement("span");
      reason.className = "muted reason";
      reason.title = row.reason;
      reason.textContent = " " + (row.reason.length > 60 ? row.reason.slice(0, 57) + "..." : row.reason);
      cell.appendChild(reason);
    }
    var health = cell.parentNode.querySelector(".badge[class*='health-']");
    if (health && row.health) {
      health.className = health.className.replace(/health-\w+/, "health-" + row.health);
      health.textContent = row.health_label;
    }
  }

  function updateCounts(counts) {
    var list = document.getElementById("state-counts");
    if (!list) return;
    counts.forEach(function (entry) {
      var link = list.querySelector("[data-state='" + entry.state + "'] .count");
      if (link) link.textContent = String(entry.count);
    });
  }

  function refresh() {
    var query = cells.map(function (cell) {
      return "number=" + encodeURIComponent(cell.getAttribute("data-number"));
    }).join("&");
    fetch(url + (query ? "?" + query : ""), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        cells.forEach(function (cell) {
          var row = data.rows[cell.getAttribute("data-number")];
          if (row) updateRow(cell, row);
        });
        updateCounts(data.counts);
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }

  window.setInterval(refresh, REFRESH_MS);
  document.addEventListener("crawl-progress", refresh);
})();
