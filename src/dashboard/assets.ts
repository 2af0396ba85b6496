/**
 * The page's style and its one small script, inlined into every page (allowed by the
 * response's CSP nonce): nothing is fetched from anywhere else, no CDN, no fonts.
 */

/** The style sheet. Colours follow the status: green done, red failed, amber waiting or retrying. */
export const STYLE = `
:root { --bg: #f5f6f8; --card: #fff; --ink: #1d2330; --dim: #6b7385; --line: #e2e5eb; --accent: #2f5bd3;
  --ok: #1f8a4c; --bad: #c62f3a; --warn: #b7791f; --run: #2f5bd3; --mute: #8a91a0; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header.top { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 18px; align-items: center;
  flex-wrap: wrap; }
header.top .brand { font-weight: 700; letter-spacing: .02em; }
header.top a { color: #cfd8f7; text-decoration: none; }
header.top a.current { color: #fff; border-bottom: 2px solid #8fb0ff; }
header.top .db { color: #cfd8f7; font-size: 13px; }
header.top form { margin: 0; display: flex; gap: 6px; align-items: center; }
header.top select { max-width: 320px; }
header.top .spacer { flex: 1; }
#live-state { font-size: 12px; color: #cfd8f7; }
#live-state.on::before { content: "●"; color: #4cd07d; margin-right: 4px; }
#live-state.off::before { content: "●"; color: #f0b44c; margin-right: 4px; }
main { padding: 16px 20px 40px; max-width: 1500px; margin: 0 auto; }
h1 { font-size: 20px; margin: 4px 0 14px; }
h2 { font-size: 15px; margin: 0 0 10px; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px;
  margin-bottom: 16px; overflow-x: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; margin-bottom: 16px; }
.grid > section.card { margin-bottom: 0; }
h2.sub { margin-top: 16px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--dim); font-weight: 600; text-transform: uppercase; letter-spacing: .03em; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.dead td { color: var(--mute); }
a { color: var(--accent); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #f3f4f7; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; margin: 6px 0;
  white-space: pre-wrap; word-break: break-word; max-height: 420px; overflow: auto; }
.err { color: var(--bad); word-break: break-word; }
.dim { color: var(--dim); }
.empty { color: var(--dim); font-style: italic; }
.na { color: var(--warn); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  background: #eceef3; color: var(--ink); white-space: nowrap; }
.s-succeeded { background: #dcf3e5; color: var(--ok); }
.s-failed { background: #fbe0e2; color: var(--bad); }
.s-compensated, .s-compensating { background: #fdebd3; color: #9a5b10; }
.s-running { background: #dde6fb; color: var(--run); }
.s-retrying { background: #fdf0cf; color: var(--warn); }
.s-pending { background: #eceef3; color: #4a5264; }
.s-cancelled, .s-skipped { background: #eceef3; color: var(--mute); }
.notice { background: #e7f0ff; border: 1px solid #bcd0fb; border-radius: 6px; padding: 8px 12px; margin-bottom: 14px; }
.problem { background: #fdecee; border: 1px solid #f3b9bf; border-radius: 6px; padding: 10px 14px; margin-bottom: 14px; }
form.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-end; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--dim); gap: 2px; }
input, select, button { font: inherit; padding: 4px 8px; border: 1px solid #c8cdd8; border-radius: 5px;
  background: #fff; color: var(--ink); }
input[type=checkbox] { padding: 0; }
button { cursor: pointer; background: var(--accent); color: #fff; border-color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
.actions { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin-top: 12px; }
.actions form { display: flex; gap: 8px; align-items: center; margin: 0; }
.pager { display: flex; gap: 16px; margin-top: 10px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: var(--dim); }
dl.facts dd { margin: 0; word-break: break-word; }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 22px; border-left: 2px solid var(--line); }
ol.timeline > li { position: relative; margin: 0 0 16px; padding-left: 8px; }
ol.timeline > li::before { content: ""; position: absolute; left: -31px; top: 3px; width: 14px; height: 14px;
  border-radius: 50%; background: #c8cdd8; border: 2px solid #fff; }
ol.timeline > li.t-succeeded::before { background: var(--ok); }
ol.timeline > li.t-failed::before { background: var(--bad); }
ol.timeline > li.t-running::before { background: var(--run); }
ol.timeline > li.t-retrying::before { background: var(--warn); }
.step-head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.step-name { font-weight: 600; }
.comp { margin: 8px 0 0 12px; padding: 6px 10px; border-left: 3px solid #f3c58a; background: #fffaf2; }
details summary { cursor: pointer; color: var(--dim); }
.error-block { margin-top: 8px; }
`;

/**
 * Live updates: an EventSource on the page's events URL; each `change` event (a hint: a
 * NOTIFY or the slow poll) re-fetches the page's `#live` part and swaps it in, at most once a
 * second and not while the tab is hidden. Open <details> stay open, ticked boxes ticked. Forms marked
 * data-confirm ask first. Plain ES2017 for any current browser; no libraries.
 */
export const SCRIPT = `
(function () {
  'use strict';
  document.addEventListener('submit', function (e) {
    var f = e.target;
    if (f && f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) e.preventDefault();
  });
  document.addEventListener('change', function (e) {
    var t = e.target;
    if (t && t.dataset && t.dataset.autosubmit !== undefined && t.form) t.form.submit();
  });
  var url = new URL(location.href);
  if (url.searchParams.has('notice')) {
    url.searchParams.delete('notice');
    history.replaceState(null, '', url.href);
  }
  var live = document.getElementById('live');
  var state = document.getElementById('live-state');
  var events = document.body.dataset.events;
  if (!live || !events || !window.EventSource) return;
  var busy = false, again = false, stale = false, last = 0;
  function show(on, text) { if (state) { state.className = on ? 'on' : 'off'; state.textContent = text; } }
  function refresh() {
    if (document.hidden) { stale = true; return; }
    if (busy) { again = true; return; }
    busy = true;
    var wait = Math.max(0, last + 1000 - Date.now());
    setTimeout(function () {
      last = Date.now();
      // The whole address, never the path alone: a path starting with // would be another host.
      fetch(location.href, {
        credentials: 'same-origin', cache: 'no-store', headers: { 'X-Stepping-Live': '1' }
      })
        .then(function (res) {
          var type = res.headers.get('content-type') || '';
          return res.ok && type.indexOf('text/html') === 0 ? res.text() : null;
        })
        .then(function (text) {
          if (text === null) return;
          // The live part only (escaped by the server); a template parses it inertly.
          var next = document.createElement('template');
          next.innerHTML = text;
          // What the operator opened or ticked stays so (matched by data-key).
          var open = {}, ticked = {};
          live.querySelectorAll('details[open][data-key]').forEach(function (d) { open[d.dataset.key] = true; });
          live.querySelectorAll('input[data-key]:checked').forEach(function (i) { ticked[i.dataset.key] = true; });
          live.replaceChildren(next.content);
          live.querySelectorAll('details[data-key]').forEach(function (d) { if (open[d.dataset.key]) d.open = true; });
          live.querySelectorAll('input[data-key]').forEach(function (i) { if (ticked[i.dataset.key]) i.checked = true; });
          live.dataset.refreshed = String(Number(live.dataset.refreshed || 0) + 1);
        })
        .catch(function () {})
        .then(function () {
          busy = false;
          if (again) { again = false; refresh(); }
        });
    }, wait);
  }
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && stale) { stale = false; refresh(); }
  });
  var source = new EventSource(events);
  source.addEventListener('open', function () { show(true, 'live'); });
  source.addEventListener('error', function () { show(false, 'reconnecting'); });
  source.addEventListener('change', refresh);
})();
`;
