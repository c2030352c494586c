--- The web inbox's static files (served by the sandbox itself: no CDN, works offline).
-- @module customerio.sandbox.web.assets
local M = {}

M["inbox.css"] = [[
:root {
  --bg: #f6f7f9; --panel: #fff; --text: #1d2330; --muted: #677085; --line: #dfe3ea;
  --accent: #3a4fd8; --ok: #17804a; --ok-bg: #e3f5ea; --bad: #b4232f; --bad-bg: #fde8ea;
  --warn: #8a5a00; --warn-bg: #fff3d6; --code: #f0f2f6;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { display: flex; align-items: center; gap: 24px; padding: 0 24px; height: 52px;
  background: #1d2330; color: #fff; position: sticky; top: 0; z-index: 2; }
header.top .brand { color: #fff; font-weight: 650; letter-spacing: .2px; white-space: nowrap; }
header.top nav { display: flex; gap: 4px; flex-wrap: wrap; }
header.top nav a { color: #c9d0e0; padding: 6px 10px; border-radius: 6px; }
header.top nav a:hover { background: #2d3547; text-decoration: none; color: #fff; }
header.top nav a.current { background: #3a4361; color: #fff; }
header.top .count { font-size: 12px; color: #9aa3b8; margin-left: 3px; }
header.top .live { margin-left: auto; font-size: 12px; color: #8fd6a9; white-space: nowrap; }
header.top .live.off { color: #e79aa2; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 4px 0 16px; font-weight: 650; }
h2 { font-size: 16px; margin: 26px 0 10px; font-weight: 650; }
.muted, .empty { color: var(--muted); }
.panel > h2:first-child { margin-top: 0; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px; }
table.list { width: 100%; border-collapse: collapse; background: var(--panel);
  border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
table.list th { text-align: left; font-size: 12px; text-transform: uppercase; letter-spacing: .4px;
  color: var(--muted); background: #fafbfc; padding: 8px 12px; border-bottom: 1px solid var(--line); }
table.list td { padding: 8px 12px; border-bottom: 1px solid var(--line); vertical-align: top;
  overflow-wrap: anywhere; }
table.list tr:last-child td { border-bottom: 0; }
table.list tr[data-href] { cursor: pointer; }
table.list tr[data-href]:hover td { background: #f3f5fb; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  background: var(--code); color: var(--muted); white-space: nowrap; }
.badge-sent, .badge-active, .badge-ok { background: var(--ok-bg); color: var(--ok); }
.badge-failed, .badge-deleted, .badge-suppressed, .badge-error { background: var(--bad-bg); color: var(--bad); }
.badge-warn, .badge-queued, .badge-merged, .badge-warning, .badge-fault { background: var(--warn-bg); color: var(--warn); }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; margin: 0; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; overflow-wrap: anywhere; }
pre, code { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--code); border-radius: 6px; padding: 10px 12px; margin: 0; overflow: auto;
  max-height: 420px; white-space: pre-wrap; overflow-wrap: anywhere; }
.grid2 { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 18px; }
.grid2 > * { min-width: 0; }
@media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
iframe.email { width: 100%; height: 460px; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.problem { border-left: 4px solid var(--bad); background: var(--bad-bg); padding: 10px 12px;
  border-radius: 0 6px 6px 0; margin: 8px 0; }
.problem.warning { border-left-color: var(--warn); background: var(--warn-bg); }
.problem .where { font-weight: 650; }
.problem pre { background: #fff; margin-top: 8px; }
.phone { width: 340px; max-width: 100%; background: #22252c; border-radius: 22px; padding: 16px 12px 26px; }
.notification { background: #f2f3f5; border-radius: 12px; padding: 10px 12px; }
.notification .title { font-weight: 650; }
.bubble { background: #e4e6eb; border-radius: 16px; padding: 9px 13px; display: inline-block; max-width: 100%;
  white-space: pre-wrap; }
.card { border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; background: #fff; max-width: 420px; }
.card .title { font-weight: 650; margin-bottom: 4px; }
form.search { display: flex; gap: 8px; margin-bottom: 14px; }
input[type=search], input[type=text], textarea, select { font: inherit; padding: 7px 10px; border: 1px solid var(--line);
  border-radius: 6px; background: #fff; width: 100%; }
textarea { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; min-height: 90px; }
label { display: block; font-weight: 600; margin: 12px 0 4px; }
button { font: inherit; padding: 7px 16px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent);
  color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
.actions { display: flex; gap: 10px; margin-top: 14px; }
.notice { background: var(--ok-bg); color: var(--ok); padding: 8px 12px; border-radius: 6px; margin-bottom: 12px; }
.tabs { display: flex; gap: 6px; margin-bottom: 12px; }
.tabs a { padding: 4px 10px; border-radius: 6px; border: 1px solid var(--line); background: #fff; }
.tabs a.current { border-color: var(--accent); }
.type { font-size: 12px; color: var(--muted); }
pre.excerpt { white-space: pre; overflow-x: auto; }
.line-no { color: var(--muted); user-select: none; }
.caret { color: var(--bad); font-weight: 700; }
]]

-- Refreshes the page's <main> when the sandbox's state changes (polls /__sandbox/version),
-- unless the person is typing in a form; makes table rows clickable.
M["inbox.js"] = [[
(function () {
  "use strict";
  var version = document.body.getAttribute("data-version");
  var live = document.getElementById("live");
  var busy = false;
  function editing() {
    var el = document.activeElement;
    return el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT" || el.tagName === "SELECT") &&
      el.type !== "search";
  }
  function refresh() {
    return fetch(location.href, { headers: { "Accept": "text/html" } }).then(function (r) {
      return r.text();
    }).then(function (text) {
      var doc = new DOMParser().parseFromString(text, "text/html");
      var fresh = doc.getElementById("main");
      var main = document.getElementById("main");
      if (fresh && main) { main.replaceWith(document.adoptNode(fresh)); }
      var nav = doc.getElementById("nav");
      var old = document.getElementById("nav");
      if (nav && old) { old.replaceWith(document.adoptNode(nav)); }
    });
  }
  function tick() {
    if (busy || document.hidden || document.body.hasAttribute("data-static") || editing()) { return; }
    busy = true;
    fetch("/__sandbox/version", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (v) {
      if (live) { live.textContent = "live"; live.className = "live"; }
      var now = String(v.version);
      if (now !== version) { version = now; return refresh(); }
    }).catch(function () {
      if (live) { live.textContent = "sandbox unreachable"; live.className = "live off"; }
    }).then(function () { busy = false; });
  }
  setInterval(tick, 1500);
  document.addEventListener("click", function (e) {
    if (e.target.closest("a, button, input, textarea, select")) { return; }
    var row = e.target.closest("tr[data-href]");
    if (row) { location.href = row.getAttribute("data-href"); }
  });
})();
]]

M.types = { ["inbox.css"] = "text/css; charset=utf-8", ["inbox.js"] = "text/javascript; charset=utf-8" }

return M
