// authfault's web UI: a live table of exchanges, the rules and scenarios
// with their switches, and one exchange's details. Everything shown comes
// from the admin API; every switch calls it and waits for the server's
// `rules` event to redraw. Data is only ever set as text, never as HTML:
// URLs and headers come from the traffic the proxy carries.
"use strict";

const KEEP = 10000;        // the server's ring: the most the table holds
const ROW = 28;            // px, as --row in style.css
const TOKEN_KEY = "authfault-admin-token";
const VERDICT_ICON = {
  enforced: "✔", bypassed: "✖", mismatch: "≠", error: "⚠",
  skipped: "↷", synthetic: "◆", untouched: "·",
};

const records = [];        // oldest first, at most KEEP
let shown = [];            // records passing the filters
let selected = null;
let lastId = null;         // the last exchange id received (Last-Event-ID)
let rulesRefresh = null;

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// --- the admin API --------------------------------------------------------

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

class Unauthorized extends Error {}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { "content-type": "application/json", ...authHeaders() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    showLogin();
    throw new Unauthorized("the admin token is missing or wrong");
  }
  if (!res.ok) {
    const text = await res.text();
    let detail = text;
    try { detail = JSON.parse(text).detail ?? text; } catch (_) { /* plain text */ }
    throw new Error(`${method} ${path}: ${res.status} ${detail}`);
  }
  return res;
}

function setStatus(text) {
  $("status").textContent = text;
}

function report(err) {
  if (!(err instanceof Unauthorized)) setStatus(String(err.message ?? err));
}

// --- the token --------------------------------------------------------------

function showLogin() {
  $("login").hidden = false;
  $("app").hidden = true;
  $("token").focus();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  $("token").value = "";
  $("login").hidden = true;
  $("app").hidden = false;
  connect();
});

// --- the event stream -------------------------------------------------------

async function connect() {
  const headers = authHeaders();
  // First connection: everything the server keeps; later ones resume.
  let path = "/events?since=0";
  if (lastId !== null) {
    headers["last-event-id"] = String(lastId);
    path = "/events";
  }
  try {
    const res = await fetch(path, { headers });
    if (res.status === 401) {
      showLogin();
      $("login-error").textContent = sessionStorage.getItem(TOKEN_KEY) ? "That token was refused." : "";
      return;
    }
    if (!res.ok) throw new Error(`GET /events: ${res.status}`);
    setStatus("live");
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
      flush();
    }
    setStatus("disconnected; reconnecting…");
  } catch (err) {
    setStatus(`disconnected (${err.message}); reconnecting…`);
  }
  setTimeout(connect, 1000);
}

const pending = [];

function dispatch(block) {
  let kind = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) kind = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;
  const value = JSON.parse(data);
  if (kind === "exchange") pending.push(value);
  else if (kind === "rules") renderRules(value);
}

// Adds the exchanges of one read to the table at once.
function flush() {
  if (pending.length === 0) return;
  const list = $("list");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - ROW;
  for (const record of pending.splice(0)) {
    if (lastId !== null && record.id <= lastId) continue;
    lastId = record.id;
    record.host = hostOf(record.url);
    records.push(record);
    if (passes(record)) shown.push(record);
    if (records.length > KEEP) {
      const gone = records.shift();
      if (shown[0] === gone) shown.shift();
    }
  }
  render(atBottom);
  if (!rulesRefresh) {
    // The rules' counters move with the exchanges: fetch them at most once a second.
    rulesRefresh = setTimeout(async () => {
      rulesRefresh = null;
      try { renderRules(await (await api("GET", "/rules")).json()); } catch (err) { report(err); }
    }, 1000);
  }
}

function hostOf(url) {
  try { return new URL(url).host; } catch (_) { return ""; }
}

// --- the table ----------------------------------------------------------------

function passes(record) {
  const host = $("filter-host").value.trim().toLowerCase();
  const verdict = $("filter-verdict").value;
  const rule = $("filter-rule").value;
  return (!host || record.host.toLowerCase().includes(host))
    && (!verdict || record.verdict === verdict)
    && (!rule || record.rule === rule);
}

function refilter() {
  shown = records.filter(passes);
  render(false);
}

for (const id of ["filter-host", "filter-verdict", "filter-rule"]) {
  $(id).addEventListener("input", refilter);
}

function verdictNode(verdict) {
  return el("span", { class: `verdict v-${verdict}` }, `${VERDICT_ICON[verdict] ?? "?"} ${verdict}`);
}

function time(ts) {
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? ts : date.toLocaleTimeString([], { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}

// Draws only the rows in view: the table stays fast at 10,000 exchanges.
function render(stickToBottom) {
  const list = $("list");
  $("count").textContent = shown.length === records.length
    ? `(${records.length})` : `(${shown.length} of ${records.length})`;
  $("spacer").style.height = `${shown.length * ROW}px`;
  if (stickToBottom) list.scrollTop = list.scrollHeight;
  const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 5);
  const last = Math.min(shown.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW) + 5);
  for (const row of list.querySelectorAll(".row")) row.remove();
  list.setAttribute("aria-activedescendant", "");
  for (let i = first; i < last; i++) {
    const record = shown[i];
    const isSelected = selected !== null && record.id === selected.id;
    const row = el("div", {
      class: "row", role: "option", id: `exchange-${record.id}`,
      "aria-selected": String(isSelected), "data-id": String(record.id),
      onclick: () => select(record),
    },
    el("span", { text: time(record.ts) }),
    el("span", { text: record.method }),
    el("span", { text: record.url, title: record.url }),
    el("span", { text: record.response?.status ? String(record.response.status) : "—" }),
    el("span", { text: record.rule ?? "" }),
    el("span", { text: record.action ?? "" }),
    verdictNode(record.verdict));
    row.setAttribute("aria-label", `${record.method} ${record.url}, status ${record.response?.status ?? "none"}, ${record.verdict}`);
    row.style.top = `${i * ROW}px`;
    list.append(row);
    if (isSelected) list.setAttribute("aria-activedescendant", row.id);
  }
}

$("list").addEventListener("scroll", () => render(false));
window.addEventListener("resize", () => render(false));

$("list").addEventListener("keydown", (event) => {
  if (shown.length === 0) return;
  const at = selected === null ? -1 : shown.findIndex((r) => r.id === selected.id);
  const page = Math.max(1, Math.floor($("list").clientHeight / ROW) - 1);
  const moves = {
    ArrowDown: at + 1, ArrowUp: at - 1, PageDown: at + page, PageUp: at - page,
    Home: 0, End: shown.length - 1,
  };
  if (event.key in moves) {
    event.preventDefault();
    const index = Math.min(shown.length - 1, Math.max(0, moves[event.key]));
    select(shown[index]);
    const list = $("list");
    const top = index * ROW;
    if (top < list.scrollTop) list.scrollTop = top;
    else if (top + ROW > list.scrollTop + list.clientHeight) list.scrollTop = top + ROW - list.clientHeight;
    render(false);
  } else if (event.key === "Enter" && selected) {
    event.preventDefault();
    $("detail").focus();
  }
});

function select(record) {
  selected = record;
  render(false);
  renderDetail(record);
}

// --- one exchange ---------------------------------------------------------------

const TIME_CLAIMS = new Set(["exp", "iat", "nbf", "auth_time"]);

function ago(seconds, claim) {
  const abs = Math.abs(seconds);
  const [n, unit] = abs < 60 ? [Math.round(abs), "s"] : abs < 3600 ? [Math.floor(abs / 60), "min"]
    : abs < 172800 ? [Math.floor(abs / 3600), "h"] : [Math.floor(abs / 86400), "d"];
  if (claim === "exp") return seconds <= 0 ? `expired ${n} ${unit} ago` : `expires in ${n} ${unit}`;
  return seconds <= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

function claimText(name, value) {
  if (value === undefined) return "—";
  if (TIME_CLAIMS.has(name) && typeof value === "number") {
    const iso = new Date(value * 1000).toISOString().replace(".000Z", "Z");
    return `${iso} (${ago(value - Date.now() / 1000, name)})`;
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}

function table(caption, head, rows) {
  return el("table", {},
    el("caption", { class: "muted", text: caption }),
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows));
}

function headersTable(caption, headers) {
  const rows = [];
  for (const [name, values] of Object.entries(headers ?? {})) {
    for (const value of Array.isArray(values) ? values : [values]) {
      rows.push(el("tr", {}, el("th", { scope: "row", text: name }), el("td", { text: value })));
    }
  }
  return table(caption, ["header", "value"], rows);
}

function credentialPart(credential) {
  const before = credential.before ?? null;
  const after = credential.after ?? null;
  const parts = [el("h3", { text: `Credential (${credential.location})` })];
  const fp = (t) => (t ? `${t.fingerprint} (${t.kind})` : "none");
  parts.push(table("Fingerprints", ["", "before", "after"], [
    el("tr", {}, el("th", { scope: "row", text: "token" }), el("td", { text: fp(before) }),
      el("td", { text: after ? fp(after) + (after.resigned ? ", re-signed" : "") : "none" })),
  ]));
  const b = before?.claims ?? {};
  const a = after?.claims ?? {};
  const names = [...new Set([...Object.keys(b), ...Object.keys(a)])];
  if (names.length > 0) {
    parts.push(table("Claims, before and after", ["claim", "before", "after", "change"], names.map((name) => {
      const changed = JSON.stringify(b[name]) !== JSON.stringify(a[name]);
      return el("tr", { class: changed ? "changed" : "" },
        el("th", { scope: "row", text: name }),
        el("td", { text: claimText(name, b[name]) }),
        el("td", { text: claimText(name, a[name]) }),
        el("td", { text: changed ? (b[name] === undefined ? "added" : a[name] === undefined ? "removed" : "changed") : "" }));
    })));
  }
  return parts;
}

function bodyPart(response) {
  if (response.body_omitted) return el("p", { class: "muted", text: `Body not kept: ${response.body_omitted}` });
  if (response.body_base64) return el("p", { class: "muted", text: `Binary body, ${response.body_bytes} bytes (in the recording as base64)` });
  if (!response.body) return el("p", { class: "muted", text: `No body kept (${response.body_bytes ?? 0} bytes)` });
  const note = response.body_truncated ? ` (first ${response.body.length} of ${response.body_bytes} bytes)` : "";
  return el("div", {}, el("p", { class: "muted", text: `Body${note}` }), el("pre", { text: response.body }));
}

function renderDetail(record) {
  const detail = $("detail");
  detail.replaceChildren(el("h2", { id: "detail-title", text: "Details" }));
  const facts = [
    ["exchange", `#${record.id} at ${record.ts}`],
    ["request", `${record.method} ${record.url} (${record.http_version})`],
    ["status", record.response?.status ? String(record.response.status) : "no response"],
    ["rule", record.rule ? `${record.rule} (${record.action}${record.fired ? "" : ", did not fire"})` : "none"],
    ["scenario", record.scenario ?? "none"],
    ["reason", record.reason],
    ["time", `${record.timing?.total_ms ?? "?"} ms`],
  ];
  if (record.error) facts.push(["error", record.error]);
  const dl = el("dl", {});
  dl.append(el("dt", { text: "verdict" }), el("dd", {}, verdictNode(record.verdict)));
  for (const [name, value] of facts) dl.append(el("dt", { text: name }), el("dd", { text: value }));
  detail.append(dl);
  if (record.credential) detail.append(...credentialPart(record.credential));
  detail.append(headersTable("Request headers (as forwarded, credentials redacted)", record.request?.headers));
  detail.append(headersTable("Response headers", record.response?.headers));
  if (record.response) detail.append(bodyPart(record.response));
}

// --- rules and scenarios ----------------------------------------------------------

function renderRules(data) {
  const scenario = $("scenario");
  scenario.replaceChildren(el("option", { value: "", text: "none (rules' own switches)" }),
    ...(data.scenarios ?? []).map((name) => el("option", { value: name, text: name })));
  scenario.value = data.scenario ?? "";

  const filter = $("filter-rule");
  const current = filter.value;
  filter.replaceChildren(el("option", { value: "", text: "any" }),
    ...data.rules.map((rule) => el("option", { value: rule.name, text: rule.name })));
  filter.value = data.rules.some((rule) => rule.name === current) ? current : "";

  $("rules").replaceChildren(...data.rules.map((rule, i) => {
    const box = el("input", {
      type: "checkbox", id: `rule-${i}`, "aria-describedby": `rule-${i}-meta`,
      onchange: async (event) => {
        event.target.disabled = true;
        try {
          await api("POST", `/rules/${encodeURIComponent(rule.name)}/${event.target.checked ? "enable" : "disable"}`);
        } catch (err) {
          report(err);
          event.target.checked = !event.target.checked;
        } finally {
          event.target.disabled = false;
        }
      },
    });
    box.checked = rule.enabled;
    const verdicts = Object.entries(rule.verdicts ?? {}).map(([v, n]) => `${v} ${n}`).join(", ");
    return el("li", {},
      box, " ", el("label", { for: `rule-${i}`, text: rule.name }),
      el("div", { class: "meta", id: `rule-${i}-meta`,
        text: `${rule.action} · ${rule.active ? "active" : "inactive"} · matched ${rule.matched} · fired ${rule.fired}${verdicts ? " · " + verdicts : ""}` }));
  }));
}

$("scenario").addEventListener("change", async (event) => {
  const name = event.target.value;
  try {
    if (name) await api("PUT", "/scenario", { name });
    else await api("DELETE", "/scenario");
  } catch (err) {
    report(err);
  }
});

$("reset").addEventListener("click", async () => {
  try { await api("POST", "/reset"); } catch (err) { report(err); }
});

// --- downloads -----------------------------------------------------------------------

for (const button of document.querySelectorAll("[data-download]")) {
  button.addEventListener("click", async () => {
    try {
      const blob = await (await api("GET", button.dataset.download)).blob();
      const link = el("a", { href: URL.createObjectURL(blob), download: button.dataset.name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (err) {
      report(err);
    }
  });
}

connect();
