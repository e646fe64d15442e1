/* keydesk escalations inbox.  Everything on the page works without this file; htmx's SSE extension
   swaps.  This file adds two things:
   - a table reload answered before a step came live must not erase that step: its rendering was
     computed before the step arrived, so the rows that came over the stream since the reload was asked
     for and that it lacks are put back on top (what a reload computed after them shows anyway);
   - an optional sound when a new step arrives (off by default, remembered in this browser). */
(function () {
  "use strict";
  var table = document.getElementById("inbox-table");
  var cameLive = [];  // {id, html, at}: rows the stream brought, newest last
  var KEPT = 200;

  function rowsOf(html) {
    var holder = document.createElement("tbody");
    holder.innerHTML = html;
    return holder.querySelectorAll("tr[id]");
  }

  document.body.addEventListener("htmx:sseMessage", function (event) {
    if (!table || !event.detail || event.detail.type !== "step") { return; }
    rowsOf(event.detail.data).forEach(function (row) {
      cameLive.push({ id: row.id, html: row.outerHTML, at: Date.now() });
    });
    if (cameLive.length > KEPT) { cameLive.splice(0, cameLive.length - KEPT); }
  });

  if (table) {
    table.addEventListener("htmx:beforeRequest", function (event) {
      if (event.detail.target === table) { event.detail.xhr.keydeskAskedAt = Date.now(); }
    });
    table.addEventListener("htmx:afterSwap", function (event) {
      var asked = event.detail.xhr && event.detail.xhr.keydeskAskedAt;
      var rows = document.getElementById("inbox-rows");
      if (event.detail.target !== table || !asked || !rows) { return; }
      cameLive.forEach(function (live) {
        if (live.at >= asked && !document.getElementById(live.id)) {
          rows.insertAdjacentHTML("afterbegin", live.html);
          htmx.process(rows.firstElementChild);
        }
      });
    });
  }

  var choice = document.getElementById("sound-choice");
  var box = document.getElementById("sound");
  if (!choice || !box) { return; }
  choice.hidden = false;
  box.checked = window.localStorage.getItem("keydesk-sound") === "on";
  box.addEventListener("change", function () {
    window.localStorage.setItem("keydesk-sound", box.checked ? "on" : "off");
  });
  document.body.addEventListener("htmx:sseMessage", function (event) {
    if (!box.checked || !event.detail || event.detail.type !== "step") { return; }
    try {
      var Context = window.AudioContext || window.webkitAudioContext;
      var sound = new Context();
      var tone = sound.createOscillator();
      var volume = sound.createGain();
      tone.frequency.value = 880;
      volume.gain.value = 0.1;
      tone.connect(volume);
      volume.connect(sound.destination);
      tone.start();
      tone.stop(sound.currentTime + 0.3);
    } catch (ignored) { /* no audio here: the visible cue is enough */ }
  });
}());
