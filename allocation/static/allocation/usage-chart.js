/* An allocation pool's usage over time, drawn with Chart.js from the page's JSON. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("usage-data").textContent);
  var canvas = document.getElementById("usage-chart");
  var datasets = [{
    type: "bar",
    label: "Daily (" + data.units + ")",
    data: data.daily,
    backgroundColor: "#1f6feb",
  }];
  if (data.cumulative) {
    datasets.push({
      type: "line",
      label: "Cumulative",
      data: data.cumulative,
      borderColor: "#d4a72c",
      tension: 0.2,
    });
  }
  datasets.push({
    type: "line",
    label: "Allocated",
    data: data.labels.map(function () { return data.allocated; }),
    borderColor: "#cf222e",
    borderDash: [6, 4],
    pointRadius: 0,
  });
  new Chart(canvas, {
    data: {labels: data.labels, datasets: datasets},
    options: {animation: false, responsive: true, scales: {y: {beginAtZero: true}}},
  });
  canvas.dataset.ready = "true";
})();
