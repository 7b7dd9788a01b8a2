/* Assay detection site: copy buttons, search and filters. Plain JavaScript, no dependencies, no network:
   everything it needs is already in the page (data-* attributes), so it works from file:// as well. */
(function () {
  "use strict";

  /* Copy buttons ------------------------------------------------------------------------------------------ */

  function copyWithSelection(text) {
    // Fallback for pages opened from file:// or plain http, where navigator.clipboard may be unavailable.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.top = "-1000px";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    document.body.removeChild(area);
    return copied;
  }

  function showState(button, state, label) {
    var original = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", original);
    button.classList.remove("copied", "copy-failed");
    button.classList.add(state);
    button.textContent = label;
    button.setAttribute("data-state", state);
    window.setTimeout(function () {
      button.classList.remove(state);
      button.textContent = original;
      button.removeAttribute("data-state");
    }, 2500);
  }

  function onCopy(event) {
    var button = event.currentTarget;
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) {
      return;
    }
    var text = source.textContent;
    var done = function () { showState(button, "copied", "Copied"); };
    var failed = function () {
      if (copyWithSelection(text)) {
        done();
      } else {
        showState(button, "copy-failed", "Press Ctrl+C");
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, failed);
    } else {
      failed();
    }
  }

  /* Search and filters (index and platform pages) --------------------------------------------------------- */

  function normalise(text) {
    return (text || "").toLowerCase();
  }

  function matches(element, query, filters) {
    for (var name in filters) {
      if (Object.prototype.hasOwnProperty.call(filters, name) && filters[name]) {
        var values = (element.getAttribute("data-" + name) || "").split(" ");
        if (values.indexOf(filters[name]) < 0) {
          return false;
        }
      }
    }
    if (!query) {
      return true;
    }
    var haystack = normalise(element.getAttribute("data-search"));
    var terms = query.split(/\s+/);
    for (var i = 0; i < terms.length; i++) {
      if (terms[i] && haystack.indexOf(terms[i]) < 0) {
        return false;
      }
    }
    return true;
  }

  function applyFilters() {
    var search = document.getElementById("search");
    var query = search ? normalise(search.value).trim() : "";
    var filters = {};
    var selects = document.querySelectorAll("select[data-filter]");
    for (var i = 0; i < selects.length; i++) {
      filters[selects[i].getAttribute("data-filter")] = selects[i].value;
    }
    var shown = 0;
    var visibleIds = {};
    var rows = document.querySelectorAll("[data-detection-row]");
    for (var r = 0; r < rows.length; r++) {
      var visible = matches(rows[r], query, filters);
      rows[r].hidden = !visible;
      if (visible) {
        shown += 1;
        visibleIds[rows[r].getAttribute("data-detection-row")] = true;
      }
    }
    // Matrix cells: a cell stays bright while any of its detections is visible.
    var cells = document.querySelectorAll(".technique[data-detections]");
    var filtering = Boolean(query) || Object.keys(filters).some(function (key) { return filters[key]; });
    for (var c = 0; c < cells.length; c++) {
      var ids = cells[c].getAttribute("data-detections").split(" ").filter(Boolean);
      var keep = !filtering || ids.some(function (id) { return visibleIds[id]; });
      cells[c].classList.toggle("filtered-out", !keep);
    }
    var counter = document.getElementById("result-count");
    if (counter) {
      counter.textContent = shown + " of " + rows.length + " detection" + (rows.length === 1 ? "" : "s");
    }
    var empty = document.getElementById("no-results");
    if (empty) {
      empty.hidden = shown !== 0;
    }
  }

  function readQueryString() {
    // ?q=cmstp&severity=high pre-fills the filters, so a filtered view can be linked.
    var params = new URLSearchParams(window.location.search);
    var search = document.getElementById("search");
    if (search && params.get("q")) {
      search.value = params.get("q");
    }
    var selects = document.querySelectorAll("select[data-filter]");
    for (var i = 0; i < selects.length; i++) {
      var value = params.get(selects[i].getAttribute("data-filter"));
      if (value) {
        selects[i].value = value;
      }
    }
  }

  /* Collapsed scenarios: a link to #scenario-… (or a page opened with one) opens the test it points at. */

  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var target = id ? document.getElementById(id) : null;
    var details = target ? target.querySelector("details") : null;
    if (details && !details.open) {
      details.open = true;
      target.scrollIntoView();
    }
  }

  function init() {
    openTarget();
    window.addEventListener("hashchange", openTarget);
    var buttons = document.querySelectorAll("button[data-copy-target]");
    for (var b = 0; b < buttons.length; b++) {
      buttons[b].hidden = false;
      buttons[b].addEventListener("click", onCopy);
    }
    var search = document.getElementById("search");
    var selects = document.querySelectorAll("select[data-filter]");
    var forms = document.querySelectorAll("form.filters");
    for (var f = 0; f < forms.length; f++) {
      // Filtering is live; pressing Enter must not reload the page.
      forms[f].addEventListener("submit", function (event) { event.preventDefault(); });
    }
    if (search || selects.length) {
      readQueryString();
      if (search) {
        search.addEventListener("input", applyFilters);
      }
      for (var s = 0; s < selects.length; s++) {
        selects[s].addEventListener("change", applyFilters);
      }
      applyFilters();
    }
    var coveredOnly = document.getElementById("covered-only");
    var matrix = document.querySelector(".matrix");
    if (coveredOnly && matrix) {
      var sync = function () { matrix.classList.toggle("covered-only", coveredOnly.checked); };
      coveredOnly.addEventListener("change", sync);
      sync();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
