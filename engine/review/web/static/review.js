// The queue page: keys decide, the next item (prefetched) is swapped in at once, the decision is
// posted behind it. Leases are renewed while the page is open; a prefetched item whose lease lapsed is
// dropped; when the session has ended the decisions not yet recorded are kept (sessionStorage) and sent
// again after logging in; an empty queue is polled for new items. Untrusted text only ever goes through
// textContent, never innerHTML, and invisible direction-changing characters are shown as marked codes.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const queueBox = $("queue");
  const leaseMs = Number(queueBox.dataset.leaseS) * 1000;
  const pollMs = Number(queueBox.dataset.pollS) * 1000;
  const labelButtons = [...document.querySelectorAll("button[data-label]")];
  const labels = labelButtons.map((b) => b.dataset.label);
  const UNSENT = "quarry-unsent-decisions";
  const CONTROL = /[\u061C\u200B-\u200F\u202A-\u202E\u2060-\u2069\uFEFF]/g;
  let current = null;       // {item, correcting: {id, label} | null}
  let nextItem = null;      // prefetched, already leased to us
  let prefetching = null;   // promise of the prefetch in flight
  let lastPost = Promise.resolve();
  let resume = [];          // items put aside while correcting an earlier decision
  let undoCursor = null;    // walk back through our decisions with repeated u
  let keyAt = null;
  let decidedHere = 0;
  let leaving = false;      // on the way to the login page: nothing more is sent
  let pollTimer = null;
  // For the benchmark: ms from key press to the next item in the DOM, and to the next frame after it;
  // how many times the prefetched item was not there yet and had to be fetched while the reviewer waited.
  window.quarryTimings = [];
  window.quarryDomTimings = [];
  window.quarryPrefetchMisses = 0;
  const heldItems = () => [current && !current.correcting ? current.item : null, nextItem, ...resume].filter((i) => i);
  window.quarryHeld = () => heldItems().map((i) => i.item_id);  // for the tests: the leases this page holds

  const fmt = (x) => (x === null || x === undefined ? "unknown" : x.toFixed(2));

  class LoginNeeded extends Error {}

  // The session has ended: decisions still on their way are kept (sessionStorage) before the page goes.
  function toLogin() {
    if (leaving) return;
    leaving = true;
    lastPost.finally(() => window.location.assign("/login"));
  }

  function keepUnsent(body) {
    const unsent = JSON.parse(sessionStorage.getItem(UNSENT) || "[]");
    unsent.push(body);
    sessionStorage.setItem(UNSENT, JSON.stringify(unsent));
  }

  function post(url, body, keepalive = false) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", keepalive,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
  }

  async function postJSON(url, body) {
    const r = await post(url, body);
    if (r.status === 401) throw new LoginNeeded();
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
  }

  function withDeadline(item) {
    if (item && item.expires_in !== null && item.expires_in !== undefined) item.deadline = performance.now() + item.expires_in * 1000;
    return item;
  }

  async function nextJSON(exclude) {
    const d = await postJSON("/api/next", { exclude });
    withDeadline(d.item);
    return d;
  }

  function notice(text) { $("notice").textContent = text; }

  // Text with every invisible direction/format character replaced by a visible, marked code.
  function showText(element, text) {
    const parts = [];
    let last = 0;
    let found = false;
    for (const m of text.matchAll(CONTROL)) {
      found = true;
      parts.push(document.createTextNode(text.slice(last, m.index)));
      const mark = document.createElement("span");
      mark.className = "control";
      mark.textContent = `U+${m[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
      parts.push(mark);
      last = m.index + m[0].length;
    }
    parts.push(document.createTextNode(text.slice(last)));
    element.replaceChildren(...parts);
    return found;
  }

  function showTeacher(it) {
    $("teacher-label").textContent = it.teacher_label || "(none)";
    $("teacher-confidence").textContent = `confidence ${fmt(it.teacher_confidence)}`;
    $("teacher-top").replaceChildren(...(it.teacher_top || []).map((t) => {
      const li = document.createElement("li");
      const p = document.createElement("span");
      p.className = "p";
      p.textContent = ` ${(100 * t.p).toFixed(1)}%`;
      li.append(document.createTextNode(t.label), p);
      return li;
    }));
    $("teacher-note").hidden = !it.teacher_note;
    $("teacher-note").textContent = it.teacher_note || "";
    $("raw-box").hidden = !it.teacher_raw;
    $("raw").textContent = it.teacher_raw || "";
    $("accept-label").textContent = it.teacher_label || "(no teacher label)";
    for (const b of labelButtons) b.classList.toggle("teacher-choice", b.dataset.label === it.teacher_label);
  }

  function show(entry) {
    current = entry;
    const card = $("card");
    queueBox.dataset.state = entry ? (entry.correcting ? "correcting" : "item") : "empty";
    $("empty").hidden = !!entry;
    card.hidden = !entry;
    $("details").hidden = !entry;
    if (entry) {
      const it = entry.item;
      $("item-id").textContent = it.item_id;
      $("round").textContent = it.round;
      $("reason").textContent = it.reason;
      $("text-warning").hidden = !showText($("text"), it.text);
      $("text").scrollTop = 0;
      showTeacher(it);
      $("student-label").textContent = it.student_label || "(none)";
      $("student-confidence").textContent = `confidence ${fmt(it.student_confidence)}`;
      const list = $("similar");
      list.replaceChildren(...it.similar.map((n) => {
        const li = document.createElement("li");
        const tag = document.createElement("b");
        tag.textContent = `${n.label} (${n.source}, ${n.score.toFixed(2)}) `;
        const text = document.createElement("span");
        showText(text, n.text);
        li.append(tag, text);
        return li;
      }));
      if (!it.similar.length) list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "none yet" }));
      $("mode").textContent = entry.correcting ? `Correcting your decision (${entry.correcting.label ?? "skip"}); Esc cancels` : "";
      card.dataset.itemId = it.item_id;
    } else {
      for (const b of labelButtons) b.classList.remove("teacher-choice");
      schedulePoll();
    }
    if (window.quarryShow) window.quarryShow(entry);  // a task kind's own fields (review_answers.js)
    if (keyAt !== null) {
      const pressed = keyAt;
      keyAt = null;
      window.quarryDomTimings.push(performance.now() - pressed);
      requestAnimationFrame(() => window.quarryTimings.push(performance.now() - pressed));
    }
  }

  function failed(e, what) {
    if (e instanceof LoginNeeded) toLogin();
    else notice(`${what} (${e.message}); reload the page, or log in again.`);
  }

  // The empty queue asks again every poll_s seconds, until an item arrives.
  function schedulePoll() {
    if (pollTimer || leaving) return;
    pollTimer = setTimeout(async () => {
      pollTimer = null;
      if (current || leaving) return;
      try {
        const d = await nextJSON([]);
        $("pending").textContent = d.pending;
        if (!current && d.item) { show({ item: d.item, correcting: null }); startPrefetch(); return; }
      } catch (e) { if (e instanceof LoginNeeded) { toLogin(); return; } }
      if (!current) schedulePoll();
    }, pollMs);
  }

  function startPrefetch() {
    if (!current || current.correcting || nextItem || prefetching || leaving) return;
    const exclude = current.item.item_id;
    prefetching = lastPost
      .then(() => nextJSON([exclude]))
      .then((d) => { if (d.item && d.item.item_id !== exclude) nextItem = d.item; $("pending").textContent = d.pending; })
      .catch((e) => { if (e instanceof LoginNeeded) toLogin(); })
      .finally(() => { prefetching = null; });
  }

  function advance(doneId) {
    return nextEntry(doneId).catch((e) => failed(e, "Could not load the next item"));
  }

  // Whether the lease on a prefetched item still holds; one that lapsed (a sleeping laptop) is asked about.
  async function stillHeld(item) {
    if (!item.deadline || performance.now() < item.deadline - 2000) return true;
    const d = await postJSON("/api/renew", { item_ids: [item.item_id] });
    const lease = d.leases[0];
    if (!lease || lease.expires_at === null) return false;
    item.expires_at = lease.expires_at;
    withDeadline(Object.assign(item, { expires_in: lease.expires_in }));
    return true;
  }

  async function nextEntry(doneId) {
    if (resume.length) { show({ item: resume.pop(), correcting: null }); startPrefetch(); return; }
    if (prefetching) await prefetching;
    let item = nextItem;
    nextItem = null;
    if (item && !(await stillHeld(item))) item = null;
    if (!item) {
      if (doneId) window.quarryPrefetchMisses += 1;
      await lastPost;
      const d = await nextJSON(doneId ? [doneId] : []);
      $("pending").textContent = d.pending;
      item = d.item;
    }
    show(item ? { item, correcting: null } : null);
    startPrefetch();
  }

  function send(body) {
    // Chained: decisions reach the server in the order they were made (undo relies on it).
    lastPost = lastPost.then(() => (leaving ? { status: 401 } : post("/api/decide", body))).then(async (r) => {
      if (r.status === 401) { keepUnsent(body); toLogin(); return; }
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
    return lastPost;
  }

  function decide(label, how) {
    const entry = current;
    const body = { item_id: entry.item.item_id, label, correct: !!entry.correcting };
    if (how) body.how = how;  // a written answer changed: "edit" or "rewrite"
    send(body);
    undoCursor = null;
    advance(entry.item.item_id);
  }

  // Decisions made while the session had ended, kept across the login page: sent first, in order.
  async function sendUnsent() {
    const unsent = JSON.parse(sessionStorage.getItem(UNSENT) || "[]");
    sessionStorage.removeItem(UNSENT);
    if (!unsent.length) return;
    const before = decidedHere;
    for (const body of unsent) await send(body);
    if (!leaving && !$("notice").textContent) {
      notice(`Recorded ${decidedHere - before} of ${unsent.length} decisions made before you logged in again.`);
    }
  }

  // Heartbeat: every lease this page holds is renewed while it is open; one that is gone is dropped.
  async function renewLeases() {
    if (leaving) return;
    const held = heldItems();
    if (!held.length) return;
    let d;
    try { d = await postJSON("/api/renew", { item_ids: held.map((i) => i.item_id) }); } catch (e) {
      if (e instanceof LoginNeeded) toLogin();
      return;
    }
    for (const lease of d.leases) {
      const item = held.find((i) => i.item_id === lease.item_id);
      if (lease.expires_at !== null) { item.expires_at = lease.expires_at; withDeadline(Object.assign(item, { expires_in: lease.expires_in })); continue; }
      if (nextItem === item) { nextItem = null; startPrefetch(); }
      resume = resume.filter((i) => i !== item);
      if (current && current.item === item && !current.correcting) {
        notice(`Item ${item.item_id} is no longer yours (its lease lapsed and someone else took it); moving on.`);
        advance(null);
      }
    }
  }

  async function undo() {
    await lastPost.catch(() => {});
    const r = await fetch(`/api/undo${undoCursor ? `?before=${undoCursor}` : ""}`,
      { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) throw new LoginNeeded();
    if (!r.ok) throw new Error(`/api/undo: ${r.status}`);
    const d = await r.json();
    if (!d.item) { notice("Nothing earlier to correct."); return; }
    if (current && !current.correcting) resume.push(current.item);
    undoCursor = d.decision.id;
    show({ item: d.item, correcting: { id: d.decision.id, label: d.decision.label, diff: d.decision.diff } });
  }

  function onKey(key) {
    if (leaving) return;
    if (window.quarryKey && current && window.quarryKey(key, current)) { keyAt = null; return true; }
    if (key === "u") { keyAt = null; undo().catch((e) => failed(e, "Undo failed")); return; }
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
    if (onKey(e.key)) e.preventDefault();  // a task kind's key (e: the editor opens): not typed into it
  });
  document.querySelectorAll("button[data-key]").forEach((b) =>
    b.addEventListener("click", () => { keyAt = null; onKey(b.dataset.key); }));
  window.addEventListener("pagehide", () => {
    if (leaving) return;  // after login the same leases are ours again: keep them
    // Each lease is named with its expiry, so a late release cannot drop a lease taken again since.
    const held = heldItems().filter((i) => i.expires_at).map((i) => ({ item_id: i.item_id, expires_at: i.expires_at }));
    if (held.length) post("/api/release", { leases: held }, true);
  });
  setInterval(renewLeases, Math.min(60000, Math.max(1000, leaseMs / 3)));

  window.quarryDecide = (label, how) => { if (current) decide(label, how); };
  window.quarryNotice = notice;
  sendUnsent().then(() => advance(null));
})();
