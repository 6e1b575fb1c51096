// jupyter_cloudws chat widget. Plain DOM, no dependencies: markdown arrives rendered and
// sanitized from Python, so nothing here turns text into HTML except `item.html`.

const STATUS_LABELS = {
  spawning: "Starting sandbox", cloning: "Cloning", ready: "Ready", stopped: "Not running", failed: "Failed",
};
const INACTIVE_AFTER_S = 7 * 24 * 3600;
const MODIFIER_KEYS = new Set(["Control", "Meta", "Shift", "Alt", "CapsLock"]);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}

export function relativeTime(ts, now = Date.now() / 1000) {
  const s = Math.max(0, now - ts);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  const d = Math.round(s / 86400);
  return d === 1 ? "yesterday" : `${d} days ago`;
}

function seconds(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

// The words come from the kernel (tools.group_words), so the label is defined once.
function groupLabel(item, n) {
  const w = item.group_words;
  if (!w) return `${item.tool} ×${n}`;
  return `${w[0]} ${n} ${n === 1 ? w[1] : w[2]}`;
}

// Consecutive calls of one tool form one block; everything else is a block of its own.
function foldsInto(block, item) {
  return item.kind === "tool" && block !== undefined && block.kind === "tools" && block.tool === item.tool
    && block.items[0].message_id === item.message_id;
}

// The blocks of items[from:], each with the index of its first item (`start`).
function blocksFrom(items, from) {
  const blocks = [];
  for (let i = from; i < items.length; i++) {
    const item = items[i];
    const last = blocks[blocks.length - 1];
    if (foldsInto(last, item)) last.items.push(item);
    else if (item.kind === "tool") blocks.push({ key: item.id, kind: "tools", tool: item.tool, start: i, items: [item] });
    else blocks.push({ key: item.id, kind: item.kind, start: i, items: [item] });
  }
  return blocks;
}

export function toBlocks(items) {
  return blocksFrom(items, 0);
}

// A tool row, and a group of them, open like a <details> but are not one: each <details> inserted
// costs Chromium a style pass over the whole document (about 10 ms per row at 3,000 rows, against
// 0.2 ms for a <div>), and tool rows are most of a transcript. The list toggles them (toggleRow).
function toolRow(item, openIds) {
  const state = item.status === "running" ? "running" : item.status === "error" ? "error" : "done";
  const elapsed = item.status === "running"
    ? h("span", { class: "cw-elapsed", "data-started": item.started_ts || "" })
    : h("span", { class: "cw-elapsed", text: seconds(item.duration_ms) });
  const open = openIds.has(item.id);
  return h("div", { class: `cw-tool cw-disclosure cw-${state}`, "data-id": item.id, open },
    h("summary", { role: "button", tabindex: 0, "aria-expanded": String(open) },
      h("span", { class: "cw-icon", text: item.icon || "🔧" }),
      h("span", { class: "cw-tool-name", text: item.tool }),
      h("span", { class: "cw-summary", text: item.summary || "" }),
      h("span", { class: `cw-state cw-state-${state}`, text: state === "running" ? "running" : state === "error" ? "error" : "done" }),
      elapsed),
    h("div", { class: "cw-io" },
      h("div", { class: "cw-io-label", text: "Input" }), h("pre", { class: "cw-input", text: item.input || "" }),
      item.output !== null && item.output !== undefined
        ? [h("div", { class: "cw-io-label", text: "Output" }), h("pre", { class: "cw-output", text: item.output })]
        : null));
}

// A spawn's steps: "clone ✓ 0.8 s". All text from events goes in as text, never as HTML.
const STEP_MARKS = { running: "…", done: "✓", failed: "✗" };

function stepSeconds(ms) {
  return `${((ms || 0) / 1000).toFixed(1)} s`;
}

function lineCount(text) {
  const n = text.split("\n").length;
  return text.endsWith("\n") ? n - 1 : n;
}

function progressStep(step, blockId, openIds) {
  const running = step.state === "running";
  const markClass = step.state === "failed" ? "error" : running ? "running" : "done";
  const row = h("div", { class: `cw-step cw-step-${step.state}`, "data-step": step.step },
    h("span", { class: "cw-step-name", text: step.step }),
    running ? h("span", { class: "cw-spinner", title: "running" })
      : h("span", { class: `cw-step-mark cw-state-${markClass}`, text: STEP_MARKS[step.state] || step.state }),
    running && step.started_ts
      ? h("span", { class: "cw-elapsed", "data-started": step.started_ts, text: stepSeconds(step.elapsed_ms) })
      : h("span", { class: "cw-elapsed", text: stepSeconds(step.elapsed_ms) }),
    step.detail ? h("span", { class: "cw-step-detail", title: step.detail, text: step.detail }) : null);
  const parts = [row];
  if (step.output) {
    const id = `${blockId}:${step.step}:output`;
    const n = lineCount(step.output);
    parts.push(h("details", { class: "cw-step-output", "data-id": id, open: openIds.has(id) },
      h("summary", { text: `output (${n} ${n === 1 ? "line" : "lines"})` }), h("pre", { text: step.output })));
  }
  if (step.state === "failed" && step.tail) parts.push(h("pre", { class: "cw-step-tail", text: step.tail }));
  return parts;
}

function progressBlock(item, openIds) {
  const steps = item.steps || [];
  const lines = steps.flatMap((s) => progressStep(s, item.id, openIds));
  if (item.state === "running") {
    return h("div", { class: "cw-block cw-progress cw-progress-running" },
      h("div", { class: "cw-progress-title", text: "Starting the sandbox" }), lines);
  }
  // Over: one line, opened on a click; kept open when a step failed, so its tail shows.
  const failed = steps.some((s) => s.state === "failed");
  const summary = `${item.state === "ready" ? "Sandbox ready" : "Sandbox failed"} in ${stepSeconds(item.total_ms)} · `
    + steps.map((s) => `${s.step} ${STEP_MARKS[s.state] || s.state} ${stepSeconds(s.elapsed_ms)}`).join(" · ");
  return h("div", { class: `cw-block cw-progress cw-progress-${item.state}${failed ? " cw-progress-failed-step" : ""}` },
    h("details", { "data-id": item.id, open: failed || openIds.has(item.id) },
      h("summary", { class: "cw-progress-summary", text: summary }), lines));
}

// -- the review: files changed, a file's diff, the pull request badge ----------------------------
// Paths, titles and states go in as text. A diff's `html` is the only markup: Pygments' escaped
// output, sanitized by nh3 in the kernel (review.py), like the assistant's markdown.

const FILE_MARKS = { added: "A", modified: "M", deleted: "D", renamed: "R", copied: "C", type_changed: "T" };
const PR_LABELS = { open: "open", draft: "draft", merged: "merged", closed: "closed" };

export function changesLine(files, additions, deletions) {
  return `${files} ${files === 1 ? "file" : "files"} changed +${additions || 0} −${deletions || 0}`;
}

function lineCounts(f) {
  if (f.additions === null || f.additions === undefined) return h("span", { class: "cw-file-stat", text: "binary" });
  return h("span", { class: "cw-file-stat" },
    h("span", { class: "cw-add", text: `+${f.additions}` }), " ", h("span", { class: "cw-del", text: `−${f.deletions || 0}` }));
}

// A loaded file: its diff, or each changed cell of a notebook, and the marker of a cut diff.
export function diffView(file) {
  const parts = [];
  const diff = (html) => { const d = h("div", { class: "cw-diff cloudws-md" }); d.innerHTML = html; return d; };
  if (file.cells && file.cells.length) {
    for (const c of file.cells) {
      parts.push(h("div", { class: `cw-cell cw-cell-${c.status}` },
        h("div", { class: "cw-cell-head", text: `${c.index === null || c.index === undefined ? "cell" : `cell ${c.index}`} · ${c.cell_type} · ${c.status}` }),
        c.html ? diff(c.html) : null,
        c.outputs ? h("div", { class: "cw-cell-outputs", text: `outputs: ${c.outputs}` }) : null));
    }
  } else if (file.html) parts.push(diff(file.html));
  else parts.push(h("div", { class: "cw-diff-empty", text: file.binary ? "Binary file: no diff to show" : "No changes to the text" }));
  if (file.truncated) parts.push(h("div", { class: "cw-diff-marker", text: "✂ This diff is too large: only its start is shown." }));
  return parts;
}

// One changed file: a row that opens to its diff, asked of the kernel the first time it opens.
function fileRow(f, scope, openIds, review) {
  const id = `file:${scope}:${f.path}`;
  const body = h("div", { class: "cw-file-body" });
  const row = h("details", { class: `cw-file cw-file-${f.status}`, "data-id": id, open: openIds.has(id) },
    h("summary", { title: f.path },
      h("span", { class: "cw-file-mark", title: f.status, text: FILE_MARKS[f.status] || "M" }),
      h("span", { class: "cw-file-path", text: f.path }), lineCounts(f)),
    body);
  row.cwScope = scope;
  row.cwPath = f.path;
  row.cwBody = body;
  row.addEventListener("toggle", () => { if (row.open) review.fill(row); });
  if (row.open) review.fill(row);
  return row;
}

function filesList(files, total, scope, openIds, review) {
  const rows = files.map((f) => fileRow(f, scope, openIds, review));
  if (total > files.length) rows.push(h("div", { class: "cw-file-more", text: `and ${total - files.length} more` }));
  return h("div", { class: "cw-files" }, rows);
}

function gitBlock(item, openIds, review) {
  const text = item.error ? `⎇ git: ${item.error}`
    : `⎇ committed ${item.sha} on ${item.branch}${item.pushed ? " · pushed" : ""}`;
  const block = h("div", { class: `cw-block cw-git${item.error ? " cw-bad" : ""}` }, h("div", { text }));
  if (Array.isArray(item.files) && item.files_total) {
    const id = `files:${item.id}`;
    block.append(h("details", { class: "cw-changes", "data-id": id, open: openIds.has(id) },
      h("summary", { class: "cw-changes-line", text: changesLine(item.files_total, item.additions, item.deletions) }),
      filesList(item.files, item.files_total, item.message_id || "", openIds, review)));
  }
  return block;
}

function renderBlock(block, openIds, review) {
  const item = block.items[0];
  if (block.kind === "progress") return progressBlock(item, openIds);
  if (block.kind === "tools") {
    if (block.items.length === 1) return h("div", { class: "cw-block cw-tools" }, toolRow(item, openIds));
    const running = block.items.some((i) => i.status === "running");
    const failed = block.items.some((i) => i.status === "error");
    const groupId = `group:${block.key}`;
    const open = openIds.has(groupId);
    return h("div", { class: "cw-block cw-tools" },
      h("div", { class: "cw-group cw-disclosure", "data-id": groupId, open },
        h("summary", { role: "button", tabindex: 0, "aria-expanded": String(open) },
          h("span", { class: "cw-icon", text: item.icon || "🔧" }),
          h("span", { class: "cw-group-label", text: groupLabel(item, block.items.length) }),
          h("span", { class: `cw-state cw-state-${running ? "running" : failed ? "error" : "done"}`,
            text: running ? "running" : failed ? "error" : "done" })),
        block.items.map((i) => toolRow(i, openIds))));
  }
  if (block.kind === "user") {
    return h("div", { class: `cw-block cw-user${item.queued ? " cw-queued" : ""}` },
      h("div", { class: "cw-who", text: item.queued ? `${item.author} · queued` : item.author }),
      h("div", { class: "cw-user-text", text: item.text }));
  }
  if (block.kind === "assistant") {
    const div = h("div", { class: `cw-block cw-assistant cloudws-md${item.streaming ? " cw-streaming" : ""}` });
    div.innerHTML = item.html; // rendered by markdown-it and sanitized by nh3 in the kernel
    return div;
  }
  if (block.kind === "result") {
    const cost = item.cost_usd !== null && item.cost_usd !== undefined ? ` · $${item.cost_usd.toFixed(4)}` : "";
    const text = item.interrupted ? `■ Stopped after ${seconds(item.duration_ms) || "a moment"}`
      : item.success ? `✓ Done in ${seconds(item.duration_ms)}${cost}` : `✗ Failed: ${item.error || "unknown error"}`;
    return h("div", { class: `cw-block cw-result ${item.success ? "cw-ok" : "cw-bad"}`, text });
  }
  if (block.kind === "git") return gitBlock(item, openIds, review);
  return h("div", { class: `cw-block cw-notice cw-${item.level || "info"}`, text: item.text || "" });
}

// -- the model, once per widget: keep the transcript current for every view --------------------
// An upsert costs what its items cost, whatever the transcript's length: the items are replaced or
// appended in place in the model's own `transcript` array, through an id -> index map, and each
// view is told which indices changed. In place, so that model.get("transcript") stays current for
// any reader (a view drawn later, the widget state a notebook saves) without a set(), which would
// compare it whole. A whole new `transcript` from the kernel (a session opened, a reload's state)
// is a new array: each view compares it with what it shows, once.
//
// The state hangs off that array, not off `model`: anywidget gives initialize and each view a
// proxy of its own, and the array is what they all share (a model's get returns the same array
// until a change:transcript).

const transcripts = new WeakMap(); // a model's transcript array -> its TranscriptState

class TranscriptState {
  constructor(items) {
    this.items = items;
    this.index = new Map();
    for (let i = 0; i < items.length; i++) this.index.set(items[i].id, i);
    this.views = new Set(); // { update(indices) } of each view showing this transcript
  }

  upsert(items) {
    const changed = [];
    for (const item of items) {
      let i = this.index.get(item.id);
      if (i === undefined) {
        i = this.items.length;
        this.index.set(item.id, i);
        this.items.push(item);
      } else this.items[i] = item;
      changed.push(i);
    }
    for (const view of this.views) view.update(changed);
  }
}

function transcriptOf(model) {
  let items = model.get("transcript");
  if (!Array.isArray(items) || Object.isFrozen(items)) {
    items = [...(items || [])]; // one the model's owner gave us read-only: ours from now on
    model.set("transcript", items);
  }
  let state = transcripts.get(items);
  if (state === undefined) {
    state = new TranscriptState(items);
    transcripts.set(items, state);
  }
  return state;
}

function initialize({ model }) {
  model.on("msg:custom", (msg) => {
    // The view is switched locally by clicks; the kernel says when it switches it (a session
    // opened, one archived), since setting the trait to the value it already holds sends nothing.
    if (msg.type === "view") model.set("view", msg.view);
    else if (msg.type === "upsert") transcriptOf(model).upsert(msg.items); // the kernel already holds this state
  });
}

// -- the transcript in one view: blocks drawn again only when their items changed ----------------
// `blocks` cover the items in order; `blockOf[i]` is the block of item i. An item updated in place
// draws its block again; an appended item regroups only the last block (consecutive tool calls fold
// into one); an item whose grouping changed regroups from the block before its own. What is not
// touched keeps its DOM nodes, and nothing walks the whole transcript except a whole new one.
// Blocks sit in chunks of CHUNK_BLOCKS: the browser lays out again only the chunk that changed and
// the list of chunks, where one flat list of thousands of blocks costs a layout of all of them.

const CHUNK_BLOCKS = 64;
const LIVE_CHUNKS = 2; // drawn at once, from the end; older ones when scrolled near
const PLACEHOLDER_BLOCK_PX = 48; // a block's height, guessed, until its chunk is drawn

function openIn(el, openIds) {
  for (const d of el.querySelectorAll("[data-id][open]")) openIds.add(d.dataset.id);
  return openIds;
}

// A click on a tool row's or group's summary, or Enter or Space on it, opens or closes it.
function toggleRow(e) {
  const summary = e.target.closest("summary");
  const row = summary && summary.parentElement;
  if (!row || !row.classList.contains("cw-disclosure")) return;
  if (e.type === "keydown") {
    if (e.key !== "Enter" && e.key !== " ") return;
    e.preventDefault();
    e.stopPropagation(); // not JupyterLab's: Enter would put the notebook in edit mode
  }
  const open = row.toggleAttribute("open");
  summary.setAttribute("aria-expanded", String(open));
}

function sameItems(a, b, deep) {
  if (a.items.length !== b.items.length) return false;
  return a.items.every((item, i) => item === b.items[i] || (deep && JSON.stringify(item) === JSON.stringify(b.items[i])));
}

function foldKey(item) {
  return item.kind === "tool" ? `tool\n${item.tool}\n${item.message_id}` : item.kind;
}

function transcriptView(itemsNow, list, draw, ticking) {
  let blocks = [];
  const blockOf = [];
  const chunks = []; // { el, drawn }: a chunk not drawn yet is an empty placeholder of about its height
  // Older chunks are drawn when they come near the list's viewport: a long transcript opens at its
  // end without building, styling and laying out thousands of blocks first.
  const observer = typeof IntersectionObserver === "function"
    ? new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting) drawChunk(e.target.cwChunk);
    }, { root: list, rootMargin: "1200px 0px" })
    : null;

  function drawn(block, openIds) {
    block.el = draw(block, openIds);
    if (block.el.querySelector("[data-started]")) ticking.add(block.el);
    return block.el;
  }

  function drop(el) {
    if (el === undefined) return;
    ticking.delete(el);
    el.remove();
  }

  function chunkAt(pos) {
    const k = Math.floor(pos / CHUNK_BLOCKS);
    while (chunks.length <= k) {
      const chunk = { el: h("div", { class: "cw-chunk" }), drawn: observer === null };
      chunk.el.cwChunk = chunks.length;
      list.append(chunk.el);
      chunks.push(chunk);
      if (!chunk.drawn) observer.observe(chunk.el);
    }
    return chunks[k];
  }

  function drawChunk(k) {
    const chunk = chunks[k];
    if (chunk === undefined || chunk.drawn) return;
    chunk.drawn = true;
    if (observer !== null) observer.unobserve(chunk.el);
    const mine = blocks.slice(k * CHUNK_BLOCKS, (k + 1) * CHUNK_BLOCKS);
    chunk.el.replaceChildren(...mine.map((b) => drawn(b, new Set())));
    chunk.el.removeAttribute("style"); // the placeholder's height
  }

  // The last LIVE_CHUNKS chunks are always drawn; a placeholder is as high as its blocks might be.
  function settle() {
    for (let k = 0; k < chunks.length; k++) {
      const chunk = chunks[k];
      if (k >= chunks.length - LIVE_CHUNKS) drawChunk(k);
      else if (!chunk.drawn) {
        const n = Math.min(CHUNK_BLOCKS, blocks.length - k * CHUNK_BLOCKS);
        chunk.el.style.height = `${n * PLACEHOLDER_BLOCK_PX}px`;
      }
    }
  }

  // Blocks from index `from` on are grouped again from the items; one whose items are the same
  // objects (or, after a whole new transcript, equal ones) keeps its element.
  function regroup(from, deep) {
    const old = blocks.splice(from);
    const start = old.length ? old[0].start : blockOf.length;
    const fresh = blocksFrom(itemsNow(), start);
    const byKey = new Map(old.map((b) => [b.key, b]));
    for (const b of fresh) {
      const was = byKey.get(b.key);
      if (was !== undefined && sameItems(was, b, deep)) { b.el = was.el; byKey.delete(b.key); }
    }
    const openIds = new Set();
    for (const was of byKey.values()) {
      if (was.el !== undefined) openIn(was.el, openIds);
      drop(was.el);
    }
    blockOf.length = start;
    for (const b of fresh) {
      b.pos = blocks.length;
      const chunk = chunkAt(b.pos);
      if (!chunk.drawn) { drop(b.el); b.el = undefined; } // drawn with its chunk, from its items then
      else {
        if (b.el === undefined) drawn(b, openIds);
        const want = b.pos % CHUNK_BLOCKS === 0 ? chunk.el.firstChild : blocks[b.pos - 1].el.nextSibling;
        if (want !== b.el) chunk.el.insertBefore(b.el, want);
      }
      blocks.push(b);
      for (let k = 0; k < b.items.length; k++) blockOf.push(b);
    }
    while (chunks.length > Math.ceil(blocks.length / CHUNK_BLOCKS)) {
      const chunk = chunks.pop();
      if (observer !== null) observer.unobserve(chunk.el);
      chunk.el.remove();
    }
    settle();
  }

  function redraw(block) {
    const el = block.el;
    if (el === undefined) return; // in a chunk not drawn yet
    el.replaceWith(drawn(block, openIn(el, new Set())));
    if (block.el !== el) ticking.delete(el);
  }

  list.cwDrawAll = () => { for (let k = 0; k < chunks.length; k++) drawChunk(k); };
  return {
    get length() { return blocks.length; },
    update(changed) {
      const items = itemsNow();
      const shown = blockOf.length;
      // Appending regroups the last block: a tool call may fold into it.
      let from = items.length > shown ? Math.max(0, blocks.length - 1) : blocks.length;
      const dirty = new Set();
      for (const i of changed) {
        if (i >= shown) continue;
        const block = blockOf[i];
        if (foldKey(block.items[i - block.start]) === foldKey(items[i])) dirty.add(block);
        else from = Math.min(from, Math.max(0, block.pos - 1));
      }
      for (const block of dirty) {
        if (block.pos >= from) continue; // regrouped below, against the items it shows now
        block.items = items.slice(block.start, block.start + block.items.length);
        redraw(block);
      }
      if (from < blocks.length || items.length > shown) regroup(from, false);
    },
    reset() { regroup(0, true); },
  };
}

// -- one view ---------------------------------------------------------------------------------

function render({ model, el }) {
  const root = h("div", { class: "cloudws-chat" });
  el.append(root);
  const header = h("div", { class: "cw-header" });
  const banner = h("div", { class: "cw-banner", role: "alert" });
  const panel = h("div", { class: "cw-panel" });
  const sessionChanges = h("div", { class: "cw-session-changes" });
  const list = h("div", { class: "cw-transcript", "aria-live": "polite" });
  const working = h("div", { class: "cw-working" });
  const composer = h("div", { class: "cw-composer" });
  root.append(header, banner, sessionChanges, panel, list, working, composer);

  const send = (content) => model.send(content);

  // Diffs loaded in this view: "scope\npath" -> the kernel's reply ({file} or {error}); a scope is a
  // prompt's id, or "" for the whole session. Asked once; a row drawn again gets it from here.
  const diffs = new Map();
  const review = {
    fill(row) {
      const key = `${row.cwScope}\n${row.cwPath}`;
      const got = diffs.get(key);
      if (got === undefined) {
        diffs.set(key, null);
        send({ type: "diff", scope: row.cwScope, path: row.cwPath });
      }
      if (!got) row.cwBody.replaceChildren(h("div", { class: "cw-diff-loading", text: "Loading the diff…" }));
      else if (got.error) row.cwBody.replaceChildren(h("div", { class: "cw-diff-error", text: `Could not load the diff: ${got.error}` }));
      else row.cwBody.replaceChildren(...diffView(got.file));
    },
  };
  const onDiff = (msg) => {
    if (msg.type !== "diff") return;
    const key = `${msg.scope}\n${msg.path}`;
    diffs.set(key, msg);
    for (const row of root.querySelectorAll("details.cw-file")) {
      if (row.cwScope === msg.scope && row.cwPath === msg.path && row.open) review.fill(row);
    }
    if (msg.error) diffs.delete(key); // shown once; opened again, the file is asked for again
  };
  model.on("msg:custom", onDiff);

  // The session's "N files changed": asked again after each git event; its open diffs with it.
  function renderSessionChanges() {
    const c = model.get("changes_total") || {};
    const s = model.get("session") || {};
    const openIds = new Set([...sessionChanges.querySelectorAll("details[open]")].map((d) => d.dataset.id));
    sessionChanges.replaceChildren();
    sessionChanges.hidden = !s.id || !c.state;
    if (c.state === "loading") sessionChanges.append(h("span", { class: "cw-muted", text: "Changes: …" }));
    else if (c.state === "error") sessionChanges.append(h("span", { class: "cw-diff-error", text: `Changes unavailable: ${c.error || "unknown error"}` }));
    else if (c.state === "ready" && !c.files_total) sessionChanges.append(h("span", { class: "cw-muted", text: "No changes yet" }));
    else if (c.state === "ready") {
      sessionChanges.append(h("details", { class: "cw-changes", "data-id": "session-files", open: openIds.has("session-files") },
        h("summary", { class: "cw-changes-line", text: `Session: ${changesLine(c.files_total, c.additions, c.deletions)}` }),
        filesList(c.files || [], c.files_total, "", openIds, review)));
    }
  }

  // The pull request: a badge linking to it, or the action that opens the form.
  function prBadge() {
    const pr = model.get("pull_request") || {};
    if (!pr.number) return null;
    const attrs = { class: `cw-pr cw-pr-${pr.state}`, title: pr.title || "", text: `#${pr.number} ${PR_LABELS[pr.state] || pr.state}` };
    // Only http(s) reaches href (checked in the kernel as well): a javascript: URL would run.
    return /^https?:\/\//i.test(pr.url || "")
      ? h("a", { ...attrs, href: pr.url, target: "_blank", rel: "noopener noreferrer" }) : h("span", attrs);
  }

  function prFormView() {
    const title = h("input", { class: "cw-pr-title", "aria-label": "Pull request title", placeholder: "Title" });
    const body = h("textarea", { class: "cw-pr-body", rows: 8, "aria-label": "Pull request description", placeholder: "Description" });
    const draft = h("input", { type: "checkbox", class: "cw-pr-draft-box" });
    const status = h("div", { class: "cw-pr-status", role: "status" });
    const sendBtn = h("button", { class: "cw-btn cw-primary cw-pr-send" }, "Send");
    for (const el2 of [title, body]) el2.addEventListener("keydown", (e) => e.stopPropagation());
    sendBtn.addEventListener("click", () => send({ type: "pr_create", title: title.value, body: body.value, draft: draft.checked }));
    let filled = false;
    const update = () => {
      const f = model.get("pr_form") || {};
      // The fields are filled once, from the draft or a refused attempt: what the user typed stays.
      if (!filled && (f.state === "ready" || f.state === "error" || f.state === "sending")) {
        title.value = f.title || ""; body.value = f.body || ""; draft.checked = !!f.draft; filled = true;
      }
      title.disabled = body.disabled = draft.disabled = sendBtn.disabled = f.state === "loading" || f.state === "sending";
      status.className = `cw-pr-status${f.state === "error" ? " cw-pr-error" : ""}`;
      status.textContent = f.state === "loading" ? "Drafting the title and description…"
        : f.state === "sending" ? "Pushing the branch and opening the pull request…" : f.state === "error" ? f.error || "Failed" : "";
    };
    const form = h("div", { class: "cw-pr-form" },
      h("div", { class: "cw-form-title", text: "Pull request" }), title, body,
      h("label", { class: "cw-row" }, draft, " Draft"), status,
      h("div", { class: "cw-row" }, sendBtn,
        h("button", { class: "cw-btn", onclick: () => { model.set("view", "chat"); redrawPanel(); } }, "Cancel")));
    form.cwUpdate = update;
    update();
    return form;
  }

  // Which isolation the server's sandboxes run under: a lock, or a warning when there is none.
  function isolationMark() {
    const isolation = model.get("isolation");
    if (!isolation) return null;
    const none = isolation === "none";
    return h("span", { class: `cw-isolation${none ? " cw-isolation-none" : ""}`,
      title: none ? "Sandboxes are not isolated: the agent can read and write all your files"
        : `Sandbox isolated by ${isolation}`,
      text: none ? "⚠ not isolated" : `🔒 ${isolation}` });
  }
  function badgeTitle() {
    const detail = model.get("sandbox_detail") || "";
    const isolation = model.get("isolation");
    return isolation ? `${detail}${detail ? " · " : ""}isolation: ${isolation}` : detail;
  }

  // Header: title (editable), branch, sandbox badge, connection, session actions.
  function renderHeader() {
    const s = model.get("session") || {};
    header.replaceChildren();
    if (!s.id) {
      header.append(h("span", { class: "cw-title", text: "Claude Code sessions" }));
    } else {
      const title = h("span", { class: "cw-title", title: "Click to rename", tabindex: 0, text: s.title || "Untitled" });
      title.addEventListener("click", () => editTitle(title, s.title || ""));
      title.addEventListener("keydown", (e) => { if (e.key === "Enter") editTitle(title, s.title || ""); });
      const status = model.get("sandbox_status");
      header.append(title,
        h("span", { class: "cw-branch", title: s.repo || "", text: s.branch || "" }),
        h("span", { class: `cw-badge cw-badge-${status}`, title: badgeTitle(),
          text: STATUS_LABELS[status] || status }),
        ...[isolationMark(), prBadge()].filter(Boolean));
    }
    const conn = model.get("connection") || {};
    if (conn.state === "reconnecting") {
      header.append(h("span", { class: "cw-conn cw-conn-warn", text: `Reconnecting (${conn.attempt}/${conn.max_attempts})…` }));
    } else if (conn.state === "failed") {
      header.append(h("span", { class: "cw-conn cw-conn-bad", title: conn.error || "", text: "Disconnected" }));
    }
    header.append(...[h("span", { class: "cw-spacer" }),
      h("button", { class: "cw-btn", title: "All sessions", onclick: () => { model.set("view", "sessions"); redrawPanel(); send({ type: "list_sessions" }); } }, "Sessions"),
      h("button", { class: "cw-btn", title: "New session", onclick: () => { model.set("view", "new"); redrawPanel(); send({ type: "list_sessions" }); } }, "New"),
      // Hidden while the branch has a pull request under review; a merged or closed one may be followed by a new one.
      s.id && !["open", "draft"].includes((model.get("pull_request") || {}).state) ? h("button", { class: "cw-btn cw-pr-action", title: "Open a pull request of this session's branch",
        onclick: () => { model.set("view", "pr"); redrawPanel(); send({ type: "pr_draft" }); } }, "Pull request") : null,
      s.id ? h("button", { class: "cw-btn", title: "Archive this session", onclick: () => send({ type: "archive" }) }, "Archive") : null,
    ].filter(Boolean)); // append() would write a null as the text "null"
  }

  function editTitle(span, current) {
    const input = h("input", { class: "cw-title-input", value: current, "aria-label": "Session title" });
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      if (save && input.value.trim() && input.value.trim() !== current) send({ type: "rename", title: input.value.trim() });
      renderHeader();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); finish(false); }
    });
    input.addEventListener("blur", () => finish(false));
    span.replaceWith(input);
    input.focus();
    input.select();
  }

  // The new-session form's GitHub repositories, kept across redraws of the form; `seq` and
  // `branchSeq` number the asks, so that only the answer to the latest one is drawn.
  const gh = { seq: 0, branchSeq: 0, asked: false, repos: null };
  const onGithub = (msg) => {
    const form = panel.querySelector(".cw-new");
    if (form && msg.type === "github_repos") form.onRepos(msg);
    if (form && msg.type === "github_branches") form.onBranches(msg);
  };
  model.on("msg:custom", onGithub);

  // The session picker and the new-session form share the panel slot.
  function redrawPanel() {
    const view = model.get("view");
    panel.replaceChildren();
    panel.hidden = view === "chat";
    if (view === "sessions") panel.append(pickerView());
    if (view === "new") panel.append(newSessionView());
    if (view === "pr") panel.append(prFormView());
    const hideChat = view !== "chat" && !(model.get("session") || {}).id;
    list.hidden = composer.hidden = working.hidden = hideChat;
  }

  function pickerView() {
    const search = h("input", { class: "cw-search", type: "search", placeholder: "Search sessions by title or repository" });
    let timer = null;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => send({ type: "list_sessions", q: search.value }), 200);
    });
    const now = Date.now() / 1000;
    const sessions = model.get("sessions") || [];
    const group = (name, rows) => rows.length ? h("div", { class: "cw-group-list" },
      h("div", { class: "cw-group-title", text: `${name} (${rows.length})` }),
      rows.map((s) => h("button", { class: "cw-session-row", "data-id": s.id, onclick: () => send({ type: "open_session", id: s.id }) },
        h("span", { class: "cw-row-title", text: s.title }),
        h("span", { class: "cw-row-repo", text: s.repo }),
        h("span", { class: "cw-row-time", title: new Date(s.updated_at * 1000).toLocaleString(), text: relativeTime(s.updated_at, now) })))) : null;
    const active = sessions.filter((s) => now - s.updated_at < INACTIVE_AFTER_S);
    const inactive = sessions.filter((s) => now - s.updated_at >= INACTIVE_AFTER_S);
    const close = (model.get("session") || {}).id
      ? h("button", { class: "cw-btn", onclick: () => { model.set("view", "chat"); redrawPanel(); } }, "Back to chat") : null;
    return h("div", { class: "cw-picker" }, h("div", { class: "cw-row" }, search, close),
      sessions.length ? [group("Active", active), group("Inactive", inactive)]
        : h("div", { class: "cw-empty", text: "No sessions yet. Start one with New." }));
  }

  // The new-session form. With a GitHub token on the server, the repository field also offers the
  // user's repositories (asked of the kernel, which asks the server off its own thread); choosing
  // one lists its branches. A URL or a path typed in still works.
  function newSessionView() {
    const form = h("div", { class: "cw-new" });
    const repo = h("input", { class: "cw-repo", placeholder: "Repository: a git URL or a local path", "aria-label": "Repository" });
    const title = h("input", { class: "cw-new-title", placeholder: "Title (optional)", "aria-label": "Title" });
    const branch = h("input", { class: "cw-base-branch", placeholder: "Base branch (default branch if empty)", "aria-label": "Base branch" });
    const branchSel = h("select", { class: "cw-base-branch-select", "aria-label": "Base branch", hidden: true });
    const modelSel = h("select", { class: "cw-model", "aria-label": "Model" },
      (model.get("models") || []).map((m) => h("option", { value: m.id, text: m.label })));
    const chips = h("div", { class: "cw-chips" }, (model.get("recent_repos") || []).map((r) =>
      h("button", { class: "cw-chip", title: r, onclick: () => { repo.value = r; onRepoInput(); repo.focus(); warm(); } }, r.split("/").filter(Boolean).pop() || r)));
    const ghStatus = h("div", { class: "cw-gh-status", role: "status" });
    const ghList = h("div", { class: "cw-gh-list", role: "listbox", "aria-label": "Your GitHub repositories" });
    const baseBranch = () => (branchSel.hidden ? branch.value : branchSel.value).trim();
    // Choosing a repository starts work early: the server builds its image while the form is filled in.
    function warm() {
      if (repo.value.trim()) send({ type: "warm_repo", repo: repo.value.trim(), base_branch: baseBranch() });
    }
    repo.addEventListener("change", warm);
    branch.addEventListener("change", warm);
    branchSel.addEventListener("change", warm);
    const create = () => {
      if (!repo.value.trim()) { repo.focus(); return; }
      send({ type: "new_session", repo: repo.value.trim(), title: title.value.trim(), base_branch: baseBranch(), model: modelSel.value });
    };
    for (const input of [repo, title, branch]) input.addEventListener("keydown", (e) => { e.stopPropagation(); if (e.key === "Enter") create(); });

    // -- the GitHub lists -------------------------------------------------------------------
    let chosen = null; // the repository picked from the list, while the field still holds its URL
    let timer = null;
    const looksLikeLocation = (v) => /^[./~]|:\/\/|^git@/.test(v);
    const matches = (r, q) => !q || `${r.full_name}\n${r.description}`.toLowerCase().includes(q.toLowerCase());
    function drawRepos() {
      const answer = gh.repos;
      const q = chosen && repo.value.trim() === chosen.clone_url ? "" : repo.value.trim();
      ghList.replaceChildren();
      ghStatus.className = "cw-gh-status";
      if (!answer) { ghStatus.textContent = gh.asked ? "Listing your GitHub repositories…" : ""; return; }
      if (answer.error) { ghStatus.className = "cw-gh-status cw-gh-error"; ghStatus.textContent = answer.error; return; }
      if (!answer.configured) { ghStatus.textContent = answer.hint || ""; return; }
      if (looksLikeLocation(q)) { ghStatus.textContent = ""; return; }
      // The last answer, narrowed at once by what was typed since; the server's answer to it follows.
      const shown = answer.repos.filter((r) => matches(r, q));
      ghStatus.textContent = shown.length ? "" : q ? `None of your GitHub repositories matches “${q}”` : "No GitHub repositories";
      const now = Date.now() / 1000;
      for (const r of shown) {
        const pushed = Date.parse(r.pushed_at) / 1000;
        const selected = !!chosen && chosen.full_name === r.full_name;
        ghList.append(h("button", { class: `cw-gh-repo${selected ? " cw-gh-chosen" : ""}`, role: "option",
          "aria-selected": selected ? "true" : "false", title: r.clone_url, onclick: () => choose(r) },
          h("span", { class: "cw-gh-name", text: r.full_name }),
          r.private ? h("span", { class: "cw-gh-private", title: "Private repository", text: "🔒 private" }) : null,
          Number.isFinite(pushed) ? h("span", { class: "cw-gh-time", title: `pushed ${new Date(pushed * 1000).toLocaleString()}`,
            text: `pushed ${relativeTime(pushed, now)}` }) : null,
          r.description ? h("span", { class: "cw-gh-desc", text: r.description }) : null));
      }
    }
    function askRepos() {
      const q = repo.value.trim();
      if (looksLikeLocation(q) || (chosen && q === chosen.clone_url)) return;
      gh.seq += 1;
      gh.asked = true;
      send({ type: "github_repos", q, seq: gh.seq });
    }
    function showBranchInput() {
      branchSel.hidden = true; branchSel.replaceChildren(); branch.hidden = false;
    }
    function onRepoInput() {
      if (chosen && repo.value.trim() !== chosen.clone_url) { chosen = null; showBranchInput(); }
      drawRepos();
      clearTimeout(timer);
      timer = setTimeout(askRepos, 250);
    }
    repo.addEventListener("input", onRepoInput);
    function choose(r) {
      chosen = r;
      repo.value = r.clone_url;
      gh.branchSeq += 1;
      branchSel.replaceChildren(); branchSel.hidden = true; branch.hidden = false;
      branch.value = ""; branch.placeholder = `Listing the branches of ${r.full_name}…`;
      send({ type: "github_branches", full_name: r.full_name, seq: gh.branchSeq });
      drawRepos();
      warm();
    }
    form.onRepos = (msg) => {
      if (msg.seq !== gh.seq) return; // an answer to something typed before
      gh.repos = msg;
      drawRepos();
    };
    form.onBranches = (msg) => {
      if (msg.seq !== gh.branchSeq || !chosen || chosen.full_name !== msg.full_name) return;
      branch.placeholder = "Base branch (default branch if empty)";
      if (msg.error || !msg.branches.length) {
        ghStatus.className = `cw-gh-status${msg.error ? " cw-gh-error" : ""}`;
        ghStatus.textContent = msg.error || `${msg.full_name} has no branches yet`;
        return; // the text field stays: a branch can still be typed
      }
      branchSel.replaceChildren(...msg.branches.map((b) => h("option", { value: b.name, selected: b.name === msg.default_branch,
        text: `${b.name}${b.name === msg.default_branch ? " (default)" : ""}${b.protected ? " · protected" : ""}` })));
      branchSel.value = msg.default_branch || msg.branches[0].name;
      branchSel.hidden = false; branch.hidden = true;
      warm();
    };
    drawRepos();
    askRepos();

    form.append(
      h("div", { class: "cw-form-title", text: "New session" }), repo, ghStatus, ghList, chips, title,
      h("div", { class: "cw-row" }, modelSel, branch, branchSel),
      h("div", { class: "cw-row" },
        h("button", { class: "cw-btn cw-primary", onclick: create }, "Create"),
        h("button", { class: "cw-btn", onclick: () => { model.set("view", (model.get("session") || {}).id ? "chat" : "sessions"); redrawPanel(); } }, "Cancel")));
    return form;
  }

  // The transcript: blocks drawn again only when their items changed (transcriptView).
  const ticking = new Set(); // blocks' elements with a running time to tick
  list.addEventListener("click", toggleRow);
  list.addEventListener("keydown", toggleRow);
  let transcript = transcriptOf(model);
  const blocks = transcriptView(() => transcript.items, list, (block, openIds) => renderBlock(block, openIds, review), ticking);
  let emptyHint = null; // the empty chat's line, while it has no blocks
  const transcriptChanged = (change) => {
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    change();
    const s = model.get("session") || {};
    if (!blocks.length && s.id && !emptyHint) {
      emptyHint = h("div", { class: "cw-empty cw-empty-chat",
        text: `Ask for a change below. Claude works in a sandbox on ${s.branch} of ${s.repo}; each prompt's work becomes a commit there.` });
      list.append(emptyHint);
    } else if (blocks.length && emptyHint) { emptyHint.remove(); emptyHint = null; }
    if (nearBottom) list.scrollTop = list.scrollHeight;
  };
  const transcriptListener = { update: (changed) => transcriptChanged(() => blocks.update(changed)) };
  // A whole transcript (the first draw, or a new one from the kernel): compared with what is shown.
  const renderTranscript = () => {
    transcript.views.delete(transcriptListener);
    transcript = transcriptOf(model);
    transcript.views.add(transcriptListener);
    transcriptChanged(() => blocks.reset());
  };
  model.on("change:transcript", renderTranscript);

  // Composer: Ctrl/Cmd+Enter sends, Escape stops; disabled with the reason when it cannot send.
  const textarea = h("textarea", { class: "cw-input-text", rows: 3, "aria-label": "Prompt" });
  const sendBtn = h("button", { class: "cw-btn cw-primary cw-send", title: "Send (Ctrl+Enter)" }, "Send");
  const stopBtn = h("button", { class: "cw-btn cw-stop", title: "Stop (Escape)" }, "Stop");
  const hint = h("div", { class: "cw-hint", role: "status" });
  composer.append(textarea, h("div", { class: "cw-composer-actions" }, stopBtn, sendBtn));
  composer.after(hint);
  const submit = () => {
    const text = textarea.value.trim();
    if (!text || textarea.disabled) return;
    send({ type: "send", text });
    textarea.value = "";
  };
  sendBtn.addEventListener("click", submit);
  stopBtn.addEventListener("click", () => send({ type: "stop" }));
  let lastTyping = 0;
  textarea.addEventListener("keydown", (e) => {
    e.stopPropagation(); // keep JupyterLab's notebook shortcuts out of the prompt box
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
    else if (e.key === "Escape") { e.preventDefault(); if (model.get("working")) send({ type: "stop" }); }
    else if (!MODIFIER_KEYS.has(e.key) && Date.now() - lastTyping > 5000) {
      lastTyping = Date.now();
      send({ type: "typing" }); // starts the sandbox while the prompt is being written
    }
  });

  function renderComposer() {
    const s = model.get("session") || {};
    const status = model.get("sandbox_status");
    const conn = (model.get("connection") || {}).state;
    const busy = model.get("working");
    // Disabled only when a prompt cannot be sent. While the sandbox starts (typing starts it)
    // the box stays usable: a prompt sent then is queued by the hub and runs once it is ready.
    let blocked = null;
    if (!s.id) blocked = "Open or create a session to send a prompt";
    else if (s.archived) blocked = "This session is archived";
    let note = null;
    if (!blocked && status === "spawning") note = "Starting the sandbox… a prompt sent now runs once it is ready";
    else if (!blocked && status === "cloning") note = "Cloning the repository… a prompt sent now runs once it is ready";
    else if (!blocked && conn === "failed") note = "Disconnected from the server: sending reconnects";
    textarea.disabled = blocked !== null;
    textarea.placeholder = blocked || (busy ? "Queue a follow-up… (Ctrl+Enter)"
      : status === "failed" ? "The sandbox failed; sending starts a fresh one (Ctrl+Enter)" : "Ask Claude… (Ctrl+Enter to send, Escape to stop)");
    sendBtn.disabled = textarea.disabled;
    stopBtn.hidden = !busy;
    hint.textContent = note || "";
    hint.hidden = !note;
    working.replaceChildren();
    if (busy) working.append(h("span", { class: "cw-spinner" }), h("span", { text: "Claude is working…" }));
    const err = model.get("error");
    banner.hidden = !err;
    banner.textContent = err || "";
  }

  // Running tool rows show their elapsed time, ticking.
  const ticker = setInterval(() => {
    const now = Date.now() / 1000;
    for (const block of ticking) {
      for (const span of block.querySelectorAll("[data-started]")) {
        const started = parseFloat(span.dataset.started);
        if (started) span.textContent = `${Math.max(0, now - started).toFixed(0)} s`;
      }
    }
  }, 1000);

  // While shown, an open or draft pull request's state is asked for every pr_poll_interval_s: the
  // kernel asks the server, which refreshes it from the git host and says so in an event.
  let poll = null;
  const pollNow = () => {
    const state = (model.get("pull_request") || {}).state;
    if (state === "open" || state === "draft") send({ type: "pr_poll" });
  };
  const schedulePoll = () => {
    clearInterval(poll);
    poll = setInterval(pollNow, Math.max(0.2, model.get("pr_poll_interval_s") || 60) * 1000);
  };
  schedulePoll();
  pollNow(); // a pull request merged while the notebook was closed shows merged at once
  model.on("change:pr_poll_interval_s", schedulePoll);

  const all = () => { renderHeader(); renderSessionChanges(); redrawPanel(); renderTranscript(); renderComposer(); };
  for (const name of ["session", "connection", "sandbox_status", "sandbox_detail", "isolation", "pull_request"]) {
    model.on(`change:${name}`, () => { renderHeader(); renderComposer(); });
  }
  model.on("change:changes_total", () => {
    for (const key of [...diffs.keys()]) if (key.startsWith("\n")) diffs.delete(key); // the branch moved
    renderSessionChanges();
  });
  model.on("change:session", renderSessionChanges);
  model.on("change:pr_form", () => { const form = panel.querySelector(".cw-pr-form"); if (form) form.cwUpdate(); });
  for (const name of ["working", "error"]) model.on(`change:${name}`, renderComposer);
  for (const name of ["view", "sessions", "recent_repos"]) model.on(`change:${name}`, redrawPanel);
  all();
  return () => { transcript.views.delete(transcriptListener); clearInterval(ticker); clearInterval(poll); model.off("msg:custom", onDiff); model.off("msg:custom", onGithub); };
}

export default { initialize, render };
