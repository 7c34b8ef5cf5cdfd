/* The statistics page: its world map and charts from the page's JSON block. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("stats-data").textContent);
  trackerMap.world("world-map", data);
  trackerCharts.draw(data);
})();
