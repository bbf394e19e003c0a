// Live progress of a run: the server pushes events (EventSource, server-sent events) into the
// element with role="status"; when the run ends the page reloads to show results and next steps.
// Text is set with textContent only: nothing from the server is parsed as HTML.
(function () {
  "use strict";
  function item(text) { var li = document.createElement("li"); li.textContent = text; return li; }
  function duration(s) { return s < 120 ? Math.round(s) + " s" : Math.round(s / 60) + " min"; }
  function show(box, p) {
    var summary = (p.running ? "Running" : "Not running") + ": " + p.settled + " of " + p.rows + " rows settled" +
      (p.eta !== null && p.eta !== undefined ? "; about " + duration(p.eta) + " left to send" : "") + ".";
    var parts = [];
    var para = document.createElement("p"); para.className = "summary"; para.textContent = summary; parts.push(para);
    if (p.error) { var e = document.createElement("p"); e.className = "error"; e.textContent = p.error; parts.push(e); }
    var counts = document.createElement("ul"); counts.className = "counts";
    p.lines.forEach(function (l) { counts.appendChild(item(l.rows + " " + l.word + ": " + l.currency + " " + l.amount)); });
    parts.push(counts);
    var recent = document.createElement("ol"); recent.className = "recent"; recent.setAttribute("aria-label", "Recent events");
    p.recent.forEach(function (r) { recent.appendChild(item("row " + r.row + ": " + r.word + (r.detail ? " (" + r.detail + ")" : ""))); });
    parts.push(recent);
    box.replaceChildren.apply(box, parts);
  }
  function start() {
    var box = document.getElementById("progress");
    if (!box || box.dataset.running !== "1" || !window.EventSource) { return; }
    var source = new EventSource(box.dataset.events);
    source.addEventListener("progress", function (ev) { show(box, JSON.parse(ev.data)); });
    source.addEventListener("done", function () { source.close(); window.location.reload(); });
    source.onerror = function () { source.close(); setTimeout(function () { window.location.reload(); }, 2000); };
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
