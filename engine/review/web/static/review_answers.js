// The queue of a generation task, on top of review.js: shows the instruction's input, the reference and the
// signals, and adds the editor: e edits the teacher's answer in place, r rejects it and starts empty,
// Ctrl+Enter saves (an edit or a rewrite), Esc cancels. Untrusted text only goes through textContent.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  let editing = null;  // "edit" | "rewrite" while the editor is open
  let shown = null;    // the entry on screen

  function stopEditing() {
    editing = null;
    $("editor").hidden = true;
    $("editor-help").hidden = true;
  }

  function startEditing(how) {
    editing = how;
    const editor = $("editor");
    const start = shown.correcting ? shown.correcting.label : shown.item.teacher_label;
    editor.value = how === "edit" ? (start || "") : "";
    editor.hidden = false;
    $("editor-help").hidden = false;
    editor.focus();  // now, so the next key lands in it; the opening key itself is not typed (review.js)
  }

  window.quarryShow = (entry) => {
    stopEditing();
    shown = entry;
    if (!entry) return;
    const it = entry.item;
    $("input").textContent = it.input || "";
    $("input-block").hidden = !it.input;
    $("reference").textContent = it.reference || "";
    $("reference-block").hidden = !it.reference;
    $("teacher-label").textContent = it.teacher_label || "(the teacher gave no answer: press r to write one)";
    const diff = entry.correcting && entry.correcting.diff;
    $("diff").textContent = diff || "";
    $("diff-block").hidden = !diff;
    const rows = Object.entries(it.signals || {}).map(([name, value]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      const td = document.createElement("td");
      th.textContent = name;
      td.textContent = typeof value === "number" ? value.toFixed(3) : String(value);
      tr.append(th, td);
      return tr;
    });
    $("signals").replaceChildren(...rows);
    const list = $("similar");
    if (it.similar.length) {
      list.replaceChildren(...it.similar.map((n) => {
        const li = document.createElement("li");
        const tag = document.createElement("b");
        tag.textContent = `${n.text} (${n.source}, ${n.score.toFixed(2)}) `;
        li.append(tag, document.createTextNode(`→ ${n.label}`));
        return li;
      }));
    }
  };

  window.quarryKey = (key, current) => {
    if (key === "e" || key === "r") { startEditing(key === "e" ? "edit" : "rewrite"); return true; }
    if ((key === "Enter" || key === "a") && !current.item.teacher_label) {
      window.quarryNotice("The teacher gave no answer: press r to write one.");
      return true;
    }
    return false;
  };

  document.addEventListener("DOMContentLoaded", () => {
    $("editor").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        e.stopPropagation();
        const text = $("editor").value.trim();
        if (!text) { window.quarryNotice("An empty answer cannot be saved; Esc cancels."); return; }
        const how = editing;
        stopEditing();
        window.quarryDecide(text, how);
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        stopEditing();
      }
    });
  });
})();
