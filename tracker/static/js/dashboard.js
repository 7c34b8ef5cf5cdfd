/* Small behaviours of the dashboard pages: progress of background jobs,
   showing and hiding crawled columns. */
(function () {
  "use strict";

  function followProgress(box) {
    var bar = box.querySelector("progress");
    var counts = box.querySelector(".progress-counts");
    var label = box.querySelector(".progress-label");
    function poll() {
      fetch(box.dataset.url, {credentials: "same-origin"})
        .then(function (response) { return response.json(); })
        .then(function (operation) {
          var progress = operation.progress;
          var processed = progress.done + progress.failed + progress.skipped;
          bar.max = Math.max(progress.total, 1);
          bar.value = processed;
          counts.textContent = processed + " / " + progress.total;
          box.dataset.status = operation.status;
          document.dispatchEvent(new CustomEvent("crawl-progress"));
          if (operation.status === "finished") {
            box.dataset.result = operation.result;
            var labels = JSON.parse(box.dataset.resultLabels || "{}");
            label.textContent = labels[operation.result] || operation.result;
            return;
          }
          window.setTimeout(poll, 1000);
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    poll();
  }

  function columnToggles() {
    var key = "tracker.hiddenColumns";
    var hidden = JSON.parse(window.localStorage.getItem(key) || "[]");
    function apply() {
      document.querySelectorAll("table [data-column]").forEach(function (cell) {
        cell.hidden = hidden.indexOf(cell.dataset.column) !== -1;
      });
    }
    document.querySelectorAll("input[data-column]").forEach(function (box) {
      box.checked = hidden.indexOf(box.dataset.column) === -1;
      box.addEventListener("change", function () {
        hidden = hidden.filter(function (name) { return name !== box.dataset.column; });
        if (!box.checked) { hidden.push(box.dataset.column); }
        window.localStorage.setItem(key, JSON.stringify(hidden));
        apply();
      });
    });
    apply();
  }

  // Bulk actions: a header box ticks every row; deleting asks first.
  document.querySelectorAll("input.select-all").forEach(function (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=number][form=bulk-form]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });
  var bulk = document.getElementById("bulk-form");
  if (bulk) {
    bulk.addEventListener("submit", function (event) {
      if (bulk.elements.action.value === "delete" &&
          !window.confirm(bulk.dataset.confirmDelete)) {
        event.preventDefault();
      }
    });
  }
  var progress = document.getElementById("operation-progress");
  if (progress) { followProgress(progress); }
  columnToggles();
})();
