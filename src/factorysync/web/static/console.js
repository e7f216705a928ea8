// factorysync console: live refresh of the sources list, inline results for probe
// buttons and source actions, and one more mapping row. Everything works without it.
(function () {
  "use strict";

  function replaceFrom(url, init, selector, target) {
    return fetch(url, Object.assign({ credentials: "same-origin" }, init)).then(function (r) {
      if (r.status === 401) { window.location.reload(); return; }
      return r.text().then(function (html) {
        if (!selector) { target.innerHTML = html; return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var found = doc.querySelector(selector);
        target.innerHTML = found ? found.innerHTML : html;
      });
    });
  }

  // Sources list: refresh the rows every few seconds, keeping the filters.
  var rows = document.getElementById("source-rows");
  if (rows && rows.dataset.live) {
    var every = parseFloat(document.body.dataset.refreshS || "10") * 1000;
    setInterval(function () {
      if (document.hidden) { return; }
      fetch(rows.dataset.live, { credentials: "same-origin", headers: { "X-Fragment": "rows" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { rows.innerHTML = html; } })
        .catch(function () {});
    }, every);
  }

  // A source page with a run in progress reloads itself until the run ends.
  var head = document.getElementById("source-head");
  if (head && head.dataset.running) {
    setTimeout(function () { window.location.replace(window.location.pathname); }, 1500);
  }

  // Test / Discover on a source page: the answer appears inline.
  document.querySelectorAll("form[data-inline]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var target = document.querySelector(form.dataset.inline);
      target.innerHTML = "<p class='muted'>…</p>";
      replaceFrom(form.action, { method: "POST", body: new FormData(form), headers: { "X-Fragment": "probe" } }, null, target);
    });
  });

  // Add/edit form: Test, Discover and Preview show their result right under the buttons
  // (scrolled into view); Discover fills the target table, key and fields where empty;
  // an OPC UA browse listing's ticked variables go into the nodes input.
  var sourceForm = document.getElementById("source-form");
  if (sourceForm) {
    var named = function (name) { return sourceForm.querySelector("[name='" + name + "']"); };
    var clearStale = function () {
      var banner = document.getElementById("form-errors");
      if (banner) { banner.remove(); }
      sourceForm.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
      sourceForm.querySelectorAll("label.invalid").forEach(function (el) { el.classList.remove("invalid"); });
    };
    var addRow = function () {
      var body = document.querySelector("#mapping-rows tbody");
      var last = body.lastElementChild;
      var n = body.children.length;
      var copy = last.cloneNode(true);
      copy.querySelectorAll("input, select").forEach(function (el) {
        el.name = el.name.replace(/\.\d+$/, "." + n);
        if (el.tagName === "SELECT") { el.selectedIndex = 0; } else { el.value = ""; }
      });
      body.appendChild(copy);
    };
    var fillEmpty = function (name, value) {
      var input = named(name);
      if (input && !input.value && value) { input.value = value; }
    };
    var fillFromDiscovery = function (target) {
      var found = target.querySelector(".discovered");
      if (!found) { return; }
      var table = found.dataset.targetTable;
      fillEmpty("target_table", table);
      if (table && !sourceForm.dataset.editing) { fillEmpty("source_id", table.replace(/_/g, "-")); }
      if (table) { fillEmpty("name", table.charAt(0).toUpperCase() + table.slice(1).replace(/_/g, " ")); }
      fillEmpty("primary_key", found.dataset.key);
      var cols = sourceForm.querySelectorAll("input[name^='f.col.']");
      for (var i = 0; i < cols.length; i++) { if (cols[i].value) { return; } }
      target.querySelectorAll("tr[data-col]").forEach(function (tr, n) {
        if (!named("f.col." + n)) { addRow(); }
        named("f.col." + n).value = tr.dataset.col;
        named("f.from." + n).value = tr.dataset.from || "";
        named("f.type." + n).value = tr.dataset.type || "";
      });
    };
    var useNodes = function (ev) {
      ev.preventDefault();
      var nodes = [];
      sourceForm.querySelectorAll("input[name=pick]:checked").forEach(function (box) {
        nodes.push(JSON.parse(box.value));
      });
      var input = named("cfg.nodes");
      if (input) { input.value = JSON.stringify(nodes, null, 2); input.scrollIntoView({ block: "center" }); }
    };
    var show = function (target) {
      target.scrollIntoView({ block: "nearest" });
      var top = target.getBoundingClientRect().top;
      if (top < 0 || top > window.innerHeight - 40) { target.scrollIntoView({ block: "start" }); }
    };
    sourceForm.querySelectorAll("button[data-probe]").forEach(function (button) {
      button.addEventListener("click", function (ev) {
        ev.preventDefault();
        var data = new FormData(sourceForm);
        data.set("intent", button.value);
        var target = document.getElementById("probe-result");
        target.innerHTML = "<p class='muted'>…</p>";
        show(target);
        fetch(sourceForm.action, { method: "POST", body: data, credentials: "same-origin", headers: { "X-Fragment": "probe" } })
          .then(function (r) {
            if (r.status === 401) { window.location.reload(); return; }
            return r.text().then(function (html) {
              if (r.status === 422) {  // invalid form: show the whole page with the problems
                document.open(); document.write(html); document.close(); return;
              }
              clearStale();
              target.innerHTML = html;
              var fields = target.querySelectorAll("tr[data-field]");
              if (fields.length) {
                var list = document.getElementById("discovered-fields") || document.createElement("datalist");
                list.id = "discovered-fields"; list.innerHTML = "";
                fields.forEach(function (tr) { var o = document.createElement("option"); o.value = tr.dataset.field; list.appendChild(o); });
                document.body.appendChild(list);
              }
              fillFromDiscovery(target);
              var use = document.getElementById("use-nodes");
              if (use) { use.addEventListener("click", useNodes); }
              show(target);
            });
          });
      });
    });
    var add = document.getElementById("add-row");
    if (add) { add.addEventListener("click", addRow); }
    var served = document.getElementById("use-nodes");
    if (served) { served.addEventListener("click", useNodes); }
  }
})();
