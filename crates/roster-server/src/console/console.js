// Roster console: the few things that need a script. Everything else works without it.
"use strict";

// A type selector changes the form at once (without a script, its button does).
document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});

// A running run's page: poll its progress and reload once it has finished.
document.querySelectorAll("[data-run-progress]").forEach(function (box) {
  var url = box.getAttribute("data-run-progress");
  function set(id, text) {
    var el = document.getElementById(id);
    if (el && text !== null && text !== undefined) { el.textContent = text; }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) {
        set("run-status", p.status);
        set("run-entries", String(p.entries_read));
        set("run-phase", p.phase);
        box.textContent = p.running
          ? "Running: " + (p.phase || "starting") + ", " + p.entries_read + " entries read so far…"
          : "Finished.";
        if (p.running) { setTimeout(poll, 700); } else { window.location.reload(); }
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
});
