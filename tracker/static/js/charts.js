/* Charts of the statistics page, drawn with Chart.js from the page's JSON. */
(function () {
  "use strict";

  var palette = [
    "#1f6feb", "#d4a72c", "#2da44e", "#cf222e", "#8250df", "#bf3989",
    "#0a7ea4", "#fb8f44", "#57606a", "#1b7c83", "#9a6700", "#6639ba",
  ];
  var instances = {};

  function colours(count, type) {
    if (type === "pie") {
      return Array.from({length: count}, function (_, i) { return palette[i % palette.length]; });
    }
    return palette[0];
  }

  function drawOne(canvas, spec, label) {
    var type = spec.type === "pie" ? "pie" : spec.type === "line" ? "line" : "bar";
    var chart = new Chart(canvas, {
      type: type,
      data: {
        labels: spec.labels,
        datasets: [{
          label: label,
          data: spec.values,
          backgroundColor: colours(spec.values.length, type),
          borderColor: type === "line" ? palette[0] : undefined,
          tension: 0.2,
        }],
      },
      options: {
        animation: false,
        responsive: true,
        plugins: {legend: {display: type === "pie"}},
        scales: type === "pie" ? {} : {y: {beginAtZero: true}},
      },
    });
    instances[spec.field] = chart;
    canvas.dataset.ready = "true";
  }

  function draw(data) {
    var byField = {};
    data.charts.forEach(function (spec) { byField[spec.field] = spec; });
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var field = canvas.dataset.chart;
      if (field === "registered") {
        drawOne(canvas, data.registrations, data.labels.registered);
      } else if (byField[field]) {
        drawOne(canvas, byField[field], byField[field].label);
      }
    });
  }

  window.trackerCharts = {draw: draw, instances: instances};
})();
