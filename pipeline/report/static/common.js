/* Shared by the review pages. */
window.callpipe = (function () {
  "use strict";
  // The same words as pipeline/report/search.py files them under: Han characters one by
  // one (Chinese has no spaces), other words as runs of letters, digits and underscores.
  const TOKEN = /[\u3400-\u9fff]|(?:(?![\u3400-\u9fff])[\p{L}\p{N}_])+/gu;

  function tokens(text) {
    return text.toLowerCase().match(TOKEN) || [];
  }

  // Words worth looking up: a single letter would match half the calls.
  function queryWords(text) {
    return tokens(text).filter((w) => Array.from(w).length > 1 || /[\u3400-\u9fff]/.test(w));
  }

  function clock(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
  }

  return { TOKEN, tokens, queryWords, clock };
})();
