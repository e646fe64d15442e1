/* keydesk escalations inbox: an optional sound when a new step arrives (off by default, remembered in
   this browser).  Everything else on the page works without this file; htmx's SSE extension swaps. */
(function () {
  "use strict";
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
