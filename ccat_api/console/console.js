// The operator console: reads the REST API and the WebSocket streams like any client.
// The token stays in this tab's sessionStorage and goes only into Authorization headers;
// WebSockets are opened with single-use tickets, so no secret ever appears in a URL.
// A GitHub login gives a short-lived access token (minutes) and an HttpOnly refresh cookie;
// the page renews the token before it expires, and again whenever the gateway answers 401.
// Every URL is relative to the gateway's root, found from this script's own address, so the
// page works under any prefix a reverse proxy serves the gateway at (/ccat/console).
"use strict";

// This script is <root>/console/console.js.
const ROOT = new URL("..", document.currentScript.src);

const TOKEN_KEY = "ccat-console-token";
// "github" when the token in this tab came from /auth/refresh: only then may a 401 be cured
// by refreshing.
const VIA_KEY = "ccat-console-via";
// Set when this browser went to the GitHub login: only then is there a refresh cookie to
// try (it is HttpOnly, so the page cannot see it, and a blind try logs a failed request).
const GITHUB_KEY = "ccat-console-github";
const REFRESH_LOCK = "ccat-console-refresh";
const RENEW_AT = 0.8; // of the access token's lifetime
const RECENT = 50;
const DEAD_LIMIT = 200;
const STOP_CODES = new Set([4401, 4403]); // credentials refused: reconnecting cannot help
// While the status stream is down (a gateway restarting, Redis down so no ticket can be
// redeemed) the tiles are read over REST this often, so they never go silently stale.
const STATUS_POLL_MS = 2000;
// Samples further apart than this many periods have a gap between them (the site's Redis was
// away, or no gateway ran): drawn as a break in the line, not as a straight one across.
const GAP_PERIODS = 2.5;
const CHART_HEIGHT = 140;
const CHARTS = [
  { id: "chart-depth", series: [{ key: "depth", label: "buffered", color: "#b54708" }] },
  {
    id: "chart-rates",
    series: [
      { key: "accept_rate_tx_s", label: "accept/s", color: "#175cd3" },
      { key: "drain_rate_tx_s", label: "drain/s", color: "#12805c" },
    ],
  },
  { id: "chart-age", series: [{ key: "oldest_pending_age_s", label: "oldest", color: "#c01048" }] },
  { id: "chart-lag", series: [{ key: "replica_apply_lag_s", label: "apply lag", color: "#6941c6" }] },
];

const state = {
  token: null,
  session: false, // the token came from a GitHub session
  signedIn: false, // the gateway accepted the token at least once
  canOperate: false,
  streams: [],
  stopped: false,
  refreshing: null, // the refresh in flight, shared by everyone who needs one
  renewTimer: null,
  statusPoll: null,
  bufferStreamOpen: false,
  bufferNotice: "", // what renderStatus last put in the notice area
  history: {
    samples: [], // as the gateway sampled them, oldest first
    live: null, // the current status, drawn as the newest point
    intervalS: 10,
    retentionS: 6 * 3600,
    charts: [],
    timer: null,
    run: 0, // which sign-in's polling is current (an older one may still be awaiting)
  },
};
const $ = (id) => document.getElementById(id);

// A gateway path ("api/site/status") as a URL under the root the page was served from.
function url(path) {
  return new URL(path, ROOT);
}

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

function short(value) {
  if (value === null || value === undefined) return "–";
  const size = Math.abs(value);
  if (size >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (size >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (size >= 100 || Number.isInteger(value)) return value.toFixed(0);
  return value.toFixed(size >= 10 ? 1 : 2);
}

function span(seconds) {
  return seconds % 3600 === 0 ? `${seconds / 3600} h` : age(seconds);
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
  const send = (token) => {
    const headers = { ...(options.headers || {}) };
    if (token) headers.Authorization = `Bearer ${token}`;
    return fetch(url(path), { ...options, headers, credentials: "same-origin" });
  };
  const sent = state.token;
  let response = await send(sent);
  if (response.status === 401 && sent && !state.stopped) {
    // Once: with the token that replaced ours while this was out, else with a fresh one.
    const renewed = state.token !== sent ? state.token : state.session ? await renewSession() : null;
    if (renewed) response = await send(renewed);
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => ({}));
  const detail = body.detail || response.statusText;
  if (response.status === 401 && sent && state.token !== null && !state.stopped) {
    credentialsRefused(detail);
  }
  if (!response.ok) throw new ApiError(response.status, detail);
  return body;
}

// --- sign in ------------------------------------------------------------------------------

async function refreshOnce() {
  // The refresh token rotates on every use: two refreshes with one cookie would spend it
  // twice and the second would fail. So this tab's callers share one refresh, and tabs of
  // this origin take turns (the second then sends the cookie the first one received).
  let answer;
  try {
    answer = await fetch(url("auth/refresh"), { method: "POST", credentials: "same-origin" });
  } catch (error) {
    return { token: null, why: `the gateway did not answer (${error.message})` };
  }
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok || !body.access_token) {
    return { token: null, status: answer.status, why: body.detail || answer.statusText };
  }
  return { token: body.access_token, expiresIn: body.expires_in };
}

function refreshSession() {
  if (!state.refreshing) {
    const attempt = navigator.locks
      ? navigator.locks.request(REFRESH_LOCK, refreshOnce)
      : refreshOnce();
    state.refreshing = attempt.finally(() => {
      state.refreshing = null;
    });
  }
  return state.refreshing;
}

function scheduleRenewal(expiresInS) {
  clearTimeout(state.renewTimer);
  state.renewTimer = null;
  if (!expiresInS || expiresInS <= 0) return;
  // Renewing ahead keeps requests and reconnects free of 401s; a late timer (a background
  // tab, a sleeping laptop) is covered by the 401 path in api().
  state.renewTimer = setTimeout(renewAhead, expiresInS * RENEW_AT * 1000);
}

async function renewAhead() {
  if (!state.session || state.stopped) return;
  const result = await refreshSession();
  if (!state.session || state.stopped) return;
  if (result.token) {
    adoptToken(result);
  } else if (result.status === 401) {
    sessionEnded(result);
  } else {
    // Main unreachable (a secondary site in a WAN outage) or a gateway restart: the token
    // still works for a while; try again, and let a 401 decide when it really has expired.
    state.renewTimer = setTimeout(renewAhead, 10_000);
  }
}

function adoptToken(result) {
  if (state.token === result.token) return;
  state.token = result.token;
  sessionStorage.setItem(TOKEN_KEY, result.token);
  scheduleRenewal(result.expiresIn);
}

// Seconds a kept access token has left, from its own claims (page clock: only a hint).
function remainingS(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).exp - Date.now() / 1000;
  } catch {
    return null;
  }
}

// A fresh access token for this GitHub session, or null once the session is over (then the
// dashboard stops and the sign-in form says why).
async function renewSession() {
  const result = await refreshSession();
  if (!state.session) return null; // signed out meanwhile
  if (result.token) {
    adoptToken(result);
    return result.token;
  }
  sessionEnded(result);
  return null;
}

function sessionEnded(result) {
  stopDashboard(renewalFailure(result));
}

function renewalFailure(result) {
  if (result.status === 401) {
    localStorage.removeItem(GITHUB_KEY); // the cookie is spent or the session is over
    return `Your GitHub session has ended (${result.why}). Log in with GitHub again.`;
  }
  if (result.status === 503) {
    return (
      `Your GitHub session could not be renewed: ${result.why}. Renewing needs the main ` +
      "database: sign in with an API token, or log in with GitHub again once main is back."
    );
  }
  return `Your GitHub session could not be renewed (${result.why}). Sign in again.`;
}

function credentialsRefused(detail) {
  if (state.session) {
    sessionEnded({ status: 401, why: detail });
  } else if (state.signedIn) {
    stopDashboard(`The gateway no longer accepts this token (${detail}). Sign in again.`);
  } else {
    stopDashboard("That token was refused.");
  }
}

async function resumeSession() {
  // A GitHub login leaves a refresh cookie; it buys a short-lived access token.
  if (!localStorage.getItem(GITHUB_KEY)) {
    showSignIn("");
    return;
  }
  state.session = true;
  const result = await refreshSession();
  if (result.token) {
    scheduleRenewal(result.expiresIn);
    signIn(result.token, true);
    return;
  }
  state.session = false;
  // Refused: the login is simply over (nothing to say); anything else is worth saying.
  const message = renewalFailure(result);
  showSignIn(result.status === 401 ? "" : message);
}

async function signIn(token, viaSession) {
  state.token = token;
  state.session = viaSession;
  state.signedIn = false;
  state.stopped = false;
  try {
    const me = await api("auth/me");
    state.signedIn = true;
    sessionStorage.setItem(TOKEN_KEY, state.token); // renewed, maybe, on the way
    sessionStorage.setItem(VIA_KEY, viaSession ? "github" : "token");
    if (viaSession && state.renewTimer === null) scheduleRenewal(remainingS(state.token));
    state.canOperate = me.permissions.includes("operate:buffer");
    $("who").textContent = `${me.login} (${me.role})`;
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    $("dashboard").hidden = false;
    await startDashboard();
  } catch (error) {
    if (state.stopped) return; // refused: the sign-in form already says why
    stopDashboard(String(error.message));
  }
}

function showSignIn(message) {
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  $("token-input").focus();
}

// Stop everything that runs on the current credentials and go back to the sign-in form.
function stopDashboard(message) {
  state.stopped = true;
  for (const ws of state.streams) ws.close(1000, "signed out");
  state.streams = [];
  state.token = null;
  state.session = false;
  state.signedIn = false;
  clearTimeout(state.renewTimer);
  state.renewTimer = null;
  clearInterval(state.statusPoll);
  state.statusPoll = null;
  clearTimeout(state.history.timer);
  state.history.timer = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(VIA_KEY);
  $("who").textContent = "";
  setConnection("idle", "not connected");
  showSignIn(message);
}

async function signOut() {
  if (state.session && state.token) {
    // End the session (and its refresh cookie) rather than leave it usable on this browser.
    await api("auth/logout", { method: "POST" }).catch(() => {});
  }
  localStorage.removeItem(GITHUB_KEY);
  stopDashboard("");
}

// --- site status ----------------------------------------------------------------------------

// The status stream's own line in the notice area: replaced or cleared as the status
// changes, without wiping what an operator's action reported.
function bufferNotice(message) {
  if (message === state.bufferNotice) return;
  if (!message && $("notice").textContent !== state.bufferNotice) {
    state.bufferNotice = "";
    return;
  }
  state.bufferNotice = message;
  notice(message);
}

function renderStatus(status) {
  renderLivePoint(status);
  $("site-name").textContent = status.site;
  $("site-type").textContent = status.site_type;
  const main = status.main || {};
  $("main-state").textContent = main.ok ? "reachable" : main.ok === false ? "unreachable" : "unknown";
  $("main-detail").textContent = main.ok ? `${main.latency_ms ?? "–"} ms` : main.error || "";
  setTile("tile-main", main.ok ? "ok" : "bad");

  const buffer = status.buffer;
  const redis = status.redis;
  // A restarted worker loop or a Redis found not durable: said while the figures look calm.
  const degraded = (status.degraded || []).map((reason) => `Degraded: ${reason}.`);
  if (buffer) bufferNotice(degraded.join(" "));
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
    renderDeadCount(buffer.dead_letters);
    setTile("tile-awaiting", null);
  } else if (redis && !redis.ok && status.site_type === "secondary") {
    // Stale numbers would look like a calm buffer: say plainly that nobody can tell now.
    for (const id of ["buffer-depth", "drain-estimate", "awaiting-replica", "dead-count"]) {
      $(id).textContent = "unavailable";
    }
    for (const id of ["oldest-age", "accept-rate", "drain-rate"]) $(id).textContent = "–";
    for (const id of ["tile-buffer", "tile-drain", "tile-awaiting", "tile-dead"]) setTile(id, "bad");
    bufferNotice(
      `Buffer unavailable: ${redis.error || "Redis does not answer"}. Critical writes are ` +
        "refused (503) until it is back.",
    );
  } else {
    for (const id of ["buffer-depth", "drain-estimate", "awaiting-replica", "dead-count"]) {
      $(id).textContent = "–";
    }
    bufferNotice("This site applies writes directly to main: it keeps no buffer.");
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

// --- history --------------------------------------------------------------------------------
// The site status over the last hours, sampled by the gateway (so every operator sees the
// same charts, and a reload keeps them): read once, then the new samples every period. The
// current status from the stream is drawn as the newest point, so the charts move each second.

function sampleOf(status) {
  const buffer = status.buffer || {};
  const replica = status.replica && status.replica.ok ? status.replica : {};
  return {
    at: status.sampled_at,
    depth: buffer.depth ?? null,
    oldest_pending_age_s: buffer.oldest_pending_age_s ?? null,
    accept_rate_tx_s: buffer.accept_rate_tx_s ?? null,
    drain_rate_tx_s: buffer.drain_rate_tx_s ?? null,
    replica_apply_lag_s: replica.apply_lag_s ?? null,
  };
}

function figure(point, key) {
  // An empty buffer has no oldest write: its age is drawn as 0, not as a gap in the line.
  if (key === "oldest_pending_age_s" && point.depth === 0) return 0;
  return point[key] ?? null;
}

function chartData(series) {
  const history = state.history;
  const points = [...history.samples];
  const last = points[points.length - 1];
  if (history.live && (!last || history.live.at > last.at)) points.push(history.live);
  const xs = [];
  const columns = series.map(() => []);
  let previous = null;
  for (const point of points) {
    if (previous && point.at - previous.at > GAP_PERIODS * history.intervalS) {
      xs.push(previous.at + history.intervalS);
      for (const column of columns) column.push(null);
    }
    xs.push(point.at);
    series.forEach((one, i) => columns[i].push(figure(point, one.key)));
    previous = point;
  }
  return [xs, ...columns];
}

function chartWidth(element) {
  return Math.max(240, element.clientWidth - 20);
}

function makeCharts() {
  if (state.history.charts.length || typeof uPlot === "undefined") return;
  const axis = { stroke: "#667085", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e3e6eb" } };
  for (const chart of CHARTS) {
    const element = $(chart.id);
    const options = {
      width: chartWidth(element),
      height: CHART_HEIGHT,
      // The tables say UTC; so do the charts.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
      axes: [axis, { ...axis, size: 48, values: (_u, splits) => splits.map(short) }],
      series: [
        { value: (_u, at) => (at === null ? "–" : when(at)) },
        ...chart.series.map((one) => ({
          label: one.label,
          stroke: one.color,
          fill: `${one.color}1a`,
          width: 1.5,
          value: (_u, value) => short(value),
        })),
      ],
    };
    const plot = new uPlot(options, chartData(chart.series), element);
    state.history.charts.push({ plot, chart, element });
  }
}

function drawHistory() {
  for (const { plot, chart } of state.history.charts) plot.setData(chartData(chart.series));
}

function renderLivePoint(status) {
  const secondary = status.site_type === "secondary";
  // A main site keeps no buffer and has no replica: nothing to chart.
  $("history").hidden = !secondary;
  if (!secondary) return;
  makeCharts();
  state.history.live = sampleOf(status);
  const buffer = status.buffer;
  $("history-drain").textContent = !buffer
    ? "–"
    : buffer.depth === 0
      ? "0 s (empty)"
      : buffer.estimated_drain_s === null
        ? "– (nothing drains)"
        : `${age(buffer.estimated_drain_s)} at ${rate(buffer.drain_rate_tx_s)}/s`;
  drawHistory();
}

async function loadHistory(run) {
  const history = state.history;
  const last = history.samples[history.samples.length - 1];
  const page = await api(last ? `api/site/history?since=${last.at}` : "api/site/history");
  if (run !== history.run) return; // signed out (or in again) meanwhile
  history.intervalS = page.interval_s;
  history.retentionS = page.retention_s;
  history.samples.push(...page.samples.filter((sample) => !last || sample.at > last.at));
  const oldest = Date.now() / 1000 - history.retentionS;
  while (history.samples.length && history.samples[0].at < oldest) history.samples.shift();
  $("history").dataset.samples = String(history.samples.length);
  $("history-span").textContent = span(history.retentionS);
  drawHistory();
}

function startHistory() {
  const history = state.history;
  clearTimeout(history.timer);
  history.samples = [];
  history.live = null;
  const run = ++history.run;
  const poll = async () => {
    if (state.stopped || run !== history.run) return;
    try {
      await loadHistory(run);
      $("history-note").textContent = "";
    } catch (error) {
      if (state.stopped || run !== history.run) return;
      $("history-note").textContent = `(not updated: ${error.message})`;
    }
    if (run === history.run) {
      history.timer = setTimeout(poll, Math.max(1, history.intervalS) * 1000);
    }
  };
  poll();
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
    renderTransactions((await api(`transactions?limit=${RECENT}`)).items);
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
  const error = cell(row, tx.error || "", "error-text");
  if (tx.conflict) error.appendChild(conflictVersions(tx.conflict));
  const actions = cell(row, "", "actions");
  if (state.canOperate) {
    // A conflict is resolved one way or the other: a plain retry would meet it again.
    const offered = tx.conflict ? ["apply-anyway", "discard"] : ["retry", "discard"];
    for (const action of offered) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.action = action;
      button.dataset.txId = tx.tx_id;
      button.textContent = ACTION_LABELS[action];
      actions.appendChild(button);
    }
  }
  return row;
}

const ACTION_LABELS = { retry: "Retry", "apply-anyway": "Apply anyway", discard: "Discard" };

function conflictVersions(conflict) {
  // Both versions side by side: main's row now, and what the site's update would change.
  const versions = document.createElement("div");
  versions.className = "conflict";
  const sides = [
    ["conflict-main", `main now (version ${conflict.main_version})`, conflict.main],
    ["conflict-change", `this site's change (based on version ${conflict.base_version})`,
      conflict.change],
  ];
  for (const [name, title, values] of sides) {
    const side = document.createElement("figure");
    side.className = name;
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    const body = document.createElement("pre");
    body.textContent = JSON.stringify(values, null, 1);
    side.append(caption, body);
    versions.appendChild(side);
  }
  return versions;
}

function renderDeadCount(total) {
  // Always the site's true count (the status stream's, or the listing's total), never the
  // length of the capped list, so the tile does not flip between two numbers.
  $("dead-count").textContent = total === null ? "–" : String(total);
  setTile("tile-dead", total === null ? null : total ? "bad" : "ok");
}

async function loadDeadLetters() {
  let page = { items: [], total: null };
  try {
    page = await api(`transactions?state=failed&limit=${DEAD_LIMIT}`);
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  const items = page.items;
  $("dead-letters").tBodies[0].replaceChildren(...items.map(deadLetterRow));
  $("dead-empty").hidden = items.length > 0;
  const more = page.total !== null && page.total > items.length;
  $("dead-more").hidden = !more;
  $("dead-more").textContent = more ? `Showing the newest ${items.length} of ${page.total}.` : "";
  renderDeadCount(page.total);
}

async function act(action, txId) {
  if (action === "discard" && !window.confirm(`Discard ${txId} for good?`)) return;
  try {
    const path =
      action === "apply-anyway"
        ? `transactions/${txId}/retry?apply_anyway=true`
        : `transactions/${txId}/${action}`;
    const result = await api(path, { method: "POST" });
    notice(
      action !== "discard"
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

function openStream(path, onFrame, onReconnect, onOpenChange = () => {}) {
  let delayMs = 500;
  const retryLater = (text) => {
    setConnection("reconnecting", text);
    setTimeout(connect, delayMs);
    delayMs = Math.min(delayMs * 2, 15000);
  };
  const connect = async () => {
    if (state.stopped) return;
    let ticket;
    try {
      ticket = (await api("api/ws/tickets", { method: "POST" })).ticket;
    } catch (error) {
      // Refused credentials stopped the dashboard (api() saw to it); anything else passes.
      if (!state.stopped) retryLater(`reconnecting (${error.message})`);
      return;
    }
    if (state.stopped) return;
    const ticketToken = state.token; // what the ticket was issued for (api() may have renewed)
    const address = url(path);
    address.protocol = address.protocol === "https:" ? "wss:" : "ws:";
    address.searchParams.set("ticket", ticket);
    const ws = new WebSocket(address);
    state.streams.push(ws);
    ws.onopen = () => {
      delayMs = 500;
      onOpenChange(true);
      setConnection("live", `live (${liveCount()} streams)`);
    };
    ws.onmessage = (message) => {
      try {
        onFrame(JSON.parse(message.data));
      } catch (error) {
        showError(`Could not show an update: ${error.message}`);
      }
    };
    ws.onclose = async (closed) => {
      state.streams = state.streams.filter((other) => other !== ws);
      onOpenChange(false);
      if (state.stopped) return;
      if (closed.code === 4401 && state.session) {
        // The access token expired between the ticket and the handshake: renew (unless that
        // happened meanwhile), go on.
        if (state.token === ticketToken && !(await renewSession())) return;
      } else if (STOP_CODES.has(closed.code)) {
        setConnection("error", "refused");
        showError(`The gateway closed ${path}: ${closed.reason || closed.code}`);
        return;
      }
      setConnection("reconnecting", "reconnecting…");
      setTimeout(async () => {
        if (state.stopped) return;
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
  renderStatus(await api("api/site/status"));
  startHistory();
  const reloadAll = () => Promise.all([loadTransactions(), loadDeadLetters()]);
  // The lists need the buffer; with Redis down the tiles (and the streams) still tell why.
  await reloadAll().catch((error) => {
    if (!state.stopped) showError(`Could not list transactions: ${error.message}`);
  });
  openStream("api/ws/buffer", onBufferFrame, async () => {}, (open) => {
    state.bufferStreamOpen = open;
  });
  clearInterval(state.statusPoll);
  state.statusPoll = setInterval(() => {
    if (state.stopped || state.bufferStreamOpen) return;
    api("api/site/status").then(renderStatus).catch(() => {});
  }, STATUS_POLL_MS);
  openStream("api/ws/transactions", onTransactionFrame, () => reloadAll().catch(() => {}));
}

// --- wiring ---------------------------------------------------------------------------------

window.addEventListener("unhandledrejection", (event) => {
  showError(`Error: ${event.reason && event.reason.message ? event.reason.message : event.reason}`);
});

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    $("token-input").value = "";
    if (token) signIn(token, false);
  });
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("resize", () => {
    for (const { plot, element } of state.history.charts) {
      plot.setSize({ width: chartWidth(element), height: CHART_HEIGHT });
    }
  });
  $("github-login").addEventListener("click", () => localStorage.setItem(GITHUB_KEY, "1"));
  $("dead-letters").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) act(button.dataset.action, button.dataset.txId);
  });
  // A token kept by this tab may have expired while the page was away (a reload, a sleeping
  // laptop): a session's is renewed by api() on the 401, before anything is given up.
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) signIn(kept, sessionStorage.getItem(VIA_KEY) === "github");
  else resumeSession();
});
