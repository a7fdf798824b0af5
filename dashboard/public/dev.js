// Heimdall dashboard: the owners' migration page (Instance Clone and Legacy Import).
//
// The run record (GET /api/dev/migrations/{id}) is the truth; live progress arrives as
// owner events over the WebSocket gateway (docs/websocket.md) and is applied on top. After a
// reconnect the page resumes the owner stream from the last `seq` it saw, and refetches the
// record when the gateway says events were missed (`resume_gap`).

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "heimdall.token";
const SEQ_KEY = "heimdall.ownerSeq";
const EPOCH_KEY = "heimdall.epoch";

const state = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  ws: null,
  retry: 0,
  ownerSeq: Number(localStorage.getItem(SEQ_KEY)) || null,
  // The server's epoch the seq belongs to: after a restart that lost the history, the
  // server answers a resume from another epoch with resume_gap.
  epoch: localStorage.getItem(EPOCH_KEY),
  mode: "clone",
  run: null, // { id, mode, status, steps: Map(order -> step), completed, total }
};

const num = (n) => Number(n || 0).toLocaleString("en-US");

// ---- HTTP -----------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const err = new Error(data?.message || `the server answered ${r.status}`);
    err.code = data?.code;
    err.status = r.status;
    throw err;
  }
  return { status: r.status, data };
}

function showError(el, err) {
  el.textContent = err.code ? `${err.message} (${err.code})` : err.message;
  el.hidden = false;
}

// ---- Sign-in --------------------------------------------------------------------------

async function signIn(token) {
  state.token = token;
  try {
    await api("GET", "/api/dev/migrations");
  } catch (err) {
    state.token = "";
    localStorage.removeItem(TOKEN_KEY);
    $("console").hidden = true;
    $("sign-in").hidden = false;
    showError($("sign-in-error"), err);
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  $("sign-in").hidden = true;
  $("sign-in-error").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  await loadHistory();
  connect();
}

$("sign-in-form").addEventListener("submit", (e) => {
  e.preventDefault();
  signIn($("token").value.trim());
});

$("sign-out").addEventListener("click", async () => {
  // Signs the session out on the server too: a copied token stops working.
  await api("POST", "/api/auth/logout").catch(() => {});
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(SEQ_KEY);
  state.token = "";
  state.ws?.close(1000);
  location.reload();
});

// ---- Gateway --------------------------------------------------------------------------

function setGateway(text, cls) {
  const el = $("gateway");
  el.textContent = text;
  el.className = `pill ${cls || ""}`;
}

async function connect() {
  // The gateway on this page's own origin (`/ws`), so one HTTPS proxy serves both.
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  state.ws = ws;
  setGateway("connecting…");
  ws.onmessage = (m) => onFrame(ws, JSON.parse(m.data));
  ws.onclose = (e) => {
    if (state.ws !== ws) return;
    if (e.code === 4003 || e.code === 4004) {
      setGateway("signed out", "bad");
      showError($("sign-in-error"), new Error(e.code === 4004
        ? "Your session token expired: sign in with a new one."
        : "The gateway refused the session token: sign in with a new one."));
      $("sign-in").hidden = false;
      return;
    }
    reconnectLater();
  };
}

function reconnectLater() {
  setGateway("reconnecting…", "warn");
  const delay = Math.min(10000, 250 * 2 ** state.retry++);
  setTimeout(connect, delay);
}

function onFrame(ws, f) {
  switch (f.event) {
    case "hello":
      ws.send(JSON.stringify({ type: "auth", token: state.token, ...(state.ownerSeq ? { ownerSeq: state.ownerSeq, epoch: state.epoch } : {}) }));
      state.epoch = f.data.epoch;
      localStorage.setItem(EPOCH_KEY, f.data.epoch);
      return;
    case "authenticated":
      state.retry = 0;
      setGateway(f.data.owner ? "live" : "not an owner", f.data.owner ? "ok" : "bad");
      return;
    case "resume_gap":
      // Events were missed (or the seq belongs to an earlier run of the server): the
      // record is the truth, and the seq starts again from the stream's.
      state.ownerSeq = f.data.latestSeq || null;
      if (state.run) refreshRun(state.run.id);
      loadHistory();
      return;
    default:
      if (f.seq && !f.guildId) {
        state.ownerSeq = f.seq;
        localStorage.setItem(SEQ_KEY, String(f.seq));
      }
      if (f.event.startsWith("migration:")) onMigrationEvent(f.event.slice(10), f.data);
  }
}

// ---- Live progress --------------------------------------------------------------------

function onMigrationEvent(kind, e) {
  if (!state.run || state.run.id !== e.runId) {
    // A run started elsewhere (CLI, Discord, another tab) shows up here too.
    if (kind === "step_start" && (!state.run || isFinal(state.run.status))) {
      watch(e.runId);
    }
    if (kind === "complete" || kind === "error") loadHistory();
    return;
  }
  const run = state.run;
  run.completed = e.completed;
  run.total = e.total;
  const step = run.steps.get(e.step);
  switch (kind) {
    case "step_start":
      if (step) step.status = "running";
      break;
    case "step_progress":
      if (step) {
        step.status = "running";
        step.done = e.recordIndex;
        step.records = e.recordTotal;
      }
      break;
    case "step_complete":
      if (step) {
        Object.assign(step, countsOf(e.result), { status: "completed" });
        step.done = e.recordIndex ?? step.done;
        step.records = e.recordTotal ?? step.records;
      }
      break;
    case "complete":
    case "error":
      refreshRun(run.id);
      loadHistory();
      return;
  }
  renderRun();
}

function isFinal(status) {
  return ["completed", "failed", "cancelled"].includes(status);
}

// Per-step counts from a step result (clone: collections; legacy: the same shape).
function countsOf(step) {
  const cs = step?.collections || [];
  const sum = (f) => cs.reduce((a, c) => a + (c[f] || 0), 0);
  return {
    imported: sum("inserted") + sum("overwritten"),
    skipped: sum("skipped"),
    failed: sum("failed"),
    done: sum("processed"),
    records: sum("total"),
  };
}

async function watch(id) {
  state.run = { id, steps: new Map(), completed: 0, total: 0, status: "running" };
  $("run").hidden = false;
  $("plan").hidden = true;
  await refreshRun(id);
}

async function refreshRun(id) {
  let rec;
  try {
    rec = (await api("GET", `/api/dev/migrations/${encodeURIComponent(id)}`)).data;
  } catch (err) {
    showError($("form-error"), err);
    return;
  }
  if (!state.run || state.run.id !== id) return;
  const run = state.run;
  run.mode = rec.mode;
  run.status = rec.status;
  run.active = rec.active;
  run.record = rec;
  run.steps = new Map(rec.steps.map((s) => [s.order, {
    order: s.order, label: s.label, plugin: s.plugin, status: s.status, ...countsOf(s),
  }]));
  run.total = rec.steps.length;
  run.completed = rec.steps.filter((s) => s.status === "completed").length;
  renderRun();
}

function renderRun() {
  const run = state.run;
  $("run-title").textContent = run.mode === "legacy" ? "Legacy Import" : "Instance Clone";
  $("run-id").textContent = run.id;
  const interrupted = run.status === "running" && run.active === false;
  const status = interrupted ? "interrupted" : run.status;
  $("run-status").textContent = status;
  $("run-status").className = `pill ${statusClass(status, run.record)}`;
  $("run-bar").style.width = `${run.total ? (100 * run.completed) / run.total : 0}%`;
  const steps = [...run.steps.values()];
  const total = (f) => steps.reduce((a, s) => a + (s[f] || 0), 0);
  $("run-counts").textContent =
    `${run.completed} of ${run.total} steps · imported ${num(total("imported"))} · skipped ${num(total("skipped"))} · failed ${num(total("failed"))}`;
  $("cancel").hidden = !(run.status === "running" && !interrupted);
  $("resume").hidden = !(["failed", "cancelled"].includes(run.status) || interrupted);
  const note = $("run-note");
  note.hidden = !run.record?.message;
  note.textContent = run.record?.message ? `Reason: ${run.record.message}` : "";

  $("steps").replaceChildren(...steps.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.step = s.order;
    tr.dataset.status = s.status;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    const pct = s.records ? Math.min(100, (100 * (s.done || 0)) / s.records) : (s.status === "completed" ? 100 : 0);
    fill.style.width = `${pct}%`;
    bar.append(fill);
    const recs = document.createElement("td");
    recs.append(bar, document.createTextNode(` ${num(s.done)} / ${num(s.records)}`));
    tr.append(td(s.order), td(s.label), td(s.plugin), td(s.status), recs,
      td(num(s.imported)), td(num(s.skipped)), td(num(s.failed)));
    return tr;
  }));

  const rec = run.record;
  const finished = rec && isFinal(rec.status);
  $("result").hidden = !finished;
  if (finished) {
    const v = rec.verification;
    if (v) {
      const checked = v.collections.reduce((a, c) => a + c.source, 0);
      const matching = v.collections.reduce((a, c) => a + c.matching, 0);
      $("verification").textContent = v.ok
        ? `Verified: ${num(matching)} of ${num(checked)} source documents are in this database with the same content.`
        : `Verification failed: ${v.collections.filter((c) => c.missing > 0 || !c.ok).slice(0, 5).map((c) =>
            c.missing > 0
              ? `${c.name}: ${num(c.missing)} of ${num(c.source)} missing${(c.firstMissing || []).length ? ` (first: ${c.firstMissing.slice(0, 3).join(", ")})` : ""}`
              : `${c.name}: ${num(c.differing)} of ${num(c.source)} with other content`).join("; ")}. Resume the run to copy what is missing.`;
    } else {
      $("verification").textContent = rec.status === "completed" ? "" : "Not verified: the run did not finish.";
    }
    $("errors").replaceChildren(...(rec.errors || []).slice(0, 50).map((e) => {
      const li = document.createElement("li");
      li.textContent = `${e.collection} ${e.sourceId}: ${e.reason}`;
      return li;
    }));
  }
}

function statusClass(status, rec) {
  if (status === "completed") return rec && rec.failed > 0 ? "warn" : "ok";
  if (status === "running") return "running";
  if (status === "failed") return "bad";
  return "warn";
}

function td(text) {
  const el = document.createElement("td");
  el.textContent = String(text ?? "");
  return el;
}

$("cancel").addEventListener("click", async () => {
  $("cancel").disabled = true;
  try {
    await api("POST", `/api/dev/migrations/${encodeURIComponent(state.run.id)}/cancel`);
  } catch (err) {
    showError($("form-error"), err);
  } finally {
    $("cancel").disabled = false;
  }
});

$("resume").addEventListener("click", async () => {
  const id = state.run.id;
  $("resume").disabled = true;
  try {
    await api("POST", `/api/dev/migrations/${encodeURIComponent(id)}/resume`);
    await watch(id);
  } catch (err) {
    showError($("form-error"), err);
  } finally {
    $("resume").disabled = false;
  }
});

// ---- Forms ----------------------------------------------------------------------------

for (const tab of document.querySelectorAll("[role=tab]")) {
  tab.addEventListener("click", () => {
    state.mode = tab.dataset.mode;
    for (const t of document.querySelectorAll("[role=tab]")) {
      t.setAttribute("aria-selected", String(t === tab));
    }
    $("clone-form").hidden = state.mode !== "clone";
    $("legacy-form").hidden = state.mode !== "legacy";
    $("form-error").hidden = true;
  });
}

for (const form of document.querySelectorAll(".migration-form")) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const mode = form.dataset.mode;
    const body = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === "checkbox") body[el.name] = el.checked;
      else if (el.value.trim()) body[el.name] = el.value.trim();
    }
    $("form-error").hidden = true;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { status, data } = await api("POST", `/api/dev/migrations/${mode}`, body);
      if (status === 200) renderPlan(mode, data);
      else await watch(data.runId);
      loadHistory();
    } catch (err) {
      showError($("form-error"), err);
    } finally {
      button.disabled = false;
    }
  });
}

function renderPlan(mode, plan) {
  $("plan").hidden = false;
  $("run").hidden = true;
  const head = mode === "clone"
    ? ["Step", "What", "Found", "Insert", "Skip", "Remap", "Invalid", "Dangling"]
    : ["Step", "What", "Found", "Import", "Skip", "Fail"];
  const tr = document.createElement("tr");
  tr.append(...head.map((h) => Object.assign(document.createElement("th"), { textContent: h })));
  $("plan-head").replaceChildren(tr);
  $("plan-body").replaceChildren(...plan.steps.map((s) => {
    const row = document.createElement("tr");
    if (mode === "clone") {
      const sum = (f) => s.collections.reduce((a, c) => a + (c[f] || 0), 0);
      row.append(td(s.order), td(s.label), td(num(sum("found"))), td(num(sum("toInsert") + sum("toOverwrite"))),
        td(num(sum("toSkip"))), td(num(sum("toRemap"))), td(num(sum("invalid"))), td(num(sum("dangling"))));
    } else {
      row.append(td(s.order), td(s.label), td(num(s.found)), td(num(s.toImport)), td(num(s.toSkip)), td(num(s.errors)));
    }
    return row;
  }));
}

async function loadHistory() {
  let runs;
  try {
    runs = (await api("GET", "/api/dev/migrations")).data;
  } catch {
    return;
  }
  $("history").replaceChildren(...runs.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.run = r.runId;
    const open = document.createElement("button");
    open.textContent = "Open";
    open.className = "link";
    open.addEventListener("click", () => watch(r.runId));
    const cell = document.createElement("td");
    cell.append(open);
    tr.append(td(r.runId), td(r.mode), td(r.status), td(num(r.imported)),
      td(r.startedAt ? new Date(r.startedAt).toLocaleString() : ""), cell);
    return tr;
  }));
}

if (state.token) signIn(state.token);
