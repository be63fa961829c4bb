// Roster console: the few things that need a script. Everything else works without it.
"use strict";

// A type selector changes the form at once when a type is chosen with the mouse (without a script, its
// button does). From the keyboard, arrows only move through the types (a change of context on each
// arrow would make the later ones unreachable): Enter, or the button, shows the chosen type's form.
document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  var byKeyboard = false;
  select.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault();
      select.form.submit();
    } else {
      byKeyboard = true;
    }
  });
  select.addEventListener("change", function () {
    if (!byKeyboard) { select.form.submit(); }
    byKeyboard = false;
  });
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
