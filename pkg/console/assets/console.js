// botfleet console: plain JavaScript, no build step. Each view polls one
// endpoint at the registry's heartbeat interval, and nothing while the tab
// is hidden; the Keys view reads on opening and after each change. A new
// key's secret is only ever in the page's secret box until dismissed. Every value goes into the page as text (textContent), never
// as HTML.
"use strict";

const api = "/admin/api";
let session = null; // {csrf_token, principal, platforms}
let interval = 2000;
let timer = null;
let view = "fleet";
const history = []; // fleet totals over this page's life, for the charts

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function call(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET" && session && session.csrf_token) opts.headers["X-CSRF-Token"] = session.csrf_token;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(api + path, opts);
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = new Error((data.error && data.error.message) || resp.statusText);
    e.status = resp.status;
    e.code = data.error && data.error.code;
    throw e;
  }
  return data;
}

// status shows msg; a poll that succeeds clears a poll's error, not an
// action's message.
let pollError = false;

function status(msg, isError) {
  const s = $("status");
  s.hidden = !msg;
  s.textContent = msg || "";
  s.className = isError ? "status error" : "status";
}

// ---- formatting

const ms = (s) => (s ? (s * 1000 < 10 ? (s * 1000).toFixed(1) : Math.round(s * 1000)) + " ms" : "–");
const rate = (r) => (r ? (r < 10 ? r.toFixed(2) : r.toFixed(0)) : "0");
const pct = (x) => (x * 100).toFixed(x < 0.01 ? 2 : 1) + " %";
const bytes = (b) => (b ? (b / 1048576).toFixed(1) + " MB" : "–");

function ago(t, now) {
  const s = Math.max(0, (now - new Date(t)) / 1000);
  if (s < 90) return s.toFixed(s < 10 ? 1 : 0) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function uptime(t, now) {
  const s = Math.max(0, (now - new Date(t)) / 1000);
  if (s < 120) return Math.round(s) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function card(label, value, cls) {
  return el("div", { class: "card " + (cls || "") }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// ---- views

async function showFleet() {
  const f = await call("GET", "/fleet");
  interval = Math.max(500, (f.interval_seconds || 2) * 1000);
  const now = new Date(f.time);
  const t = f.totals;
  history.push({ at: now, rate: t.turns_per_second, p99: t.latency.p99 });
  if (history.length > 300) history.shift();
  if (view === "fleet") {
    $("fleet-cards").replaceChildren(
      card("ready", t.ready + " / " + t.instances, t.ready < t.instances ? "warn" : "ok"),
      card("dead", t.dead, t.dead ? "bad" : ""),
      card("draining", t.draining),
      card("in flight", t.in_flight),
      card("turns/s", rate(t.turns_per_second)),
      card("open breakers", t.open_breakers, t.open_breakers ? "bad" : ""),
      card("failed targets", t.failed_targets, t.failed_targets ? "bad" : ""),
    );
    fill($("instances").tBodies[0], f.instances.map((i) => instanceRow(i, now)));
    renderCheckers(f.checkers, now);
  } else {
    renderTraffic(f);
  }
}

function instanceRow(i, now) {
  const breakers = Object.entries(i.breakers || {}).map(([name, st]) => el("span", { class: "breaker " + st, title: name + ": " + st }, name));
  const links = Object.entries(i.im_links || {}).map(([platform, st]) => {
    const [state, holder] = st.split(" ");
    return el("span", { class: "link " + state, title: platform + ": " + st + (holder ? " (held by " + holder + ")" : "") }, platform + " " + state);
  });
  const build = i.build.commit ? i.build.version + " " + i.build.commit.slice(0, 7) + (i.build.modified ? "+" : "") : i.build.version;
  return el("tr", { "data-instance": i.name, class: "state-" + i.state },
    el("td", {}, i.name),
    el("td", { class: "state", title: i.reason || "" }, i.state),
    el("td", {}, i.address || "–"),
    el("td", { title: i.build.go }, build),
    el("td", {}, i.alive ? uptime(i.started_at, now) : "–"),
    el("td", {}, i.in_flight),
    el("td", {}, rate(i.traffic.turns_per_second)),
    el("td", {}, ms(i.latency.p99)),
    el("td", {}, bytes(i.memory_bytes)),
    el("td", {}, i.queue_workers),
    el("td", {}, ...links),
    el("td", {}, ...breakers),
    el("td", {}, ago(i.heartbeat_at, now)),
  );
}

function renderCheckers(checkers, now) {
  $("no-checkers").hidden = checkers.length > 0;
  $("checkers").replaceChildren(...checkers.map((c) => {
    const rows = (c.targets || []).map((t) => el("tr", { "data-target": t.name, class: "state-" + t.state },
      el("td", {}, t.name),
      el("td", { class: "state" }, t.state),
      el("td", {}, t.liveness ? t.liveness.state : "–"),
      el("td", {}, t.readiness ? t.readiness.state : "–"),
      el("td", {}, t.restarts.total + " (" + t.restarts.in_window + "/" + t.restarts.budget + " in " + t.restarts.window + ")"),
      el("td", {}, t.backoff.current || "0s"),
      el("td", {}, t.pid || "–"),
      el("td", { class: "reason" }, t.error || (t.liveness && t.liveness.last_error) || ""),
    ));
    const table = el("table", { class: "targets" },
      el("thead", {}, el("tr", {}, ...["Target", "State", "Liveness", "Readiness", "Restarts", "Backoff", "Pid", "Last error"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows));
    return el("div", { class: "checker", "data-checker": c.name },
      el("h3", {}, c.name + " ", el("span", { class: "badge " + c.state }, c.state), " ", el("span", { class: "muted" }, ago(c.heartbeat_at, now))),
      table);
  }));
}

function renderTraffic(f) {
  const t = f.totals;
  $("traffic-cards").replaceChildren(
    card("turns/s", rate(t.turns_per_second)),
    card("error rate (5xx)", pct(t.error_rate), t.error_rate > 0.01 ? "bad" : "ok"),
    card("failed turns/s", rate(t.failed_per_second), t.failed_per_second ? "warn" : ""),
    card("P50", ms(t.latency.p50)),
    card("P99", ms(t.latency.p99), t.latency.p99 > 0.8 ? "bad" : ""),
    card("TTFT P50", ms(t.latency.ttft_p50)),
    card("TTFT P99", ms(t.latency.ttft_p99)),
  );
  chart($("chart-rate"), history.map((h) => h.rate));
  chart($("chart-p99"), history.map((h) => h.p99 * 1000));
  fill($("traffic").tBodies[0], f.instances.filter((i) => i.alive).map((i) => {
    const tr = i.traffic;
    return el("tr", { "data-instance": i.name },
      el("td", {}, i.name),
      el("td", {}, rate(tr.turns_per_second)),
      el("td", {}, rate(tr.failed_per_second)),
      el("td", {}, rate(tr.requests_per_second)),
      el("td", {}, tr.requests_per_second ? pct(tr.errors_per_second / tr.requests_per_second) : "–"),
      el("td", {}, ms(i.latency.p50)),
      el("td", {}, ms(i.latency.p99)),
      el("td", {}, ms(i.latency.ttft_p50)),
      el("td", {}, ms(i.latency.ttft_p99)),
      el("td", {}, tr.turns),
    );
  }));
}

function chart(canvas, values) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  if (values.length < 2) return;
  const top = Math.max(...values, 1e-9);
  ctx.strokeStyle = "#2f6fde";
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / (values.length - 1)) * (w - 4) + 2;
    const y = h - 4 - (v / top) * (h - 20);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#555";
  ctx.font = "11px sans-serif";
  ctx.fillText("max " + top.toFixed(top < 10 ? 2 : 0), 4, 12);
}

async function showQueues() {
  const q = await call("GET", "/queues");
  fill($("streams").tBodies[0], q.streams.map((s) => el("tr", { "data-priority": s.priority },
    el("td", {}, s.priority), el("td", {}, s.depth), el("td", {}, s.pending), el("td", {}, s.lag),
    el("td", {}, s.oldest_age_seconds ? Math.round(s.oldest_age_seconds) + " s" : "–"))));
  $("dead-count").textContent = q.dead_letters;
  $("no-dead").hidden = q.dead.length > 0;
  fill($("dead").tBodies[0], q.dead.map((d) => {
    const f = d.fields;
    const requeue = el("button", { type: "button", class: "requeue" }, "Requeue");
    requeue.addEventListener("click", () => act("POST", "/queues/dead/" + encodeURIComponent(d.id) + "/requeue", "requeued " + d.id));
    const drop = confirmButton("Drop", () => act("DELETE", "/queues/dead/" + encodeURIComponent(d.id), "dropped " + d.id));
    return el("tr", { "data-dead-id": d.id },
      el("td", { title: new Date(parseInt(d.id, 10)).toISOString() }, d.id),
      el("td", {}, f.dead_stream || "–"),
      el("td", {}, f.platform || "–"),
      el("td", {}, f.event || "–"),
      el("td", {}, f.dead_deliveries || "–"),
      el("td", { class: "reason" }, f.dead_reason || ""),
      el("td", {}, requeue, " ", drop),
    );
  }));
}

// confirmButton asks for a second click before it acts.
function confirmButton(label, action) {
  const b = el("button", { type: "button", class: "danger" }, label);
  let armed = false;
  b.addEventListener("click", () => {
    if (!armed) {
      armed = true;
      b.textContent = "Click again to " + label.toLowerCase();
      setTimeout(() => { armed = false; b.textContent = label; }, 4000);
      return;
    }
    action();
  });
  return b;
}

// act makes a write and says done: a message, or a function of the
// answer returning one.
async function act(method, path, done, body) {
  try {
    const r = await call(method, path, body);
    status(typeof done === "function" ? done(r) : done);
    refresh();
  } catch (e) {
    status(e.message, true);
  }
}

// ---- conversations

function lookupQuery() {
  const p = new URLSearchParams();
  const where = $("lookup-where").value;
  if (where === "api") {
    if ($("lookup-tenant").value) p.set("tenant", $("lookup-tenant").value);
  } else {
    p.set("platform", where);
  }
  for (const [id, key] of [["lookup-scope", "scope"], ["lookup-session", "session_id"], ["lookup-user", "user_id"], ["lookup-group", "group_id"]]) {
    const v = $(id).value.trim();
    if (v) p.set(key, v);
  }
  return p.toString();
}

let shownQuery = "";

async function lookUp(query) {
  try {
    const c = await call("GET", "/conversations?" + query);
    shownQuery = query;
    $("conversation").hidden = false;
    $("conv-key").textContent = c.key;
    $("conv-session").textContent = c.session_id || "–";
    $("conv-turns").textContent = c.turns;
    $("conv-ttl").textContent = c.ttl_seconds ? Math.round(c.ttl_seconds) + " s" : "nothing kept";
    $("conv-waiting").textContent = c.waiting;
    $("conv-entries").replaceChildren(...c.entries.map((e) => el("li", { class: e.role },
      el("span", { class: "meta" }, "turn " + e.turn + " · " + e.role + " · " + new Date(e.time * 1000).toLocaleString()),
      el("p", {}, e.content))));
    status("");
  } catch (e) {
    $("conversation").hidden = true;
    status(e.message, true);
  }
}

// ---- keys

function keyState(k, now) {
  if (k.revoked) return "revoked";
  return new Date(k.expires) <= now ? "expired" : "active";
}

function limitsText(l) {
  const parts = [];
  if (l.rps) parts.push(l.rps + "/s");
  if (l.rpm) parts.push(l.rpm + "/min");
  if (l.in_flight) parts.push(l.in_flight + " in flight");
  if (l.tpm) parts.push(l.tpm + " tokens/min");
  if (l.budget) parts.push(l.budget + " tokens in all");
  return parts.join(" · ") || "fleet defaults";
}

const when = (t) => el("td", { title: t }, new Date(t).toLocaleString());

async function showKeys() {
  const r = await call("GET", "/keys");
  const now = new Date();
  $("key-count").textContent = r.keys.length;
  $("no-keys").hidden = r.keys.length > 0;
  fill($("keys").tBodies[0], r.keys.map((k) => keyRow(k, now)));
}

function keyRow(k, now) {
  const state = keyState(k, now);
  const path = "/keys/" + encodeURIComponent(k.id);
  const actions = state !== "active" ? [] : [
    confirmButton("Rotate", () => act("POST", path + "/rotate", (r) => showSecret(r.key.id, r.secret) + "rotated " + k.id + propagated(r.propagation))),
    " ",
    confirmButton("Revoke", () => act("DELETE", path, (r) => "revoked " + k.id + propagated(r.propagation))),
  ];
  const u = k.usage;
  return el("tr", { "data-key-id": k.id, class: "state-" + state },
    el("td", {}, el("code", {}, k.id)),
    el("td", {}, k.name || "–"),
    el("td", {}, k.owner || "–"),
    el("td", { class: "state", title: k.revoked ? "revoked " + new Date(k.revoked).toLocaleString() : "" }, state),
    when(k.created),
    when(k.expires),
    el("td", {}, (k.allow_ips || []).join(", ") || "any"),
    el("td", {}, (k.models || []).join(", ") || "all"),
    el("td", {}, limitsText(k.limits || {})),
    el("td", {}, u ? u.Spent + " tokens spent" + (u.InFlight ? " · " + u.InFlight + " in flight" : "") : "–"),
    el("td", {}, ...actions),
  );
}

// propagated says how many instances confirmed a key change.
function propagated(p) {
  return p ? " (confirmed by " + p.acked + " of " + p.instances + " instances in " + ms(p.elapsed_ns / 1e9) + ")" : "";
}

// showSecret puts a new secret in the page, the one place it is ever
// shown; hideSecret takes it out again, and nothing else keeps it.
function showSecret(id, secret) {
  $("secret-key").textContent = id;
  $("secret-value").textContent = secret;
  $("secret").hidden = false;
  return "";
}

function hideSecret() {
  $("secret-value").textContent = "";
  $("secret-key").textContent = "";
  $("secret").hidden = true;
}

function keySpec() {
  const list = (id) => $(id).value.split(",").map((v) => v.trim()).filter(Boolean);
  const num = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  return {
    name: $("key-name").value.trim(), owner: $("key-owner").value.trim(), expires_in: $("key-expires").value.trim(),
    allow_ips: list("key-ips"), models: list("key-models"),
    limits: { rps: num("key-rps"), rpm: num("key-rpm"), in_flight: num("key-in-flight"), tpm: num("key-tpm"), budget: num("key-budget") },
  };
}

// ---- navigation and polling

async function refresh() {
  clearTimeout(timer);
  if (!session || document.hidden) return;
  try {
    if (view === "fleet" || view === "traffic") await showFleet();
    else if (view === "queues") await showQueues();
    else if (view === "keys") await showKeys();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    if (pollError) status("");
    pollError = false;
  } catch (e) {
    if (e.status === 401) return showLogin(e.message);
    status(e.message, true);
    pollError = true;
  }
  if (view !== "conversations" && view !== "keys") timer = setTimeout(refresh, interval);
}

function show(name) {
  view = ["fleet", "traffic", "queues", "conversations", "keys"].includes(name) ? name : "fleet";
  if (view !== "keys") hideSecret();
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + view;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === view);
  refresh();
}

function showLogin(msg) {
  session = null;
  clearTimeout(timer);
  hideSecret();
  $("nav").hidden = true;
  $("logout").hidden = true;
  for (const s of document.querySelectorAll(".view")) s.hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
  $("login-key").focus();
}

function loggedIn(s) {
  session = s;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  const where = $("lookup-where");
  where.replaceChildren(el("option", { value: "api" }, "HTTP API (tenant)"), ...s.platforms.map((p) => el("option", { value: p }, "IM: " + p)));
  show(location.hash.slice(1));
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      loggedIn(await call("POST", "/login", { key: $("login-key").value }));
      $("login-key").value = "";
    } catch (e) {
      $("login-error").textContent = e.message;
    }
  });
  $("logout").addEventListener("click", async () => {
    await call("POST", "/logout").catch(() => {});
    showLogin("");
  });
  $("lookup").addEventListener("submit", (ev) => {
    ev.preventDefault();
    lookUp(lookupQuery());
  });
  $("lookup-where").addEventListener("change", () => {
    $("lookup-tenant-label").hidden = $("lookup-where").value !== "api";
  });
  $("conv-clear").replaceWith(Object.assign(confirmButton("Clear this conversation", async () => {
    try {
      const r = await call("DELETE", "/conversations?" + shownQuery);
      status(r.cleared ? "cleared " + r.key : "nothing to clear in " + r.key);
      lookUp(shownQuery);
    } catch (e) {
      status(e.message, true);
    }
  }), { id: "conv-clear" }));
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act("POST", "/keys", (r) => {
      $("key-form").reset();
      return showSecret(r.key.id, r.secret) + "created " + r.key.id;
    }, keySpec());
  });
  $("secret-done").addEventListener("click", hideSecret);
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  document.addEventListener("visibilitychange", refresh);
  try {
    loggedIn(await call("GET", "/session"));
  } catch (e) {
    showLogin(e.status === 401 ? "" : e.message);
  }
});
