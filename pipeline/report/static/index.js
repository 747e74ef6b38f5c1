/* Calls index: sorting, a filter per column, transcript search and paging, all in the browser.
   Rows come from data/calls.js; the search index from search/<hex>.js files, loaded only for
   the words searched. Values go into the page as text, never as markup. The view (sort,
   filters, search, page) is kept in the address's #fragment so a filtered list can be shared. */
(function () {
  "use strict";
  const data = window.CALLPIPE_CALLS || { columns: [], rows: [], flags: {} };
  const columns = data.columns;
  const rows = data.rows; // [page, value of column 0, value of column 1, ...]
  const NONE = "(none)", ANY = "(any flag)", NO_FLAGS = "(no flags)";
  const $ = (id) => document.getElementById(id);
  const table = $("calls"), status = $("status"), query = $("q"), size = $("size");
  const DEFAULTS = { sort: "date", dir: "desc", page: 1, size: 50 };
  const state = { ...DEFAULTS, q: "", filters: {} };
  let matches = null; // row numbers whose transcript has every searched word; null: no search
  let searchRun = 0;

  const value = (row, i) => row[i + 1];
  const numeric = (col) => ["duration", "score", "signed"].includes(col.kind);
  const el = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  };

  // --- cells ---------------------------------------------------------------------------------

  function cell(col, v, row) {
    const td = el("td", { className: numeric(col) ? `num ${col.key}` : col.key });
    if (col.key === "call_id") {
      const href = row[0] + (state.q ? `?q=${encodeURIComponent(state.q)}` : "");
      td.append(el("a", { href, textContent: v }));
    } else if (col.kind === "flags") {
      v.forEach((f) => td.append(el("span", { className: `flag flag-${f}`, textContent: data.flags[f] || f }), " "));
    } else if (v === null || v === undefined) {
      td.textContent = "—";
    } else if (col.kind === "duration") {
      td.textContent = callpipe.clock(v);
    } else if (col.kind === "score") {
      td.textContent = v.toFixed(1);
    } else if (col.kind === "signed") {
      td.textContent = (v > 0 ? "+" : "") + v.toFixed(2);
      td.classList.add(v > 0.05 ? "pos" : v < -0.05 ? "neg" : "flat");
    } else if (col.key === "issue_state") {
      td.append(el("span", { className: `state state-${v}`, textContent: String(v).replace(/_/g, " ") }));
    } else {
      td.textContent = col.kind === "enum" ? String(v).replace(/_/g, " ") : String(v);
    }
    return td;
  }

  // --- head: sort buttons and one filter control per column ------------------------------------

  function control(tag, filterKey, label, props = {}) {
    const node = el(tag, { ...props, title: label });
    node.setAttribute("aria-label", label);
    node.dataset.filter = filterKey;
    node.value = state.filters[filterKey] || "";
    return node;
  }

  function filterCell(col, i) {
    const th = el("th", { scope: "col" });
    const label = col.label.toLowerCase();
    if (col.kind === "text") {
      th.append(control("input", col.key, `Filter ${label}: contains`, { type: "search", placeholder: "contains" }));
    } else if (col.kind === "enum" || col.kind === "flags") {
      const options = col.kind === "enum"
        ? [...new Set(rows.map((r) => value(r, i) ?? NONE))].sort().map((v) => [v, String(v).replace(/_/g, " ")])
        : [[ANY, "any flag"], [NO_FLAGS, "no flags"], ...Object.entries(data.flags)];
      const select = el("select", {}, el("option", { value: "", textContent: "all" }),
        ...options.map(([v, text]) => el("option", { value: v, textContent: text })));
      select.setAttribute("aria-label", `Filter ${label}`);
      select.dataset.filter = col.key;
      select.value = state.filters[col.key] || "";
      th.append(select);
    } else {
      const type = col.kind === "date" ? "date" : "number";
      const unit = col.kind === "duration" ? " (minutes)" : "";
      th.append(el("div", { className: "range" },
        control("input", `${col.key}.min`, `${col.label} from${unit}`, { type, step: "any", placeholder: col.kind === "duration" ? "≥ min" : "≥" }),
        control("input", `${col.key}.max`, `${col.label} to${unit}`, { type, step: "any", placeholder: col.kind === "duration" ? "≤ min" : "≤" })));
    }
    return th;
  }

  function buildHead() {
    const titles = el("tr"), filters = el("tr", { className: "filters" });
    columns.forEach((col, i) => {
      // The arrow is drawn by CSS from aria-sort, hidden from screen readers (they read aria-sort).
      const button = el("button", { type: "button", className: "sort" }, col.label, el("span", { className: "arrow" }));
      button.lastChild.setAttribute("aria-hidden", "true");
      button.addEventListener("click", () => {
        state.dir = state.sort === col.key && state.dir === "asc" ? "desc" : "asc";
        state.sort = col.key;
        state.page = 1;
        update();
      });
      titles.append(el("th", { scope: "col", className: numeric(col) ? "num" : "" }, button));
      filters.append(filterCell(col, i));
    });
    table.tHead.replaceChildren(titles, filters);
    filters.addEventListener("input", (event) => {
      const key = event.target.dataset.filter;
      if (!key) return;
      if (event.target.value) state.filters[key] = event.target.value; else delete state.filters[key];
      state.page = 1;
      update();
    });
  }

  // --- which rows, in which order --------------------------------------------------------------

  function passes(row) {
    const f = state.filters;
    for (let i = 0; i < columns.length; i++) {
      const col = columns[i], v = value(row, i);
      if (col.kind === "text") {
        const want = f[col.key];
        if (want && !(v !== null && String(v).toLowerCase().includes(want.toLowerCase()))) return false;
      } else if (col.kind === "enum") {
        const want = f[col.key];
        if (want && (v ?? NONE) !== want) return false;
      } else if (col.kind === "flags") {
        const want = f[col.key];
        if (want === ANY ? !v.length : want === NO_FLAGS ? v.length : want && !v.includes(want)) return false;
      } else {
        const min = f[`${col.key}.min`], max = f[`${col.key}.max`];
        if (!min && !max) continue;
        if (v === null || v === undefined) return false;
        // Dates compare as text (YYYY-MM-DD); durations are filtered in minutes.
        const x = col.kind === "date" ? v.slice(0, 10) : col.kind === "duration" ? v / 60 : v;
        const lo = col.kind === "date" ? min : parseFloat(min), hi = col.kind === "date" ? max : parseFloat(max);
        if (min && x < lo) return false;
        if (max && x > hi) return false;
      }
    }
    return true;
  }

  function compare(a, b) {
    // Missing values go last whichever way the column is sorted.
    if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
    if (b === null || b === undefined) return -1;
    if (Array.isArray(a)) return a.length - b.length;
    if (typeof a === "number") return a - b;
    return String(a).localeCompare(String(b));
  }

  function selected() {
    const i = columns.findIndex((c) => c.key === state.sort);
    const sign = state.dir === "asc" ? 1 : -1;
    const kept = [];
    rows.forEach((row, n) => { if ((matches === null || matches.has(n)) && passes(row)) kept.push(row); });
    if (i >= 0) {
      kept.sort((ra, rb) => {
        const a = value(ra, i), b = value(rb, i);
        if (a === null || a === undefined || b === null || b === undefined) return compare(a, b);
        return sign * compare(a, b) || compare(ra[1], rb[1]);
      });
    }
    return kept;
  }

  // --- transcript search -----------------------------------------------------------------------

  const shards = new Map();
  function shard(key) {
    if (!shards.has(key)) {
      const hex = Array.from(new TextEncoder().encode(key), (b) => b.toString(16).padStart(2, "0")).join("");
      shards.set(key, new Promise((resolve) => {
        const script = el("script", { src: `search/${hex}.js` });
        // No file: no call has a word starting with these letters.
        script.onload = script.onerror = () => resolve((window.CALLPIPE_SEARCH || {})[key] || {});
        document.head.append(script);
      }));
    }
    return shards.get(key);
  }

  async function search(text) {
    const words = callpipe.queryWords(text);
    if (!words.length) return null;
    let found = null;
    for (const word of words) {
      const index = await shard(Array.from(word).slice(0, 2).join(""));
      const hits = new Set();
      for (const [w, list] of Object.entries(index)) if (w.startsWith(word)) list.forEach((n) => hits.add(n));
      found = found === null ? hits : new Set([...found].filter((n) => hits.has(n)));
    }
    return found;
  }

  // --- drawing ---------------------------------------------------------------------------------

  function render() {
    const kept = selected();
    const per = state.size, pages = Math.max(1, Math.ceil(kept.length / per));
    state.page = Math.min(Math.max(1, state.page), pages);
    const shown = kept.slice((state.page - 1) * per, state.page * per);
    const body = table.tBodies[0];
    if (shown.length) {
      body.replaceChildren(...shown.map((row) => el("tr", {}, ...columns.map((col, i) => cell(col, value(row, i), row)))));
    } else {
      body.replaceChildren(el("tr", {}, el("td", { colSpan: columns.length, textContent: rows.length ? "No calls match." : "No calls processed yet." })));
    }
    table.tHead.rows[0].querySelectorAll("th").forEach((th, i) => {
      if (columns[i].key === state.sort) th.setAttribute("aria-sort", state.dir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
    const from = kept.length ? (state.page - 1) * per + 1 : 0;
    status.textContent = `${kept.length.toLocaleString()} of ${rows.length.toLocaleString()} calls` +
      (state.q ? ` whose transcript has “${state.q}”` : "") + (kept.length ? `, showing ${from}–${from + shown.length - 1}` : "");
    $("pageinfo").textContent = `Page ${state.page} of ${pages}`;
    $("prev").disabled = state.page <= 1;
    $("next").disabled = state.page >= pages;
    saveView();
  }

  async function update() {
    const run = ++searchRun;
    const found = await search(state.q);
    if (run !== searchRun) return; // a newer search started while this one loaded
    matches = found;
    render();
  }

  // --- the view in the address -------------------------------------------------------------

  function saveView() {
    const p = new URLSearchParams();
    for (const key of ["sort", "dir", "page", "size"]) if (state[key] !== DEFAULTS[key]) p.set(key, state[key]);
    if (state.q) p.set("q", state.q);
    for (const [k, v] of Object.entries(state.filters)) p.set(k, v);
    history.replaceState(null, "", p.toString() ? `#${p}` : location.pathname + location.search);
  }

  function loadView() {
    const p = new URLSearchParams(location.hash.slice(1));
    for (const [k, v] of p) {
      if (k === "page" || k === "size") state[k] = parseInt(v, 10) || DEFAULTS[k];
      else if (k === "sort" || k === "dir" || k === "q") state[k] = v;
      else state.filters[k] = v;
    }
    query.value = state.q;
    size.value = String(state.size);
  }

  loadView();
  buildHead();
  query.addEventListener("input", () => { state.q = query.value.trim(); state.page = 1; update(); });
  size.addEventListener("change", () => { state.size = parseInt(size.value, 10); state.page = 1; render(); });
  $("prev").addEventListener("click", () => { state.page -= 1; render(); });
  $("next").addEventListener("click", () => { state.page += 1; render(); });
  $("clear").addEventListener("click", () => {
    state.filters = {};
    state.q = query.value = "";
    state.page = 1;
    buildHead();
    update();
  });
  update();
})();
