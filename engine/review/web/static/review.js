// The queue page: keys decide, the next item (prefetched) is swapped in at once, the decision is
// posted behind it. Untrusted text only ever goes through textContent, never innerHTML.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const labelButtons = [...document.querySelectorAll("button[data-label]")];
  const labels = labelButtons.map((b) => b.dataset.label);
  let current = null;       // {item, correcting: {id, label} | null}
  let nextItem = null;      // prefetched, already leased to us
  let prefetching = null;   // promise of the prefetch in flight
  let lastPost = Promise.resolve();
  let resume = [];          // items put aside while correcting an earlier decision
  let undoCursor = null;    // walk back through our decisions with repeated u
  let keyAt = null;
  let decidedHere = 0;
  // For the benchmark: ms from key press to the next item in the DOM, and to the next frame after it;
  // how many times the prefetched item was not there yet and had to be fetched while the reviewer waited.
  window.quarryTimings = [];
  window.quarryDomTimings = [];
  window.quarryPrefetchMisses = 0;

  const fmt = (x) => (x === null || x === undefined ? "unknown" : x.toFixed(2));

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
  }

  async function nextJSON(exclude) {
    const r = await post(`/api/next?exclude=${encodeURIComponent(exclude || "")}`, {});
    if (!r.ok) throw new Error(`/api/next: ${r.status}`);
    return r.json();
  }

  function post(url, body, keepalive = false) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", keepalive,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
  }

  function notice(text) { $("notice").textContent = text; }

  function show(entry) {
    current = entry;
    const card = $("card");
    $("queue").dataset.state = entry ? (entry.correcting ? "correcting" : "item") : "empty";
    $("empty").hidden = !!entry;
    card.hidden = !entry;
    if (entry) {
      const it = entry.item;
      $("item-id").textContent = it.item_id;
      $("round").textContent = it.round;
      $("reason").textContent = it.reason;
      $("text").textContent = it.text;
      $("teacher-label").textContent = it.teacher_label || "(none)";
      $("teacher-confidence").textContent = `confidence ${fmt(it.teacher_confidence)}`;
      $("student-label").textContent = it.student_label || "(none)";
      $("student-confidence").textContent = `confidence ${fmt(it.student_confidence)}`;
      $("raw").textContent = it.teacher_raw || "";
      const list = $("similar");
      list.replaceChildren(...it.similar.map((n) => {
        const li = document.createElement("li");
        const tag = document.createElement("b");
        tag.textContent = `${n.label} (${n.source}, ${n.score.toFixed(2)}) `;
        li.append(tag, document.createTextNode(n.text));
        return li;
      }));
      if (!it.similar.length) list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "none yet" }));
      $("mode").textContent = entry.correcting ? `Correcting your decision (${entry.correcting.label ?? "skip"}); Esc cancels` : "";
      card.dataset.itemId = it.item_id;
    }
    if (window.quarryShow) window.quarryShow(entry);  // a task kind's own fields (review_answers.js)
    if (keyAt !== null) {
      const pressed = keyAt;
      keyAt = null;
      window.quarryDomTimings.push(performance.now() - pressed);
      requestAnimationFrame(() => window.quarryTimings.push(performance.now() - pressed));
    }
  }

  function startPrefetch() {
    if (!current || current.correcting || nextItem || prefetching) return;
    const exclude = current.item.item_id;
    prefetching = lastPost
      .then(() => nextJSON(exclude))
      .then((d) => { if (d.item && d.item.item_id !== exclude) nextItem = d.item; $("pending").textContent = d.pending; })
      .catch(() => {})
      .finally(() => { prefetching = null; });
  }

  function advance(doneId) {
    return nextEntry(doneId).catch((e) => {
      notice(`Could not load the next item (${e.message}); reload the page, or log in again.`);
    });
  }

  async function nextEntry(doneId) {
    if (resume.length) { show({ item: resume.pop(), correcting: null }); startPrefetch(); return; }
    if (prefetching) await prefetching;
    let item = nextItem;
    nextItem = null;
    if (!item) {
      if (doneId) window.quarryPrefetchMisses += 1;
      await lastPost;
      const d = await nextJSON(doneId);
      $("pending").textContent = d.pending;
      item = d.item;
    }
    show(item ? { item, correcting: null } : null);
    startPrefetch();
  }

  function decide(label, how) {
    const entry = current;
    const body = { item_id: entry.item.item_id, label, correct: !!entry.correcting };
    if (how) body.how = how;  // a written answer changed: "edit" or "rewrite"
    // Chained: decisions reach the server in the order they were made (undo relies on it).
    lastPost = lastPost.then(() => post("/api/decide", body)).then(async (r) => {
      const d = await r.json().catch(() => ({}));
      if (r.status === 409) notice(`Not recorded: ${d.conflict}`);
      else if (!r.ok) notice(`Not recorded (${r.status}): ${d.detail || "error"}`);
      else {
        if (!body.correct) decidedHere += 1;
        $("done").textContent = decidedHere;
        $("pending").textContent = d.pending;
        notice(body.correct ? "Corrected." : "");
      }
    }).catch((e) => notice(`Not recorded: ${e}`));
    undoCursor = null;
    advance(entry.item.item_id);
  }

  async function undo() {
    await lastPost.catch(() => {});
    const d = await getJSON(`/api/undo${undoCursor ? `?before=${undoCursor}` : ""}`);
    if (!d.item) { notice("Nothing earlier to correct."); return; }
    if (current && !current.correcting) resume.push(current.item);
    undoCursor = d.decision.id;
    show({ item: d.item, correcting: { id: d.decision.id, label: d.decision.label, diff: d.decision.diff } });
  }

  function onKey(key) {
    if (window.quarryKey && current && window.quarryKey(key, current)) { keyAt = null; return; }
    if (key === "u") { keyAt = null; undo().catch((e) => notice(`Undo failed (${e.message})`)); return; }
    if (!current) { keyAt = null; return; }
    if (key === "Escape" && current.correcting) { undoCursor = null; advance(null); return; }
    if (key === "Enter" || key === "a") {
      if (!current.item.teacher_label) { notice("The teacher gave no label: pick one with 1-9."); keyAt = null; return; }
      decide(current.item.teacher_label);
    } else if (/^[1-9]$/.test(key) && Number(key) <= labels.length) {
      decide(labels[Number(key) - 1]);
    } else if (key === "s") {
      if (current.correcting) { notice("A correction picks a label; Esc cancels."); keyAt = null; return; }
      decide(null);
    } else {
      keyAt = null;
    }
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) return;
    if (e.target instanceof HTMLButtonElement && e.key === "Enter") e.preventDefault();
    keyAt = e.timeStamp;
    onKey(e.key);
  });
  document.querySelectorAll("button[data-key]").forEach((b) =>
    b.addEventListener("click", () => { keyAt = null; onKey(b.dataset.key); }));
  window.addEventListener("pagehide", () => {
    // Each lease is named with its expiry, so a late release cannot drop a lease taken again since.
    const held = [current && !current.correcting ? current.item : null, nextItem, ...resume]
      .filter((i) => i && i.expires_at).map((i) => ({ item_id: i.item_id, expires_at: i.expires_at }));
    if (held.length) post("/api/release", { leases: held }, true);
  });

  window.quarryDecide = (label, how) => { if (current) decide(label, how); };
  window.quarryNotice = notice;
  advance(null);
})();
