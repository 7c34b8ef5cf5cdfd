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

  var numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
  var shares = new Intl.NumberFormat(document.documentElement.lang || undefined, {
    minimumFractionDigits: 1, maximumFractionDigits: 1,
  });

  // A pie's legend and tooltips give each slice's count and share in percent.
  function pieOptions(spec) {
    var percents = spec.percents || [];
    function share(index) { return shares.format(percents[index] || 0) + " %"; }
    return {
      legend: {
        display: true,
        labels: {
          generateLabels: function (chart) {
            var items = Chart.overrides.pie.plugins.legend.labels.generateLabels(chart);
            items.forEach(function (item) { item.text += " (" + share(item.index) + ")"; });
            return items;
          },
        },
      },
      tooltip: {
        callbacks: {
          label: function (context) {
            return numbers.format(context.parsed) + " (" + share(context.dataIndex) + ")";
          },
        },
      },
    };
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
        locale: document.documentElement.lang || undefined,
        plugins: type === "pie" ? pieOptions(spec) : {legend: {display: false}},
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
        var spec = byField[field];
        // "Unknown" (no value) in the page's language.
        spec.labels = spec.labels.map(function (text) {
          return text === "Unknown" ? data.labels.unknown : text;
        });
        drawOne(canvas, spec, spec.label);
      }
    });
  }

  window.trackerCharts = {draw: draw, instances: instances};
})();
