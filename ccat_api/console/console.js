// The operator console: reads the REST API and the WebSocket streams like any client.
// The token stays in this tab's sessionStorage and goes only into Authorization headers;
// WebSockets are opened with single-use tickets, so no secret ever appears in a URL.
"use strict";

const TOKEN_KEY = "ccat-console-token";
// Set when this browser went to the GitHub login: only then is there a refresh cookie to
// try (it is HttpOnly, so the page cannot see it, and a blind try logs a failed request).
const GITHUB_KEY = "ccat-console-github";
const RECENT = 50;
const STOP_CODES = new Set([4401, 4403]); // credentials refused: reconnecting cannot help

const state = { token: null, canOperate: false, streams: [], stopped: false };
const $ = (id) => document.getElementById(id);

// --- formatting -------------------------------------------------------------------------

function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function bytes(value) {
  if (value === null || value === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${value.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function when(epochSeconds) {
  if (!epochSeconds) return "–";
  return new Date(epochSeconds * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function rate(value) {
  return value === null || value === undefined ? "–" : value.toFixed(1);
}

function setTile(id, level) {
  const tile = $(id);
  tile.classList.remove("ok", "warn", "bad");
  if (level) tile.classList.add(level);
}

function showError(message) {
  $("error").textContent = message || "";
}

function notice(message) {
  $("notice").textContent = message || "";
}

// --- REST -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 204) return null;
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.detail || response.statusText);
  return body;
}

// --- sign in ------------------------------------------------------------------------------

async function sessionToken() {
  // A GitHub login leaves a refresh cookie; it buys a short-lived access token.
  if (!localStorage.getItem(GITHUB_KEY)) return null;
  try {
    const response = await fetch("/auth/refresh", { method: "POST", credentials: "same-origin" });
    if (response.ok) return (await response.json()).access_token || null;
  } catch {
    // unreachable gateway: fall through to the token form
  }
  localStorage.removeItem(GITHUB_KEY);
  return null;
}

async function signIn(token) {
  state.token = token;
  try {
    const me = await api("/auth/me");
    sessionStorage.setItem(TOKEN_KEY, token);
    state.canOperate = me.permissions.includes("operate:buffer");
    $("who").textContent = `${me.login} (${me.role})`;
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    $("dashboard").hidden = false;
    await startDashboard();
  } catch (error) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(error.status === 401 ? "That token was refused." : String(error.message));
  }
}

function showSignIn(message) {
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  $("token-input").focus();
}

function signOut() {
  state.stopped = true;
  for (const ws of state.streams) ws.close(1000, "signed out");
  state.streams = [];
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(GITHUB_KEY);
  $("who").textContent = "";
  setConnection("idle", "not connected");
  showSignIn("");
}

// --- site status ----------------------------------------------------------------------------

function renderStatus(status) {
  $("site-name").textContent = status.site;
  $("site-type").textContent = status.site_type;
  const main = status.main || {};
  $("main-state").textContent = main.ok ? "reachable" : main.ok === false ? "unreachable" : "unknown";
  $("main-detail").textContent = main.ok ? `${main.latency_ms ?? "–"} ms` : main.error || "";
  setTile("tile-main", main.ok ? "ok" : "bad");

  const buffer = status.buffer;
  if (buffer) {
    $("buffer-depth").textContent = String(buffer.depth);
    $("oldest-age").textContent = age(buffer.oldest_pending_age_s);
    setTile("tile-buffer", buffer.depth === 0 ? "ok" : "warn");
    const stalled = buffer.depth > 0 && buffer.estimated_drain_s === null;
    $("drain-estimate").textContent =
      buffer.depth === 0 ? "drained" : stalled ? "stalled" : age(buffer.estimated_drain_s);
    setTile("tile-drain", stalled ? "bad" : buffer.depth > 0 ? "warn" : "ok");
    $("accept-rate").textContent = rate(buffer.accept_rate_tx_s);
    $("drain-rate").textContent = rate(buffer.drain_rate_tx_s);
    $("awaiting-replica").textContent = String(buffer.awaiting_replica);
    $("dead-count").textContent = String(buffer.dead_letters);
    setTile("tile-dead", buffer.dead_letters ? "bad" : "ok");
  } else {
    for (const id of ["buffer-depth", "drain-estimate", "awaiting-replica", "dead-count"]) {
      $(id).textContent = "–";
    }
    notice("This site applies writes directly to main: it keeps no buffer.");
  }

  const replica = status.replica;
  if (replica && replica.ok) {
    $("apply-lag-s").textContent = age(replica.apply_lag_s);
    $("receive-lag").textContent = bytes(replica.receive_lag_bytes);
    $("apply-lag").textContent = bytes(replica.apply_lag_bytes);
    $("wan-delay").textContent = age(replica.wan_delay_s);
    setTile("tile-replica", (replica.apply_lag_s || 0) > 5 ? "warn" : "ok");
  } else if (replica) {
    $("apply-lag-s").textContent = "down";
    setTile("tile-replica", "bad");
  } else {
    $("apply-lag-s").textContent = "–";
  }

  const processor = status.processor || {};
  $("processor-state").textContent = processor.state || "–";
  $("processor-detail").textContent = processor.error || processor.consumer || "";
  setTile(
    "tile-processor",
    ["idle", "applying"].includes(processor.state) ? "ok" : processor.state === "backoff" ? "warn" : "bad",
  );
}

// --- transactions -------------------------------------------------------------------------

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function stateBadge(td, value) {
  td.textContent = "";
  const span = document.createElement("span");
  span.className = `state state-${value}`;
  span.textContent = value;
  td.appendChild(span);
}

function transactionRow(tx) {
  const row = document.createElement("tr");
  row.dataset.txId = tx.tx_id;
  cell(row, tx.tx_id, "mono");
  stateBadge(row.insertCell(), tx.state);
  cell(row, tx.seq ? String(tx.seq) : "–");
  cell(row, when(tx.created_at));
  cell(row, when(tx.applied_at));
  cell(row, when(tx.visible_at));
  cell(row, tx.lsn ? String(tx.lsn) : "–", "mono");
  row.dataset.state = tx.state;
  return row;
}

function renderTransactions(items) {
  const body = $("transactions").tBodies[0];
  body.replaceChildren(...items.map(transactionRow));
  $("transactions-empty").hidden = items.length > 0;
}

function applyEvent(event) {
  const body = $("transactions").tBodies[0];
  let row = body.querySelector(`tr[data-tx-id="${CSS.escape(event.tx_id)}"]`);
  const at = event.at ? event.at / 1000 : null;
  if (!row) {
    row = transactionRow({
      tx_id: event.tx_id, state: event.state, seq: event.seq,
      created_at: event.state === "buffered" ? at : null, lsn: event.lsn,
    });
    body.prepend(row);
    while (body.rows.length > RECENT) body.deleteRow(body.rows.length - 1);
    $("transactions-empty").hidden = true;
  } else {
    stateBadge(row.cells[1], event.state);
    row.dataset.state = event.state;
    if (event.seq) row.cells[2].textContent = String(event.seq);
    if (event.state === "applied") row.cells[4].textContent = when(at);
    if (event.state === "visible") row.cells[5].textContent = when(at);
    if (event.lsn) row.cells[6].textContent = String(event.lsn);
  }
  row.classList.remove("fresh");
  void row.offsetWidth; // restart the highlight
  row.classList.add("fresh");
}

async function loadTransactions() {
  try {
    renderTransactions((await api(`/transactions?limit=${RECENT}`)).items);
  } catch (error) {
    if (error.status === 404) {
      renderTransactions([]);
      return;
    }
    throw error;
  }
}

// --- dead letters -------------------------------------------------------------------------

function deadLetterRow(tx) {
  const row = document.createElement("tr");
  row.dataset.txId = tx.tx_id;
  row.dataset.state = tx.state;
  cell(row, tx.tx_id, "mono");
  cell(row, String(tx.seq));
  cell(row, when(tx.failed_at));
  cell(row, tx.error_code || "", "mono");
  cell(row, tx.error || "", "error-text");
  const actions = cell(row, "", "actions");
  if (state.canOperate) {
    for (const action of ["retry", "discard"]) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.action = action;
      button.dataset.txId = tx.tx_id;
      button.textContent = action === "retry" ? "Retry" : "Discard";
      actions.appendChild(button);
    }
  }
  return row;
}

async function loadDeadLetters() {
  let items = [];
  try {
    items = (await api("/transactions?state=failed&limit=200")).items;
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  $("dead-letters").tBodies[0].replaceChildren(...items.map(deadLetterRow));
  $("dead-empty").hidden = items.length > 0;
  $("dead-count").textContent = String(items.length);
  setTile("tile-dead", items.length ? "bad" : "ok");
}

async function act(action, txId) {
  if (action === "discard" && !window.confirm(`Discard ${txId} for good?`)) return;
  try {
    const result = await api(`/transactions/${txId}/${action}`, { method: "POST" });
    notice(
      action === "retry"
        ? `Re-buffered ${result.retried.length} transaction(s): ${result.retried.join(", ")}`
        : `Discarded ${txId}`,
    );
    showError("");
  } catch (error) {
    showError(`Could not ${action} ${txId}: ${error.message}`);
  }
  await Promise.all([loadDeadLetters(), loadTransactions()]);
}

// --- streams ------------------------------------------------------------------------------

function setConnection(kind, text) {
  const element = $("connection");
  element.dataset.state = kind;
  element.textContent = text;
}

function liveCount() {
  return state.streams.filter((ws) => ws.readyState === WebSocket.OPEN).length;
}

function openStream(path, onFrame, onReconnect) {
  let delayMs = 500;
  const connect = async () => {
    if (state.stopped) return;
    let ticket;
    try {
      ticket = (await api("/api/ws/tickets", { method: "POST" })).ticket;
    } catch (error) {
      setConnection("reconnecting", `reconnecting (${error.message})`);
      setTimeout(connect, delayMs);
      delayMs = Math.min(delayMs * 2, 15000);
      return;
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}${path}?ticket=${encodeURIComponent(ticket)}`);
    state.streams.push(ws);
    ws.onopen = () => {
      delayMs = 500;
      setConnection("live", `live (${liveCount()} streams)`);
    };
    ws.onmessage = (message) => {
      try {
        onFrame(JSON.parse(message.data));
      } catch (error) {
        showError(`Could not show an update: ${error.message}`);
      }
    };
    ws.onclose = (closed) => {
      state.streams = state.streams.filter((other) => other !== ws);
      if (state.stopped) return;
      if (STOP_CODES.has(closed.code)) {
        setConnection("error", "refused");
        showError(`The gateway closed ${path}: ${closed.reason || closed.code}`);
        return;
      }
      setConnection("reconnecting", "reconnecting…");
      setTimeout(async () => {
        await onReconnect();
        connect();
      }, delayMs);
      delayMs = Math.min(delayMs * 2, 15000);
    };
  };
  connect();
}

function onTransactionFrame(frame) {
  if (frame.type === "resync") {
    loadTransactions();
    loadDeadLetters();
    return;
  }
  const events = frame.type === "event" ? [frame.event] : frame.type === "events" ? frame.events : [];
  for (const event of events) applyEvent(event);
  const deadLettersChanged = events.some(
    (e) => e.state === "failed" || e.state === "discarded" || e.retried,
  );
  if (frame.summarized) loadTransactions(); // a large batch: re-read rather than list it all
  if (deadLettersChanged) loadDeadLetters();
}

function onBufferFrame(frame) {
  if (frame.type === "snapshot" || frame.type === "update") renderStatus(frame.data);
}

async function startDashboard() {
  state.stopped = false;
  showError("");
  renderStatus(await api("/api/site/status"));
  await Promise.all([loadTransactions(), loadDeadLetters()]);
  const reloadAll = () => Promise.all([loadTransactions(), loadDeadLetters()]).catch(() => {});
  openStream("/api/ws/buffer", onBufferFrame, async () => {});
  openStream("/api/ws/transactions", onTransactionFrame, reloadAll);
}

// --- wiring ---------------------------------------------------------------------------------

window.addEventListener("unhandledrejection", (event) => {
  showError(`Error: ${event.reason && event.reason.message ? event.reason.message : event.reason}`);
});

document.addEventListener("DOMContentLoaded", async () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    $("token-input").value = "";
    if (token) signIn(token);
  });
  $("sign-out").addEventListener("click", signOut);
  $("github-login").addEventListener("click", () => localStorage.setItem(GITHUB_KEY, "1"));
  $("dead-letters").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) act(button.dataset.action, button.dataset.txId);
  });
  const token = sessionStorage.getItem(TOKEN_KEY) || (await sessionToken());
  if (token) signIn(token);
  else showSignIn("");
});
