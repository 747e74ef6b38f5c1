/* Call page: a click on a turn (or its ▶ button, or an event on the timeline) plays the call
   from there; the turn being played is highlighted and the timeline's playhead follows.
   Words searched for on the calls index are marked in the transcript. */
(function () {
  "use strict";
  const player = document.getElementById("player"); // none for a text transcript
  const transcript = document.getElementById("transcript");
  const turns = Array.from(transcript.querySelectorAll(".turn"));
  const timeline = document.getElementById("timeline");

  function followAudio() {
    const playhead = timeline && timeline.querySelector(".playhead");
    const duration = timeline ? parseFloat(timeline.dataset.duration) : 0;
    let playing = [];

    // Turns overlap when both speak at once: all that cover the time are highlighted, and in
    // a pause the last one that started stays highlighted.
    function turnsAt(t) {
      const covering = turns.filter((turn) => +turn.dataset.start <= t && t < +turn.dataset.end);
      if (covering.length) return covering;
      const started = turns.filter((turn) => +turn.dataset.start <= t);
      return started.length ? [started[started.length - 1]] : [];
    }

    function show(t) {
      const now = turnsAt(t);
      if (now.length !== playing.length || now.some((turn, i) => turn !== playing[i])) {
        playing.forEach((turn) => { turn.classList.remove("playing"); turn.removeAttribute("aria-current"); });
        now.forEach((turn) => { turn.classList.add("playing"); turn.setAttribute("aria-current", "true"); });
        if (now.length && !player.paused) now[0].scrollIntoView({ block: "nearest", behavior: "smooth" });
        playing = now;
      }
      if (playhead && duration > 0) {
        const share = Math.min(1, Math.max(0, t / duration));
        playhead.style.left = `calc(6rem + ${share} * (100% - 6rem))`;
      }
    }

    function seek(seconds) {
      // Before the audio's metadata is in, the element keeps this as its start position.
      player.currentTime = seconds;
      show(seconds);
      const started = player.play();
      if (started) started.catch(() => {}); // no audio, or the browser refuses: the position is still set
    }

    transcript.addEventListener("click", (event) => {
      if (event.target.closest("details, a")) return; // suggestions open without jumping
      if (String(window.getSelection())) return; // selecting text to copy is not a request to play
      const turn = event.target.closest(".turn");
      if (turn) seek(+turn.dataset.start);
    });
    if (timeline) {
      timeline.addEventListener("click", (event) => {
        const mark = event.target.closest(".ev, .moment");
        if (mark) seek(+mark.dataset.start);
      });
    }
    player.addEventListener("timeupdate", () => show(player.currentTime));
    player.addEventListener("seeked", () => show(player.currentTime));

    // A link to #turn-N opens the call at that turn.
    const linked = /^#turn-\d+$/.test(location.hash) && document.querySelector(location.hash);
    if (linked) {
      player.currentTime = +linked.dataset.start;
      show(+linked.dataset.start);
    }
  }

  function markSearchedWords(words) {
    let first = null;
    for (const p of transcript.querySelectorAll(".text")) {
      const text = p.textContent;
      const parts = [];
      let last = 0;
      for (const m of text.matchAll(callpipe.TOKEN)) {
        if (!words.some((w) => m[0].toLowerCase().startsWith(w))) continue;
        const mark = document.createElement("mark");
        mark.textContent = m[0];
        parts.push(text.slice(last, m.index), mark);
        last = m.index + m[0].length;
        first = first || mark;
      }
      if (parts.length) p.replaceChildren(...parts, text.slice(last));
    }
    if (first && !location.hash) first.scrollIntoView({ block: "center" });
  }

  if (player) followAudio();
  const words = callpipe.queryWords(new URLSearchParams(location.search).get("q") || "");
  if (words.length) markSearchedWords(words);
})();
