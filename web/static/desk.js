// lowdose review desk: draws the Plotly figures (JSON data blocks) and refreshes the queue.
"use strict";

function drawPlots(root) {
  if (typeof Plotly === "undefined") return;
  root.querySelectorAll("script.plot-data").forEach(function (block) {
    var target = document.getElementById(block.dataset.target);
    if (!target || target.dataset.drawn) return;
    var fig = JSON.parse(block.textContent);
    Plotly.newPlot(target, fig.data, fig.layout, { displaylogo: false, responsive: true })
      .then(function () { target.dataset.drawn = "1"; });
  });
}

function liveQueue() {
  var box = document.getElementById("queue-live");
  if (!box) return;
  var busy = false;
  setInterval(function () {
    if (busy || document.hidden) return;
    busy = true;
    fetch(box.dataset.src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (r.ok) return r.text(); throw new Error(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        box.replaceChildren.apply(box, Array.from(doc.body.childNodes));
        box.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* the next tick tries again */ })
      .finally(function () { busy = false; });
  }, 5000);
}

document.addEventListener("DOMContentLoaded", function () {
  drawPlots(document);
  liveQueue();
});
