// factorysync data browser: live mode. Paging, sorting, filtering and export are plain
// links and a GET form; this only follows the table's changes while "live" is on
// (the page's address holds view-live=1). Each change event from /data/{table}/events
// re-reads this page (same filters and order) and swaps in its rows, marking new ones.
(function () {
  "use strict";

  var grid = document.getElementById("data-grid");
  if (!grid || !grid.dataset.live || !window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var pending = null;
  var busy = false;

  function show(name) {
    state.hidden = false;
    state.dataset.state = name;
    state.textContent = state.dataset["label" + name.charAt(0).toUpperCase() + name.slice(1)] || name;
  }

  function swap(id, doc) {
    var fresh = doc.getElementById(id);
    var old = document.getElementById(id);
    if (fresh && old) { old.innerHTML = fresh.innerHTML; }
  }

  function reload() {
    if (busy) { pending = pending || setTimeout(function () { pending = null; reload(); }, 300); return; }
    busy = true;
    var before = {};
    document.querySelectorAll("#data-rows tr[data-key]").forEach(function (tr) { before[tr.dataset.key] = true; });
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Fragment": "rows" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        swap("data-rows", doc);
        swap("data-range", doc);
        swap("data-pager", doc);
        var marked = 0;
        document.querySelectorAll("#data-rows tr[data-key]").forEach(function (tr) {
          if (!before[tr.dataset.key]) { tr.classList.add("fresh"); marked += 1; }
        });
        grid.dataset.updates = String(parseInt(grid.dataset.updates || "0", 10) + 1);
        grid.dataset.fresh = String(marked);
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }

  show("connecting");
  var source = new EventSource(grid.dataset.events);
  source.addEventListener("ready", function () { show("on"); });
  source.addEventListener("change", function () { show("on"); reload(); });
  source.addEventListener("error", function () { show("off"); });
  // The session ended (logged out, expired): the server closed the stream for good.
  source.addEventListener("end", function () { source.close(); show("off"); });
  window.addEventListener("pagehide", function () { source.close(); });
})();
