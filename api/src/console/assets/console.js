// Bosun web console: the shell (session, sign-in, navigation, hash routing) and the helpers
// every page module uses (building DOM, calling the API, the live event feed).
//
// Pages live in page-*.js and are loaded on demand with import(); they import their helpers
// from this module. Nothing here writes HTML from strings: every value from the API is untrusted
// and goes into the page through textContent and createElement only. No inline style either
// (the page's CSP forbids it): looks are classes in console.css.

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** An element: `h('a', {href: '#jobs', class: 'x'}, 'text', child, [more])`. Strings become text
 *  nodes; null, undefined and false children are skipped; `on<event>` attributes take a
 *  function (a listener). A `style` attribute, and an `on<event>` attribute that is not a
 *  function (an inline handler), are refused (the CSP would drop them anyway). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.toLowerCase() === 'style') throw new Error('no style attributes: use a class');
    if (/^on/i.test(key)) {
      if (typeof value !== 'function') throw new Error(`no inline handler attributes (${key}): pass a function`);
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'hidden' || key === 'disabled' || key === 'checked' || key === 'selected'
      || key === 'required' || key === 'multiple' || key === 'open') {
      el[key] = Boolean(value);
    } else if (key === 'value') {
      el.value = String(value);
    } else if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

/** Replaces `el`'s children, skipping null, undefined and false (as `h` does). */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link to a page of the console: `#<route>`, each path segment of `parts` URL-encoded. */
export function route(...parts) {
  const [first, ...rest] = parts;
  return '#' + [first, ...rest.map((p) => encodeURIComponent(String(p)))].join('/');
}

export function link(href, label, attrs = {}) {
  return h('a', { href, ...attrs }, label);
}

/** A class-safe token of an untrusted status: lower-case letters, digits and dashes. */
function statusClass(status) {
  return String(status ?? 'unknown').toLowerCase().replace(/[^a-z0-9-]/g, '-');
}

/** A coloured badge holding exactly `status` as its text. */
export function badge(status, attrs = {}) {
  const text = status === null || status === undefined ? '—' : String(status);
  return h('span', { ...attrs, class: ['badge', `status-${statusClass(status)}`, attrs.class] }, text);
}

/** A table in a horizontally scrolling wrapper: `columns` are header labels. */
export function table(columns, attrs = {}) {
  const tbody = h('tbody');
  const el = h('table', attrs,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  return { wrap: h('div', { class: 'table-wrap' }, el), table: el, tbody };
}

/** A row spanning the whole table, saying it is empty or loading. */
export function noteRow(colspan, message) {
  return h('tr', { class: 'note-row' }, h('td', { colspan, class: 'muted' }, message));
}

/** Facts as a definition list of [label, value] pairs (a third element `'wide'` gives the pair a
 *  whole row); a null value shows as a dash; a null pair is left out. */
export function details(pairs) {
  return h('dl', { class: 'details' }, pairs.filter(Boolean).map(([label, value, wide]) =>
    h('div', { class: ['fact', wide === 'wide' && 'wide'] },
      h('dt', {}, label),
      h('dd', {}, value === null || value === undefined || value === '' ? '—' : value))));
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

export function pageHeader(title, ...extra) {
  return h('div', { class: 'page-header' }, h('h1', {}, title), ...extra);
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A time of the API (RFC 3339) in the reader's locale. */
export function formatTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : dateFormat.format(date);
}

export function time(iso) {
  if (!iso) return '—';
  return h('time', { datetime: iso, title: iso }, formatTime(iso));
}

/** How long from `start` to `end` (or to now): `1 h 2 min`, `3 min 4 s`, `5.2 s`. */
export function duration(start, end) {
  if (!start) return '—';
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A JSON value as short text for a table cell. */
export function compactJson(value, max = 200) {
  let text;
  try { text = JSON.stringify(value); } catch { text = String(value); }
  if (text === undefined) text = '';
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** The most characters an output pane keeps: older text is dropped from its top. */
export const OUTPUT_CAP = 2 * 1024 * 1024;

/** A <pre> of the output kind that stays scrolled to its end while the reader is at the end.
 *  It keeps at most `cap` characters: past that its oldest text goes, and a line at its top
 *  says so ("(earlier output not shown)"); `markTrimmed()` shows that line when the reader
 *  started past the beginning. */
export function outputPane(attrs = {}, { cap = OUTPUT_CAP } = {}) {
  const pre = h('pre', { ...attrs, class: ['output', attrs.class], tabindex: '0' });
  const notice = h('span', { class: 'output-trimmed' }, '(earlier output not shown)\n');
  // Characters in the pane's text nodes (the notice left out).
  let length = 0;
  const markTrimmed = () => { if (notice.parentNode !== pre) pre.prepend(notice); };
  const firstText = () => (notice.parentNode === pre ? notice.nextSibling : pre.firstChild);
  function trim() {
    while (length > cap) {
      const first = firstText();
      if (!first) { length = 0; break; }
      const size = first.data.length;
      if (length - size >= cap) {
        // The whole node is older than what is kept.
        first.remove();
        length -= size;
      } else {
        // Part of it: cut after a line end near the cut if there is one, else at the cut (not
        // inside a surrogate pair).
        const drop = length - cap;
        let cut = first.data.indexOf('\n', drop);
        if (cut < 0 || cut - drop > 4096) {
          cut = drop;
          const code = first.data.charCodeAt(cut);
          if (code >= 0xdc00 && code <= 0xdfff) cut += 1;
        } else {
          cut += 1;
        }
        first.data = first.data.slice(cut);
        length -= cut;
        if (first.data.length === 0) first.remove();
      }
      markTrimmed();
    }
  }
  return {
    el: pre,
    append(text) {
      if (!text) return;
      const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      let kept = String(text);
      if (kept.length > cap) {
        kept = kept.slice(kept.length - cap);
        markTrimmed();
      }
      pre.append(document.createTextNode(kept));
      length += kept.length;
      trim();
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    },
    markTrimmed,
    clear() { pre.replaceChildren(); length = 0; },
  };
}

/** A link to the page of the resource a stream holds (`job-<id>`, `app-<name>`…), else text. */
export function streamLink(streamId) {
  const text = String(streamId ?? '');
  const dash = text.indexOf('-');
  if (dash > 0) {
    const category = text.slice(0, dash);
    const id = text.slice(dash + 1);
    const pages = { job: 'job', orchestration: 'orchestration', app: 'app', runnable: 'runnable' };
    if (pages[category] && id) return link(route(pages[category], id), text, { class: 'mono' });
  }
  return h('span', { class: 'mono' }, text);
}

// ---------------------------------------------------------------------------------------------
// Flash: the message line under the header (errors of the API, refusals).

const flashEl = () => document.getElementById('flash');

export function flash(message, kind = 'error') {
  const el = flashEl();
  if (!el) return;
  el.textContent = message ? String(message) : '';
  el.className = kind === 'info' ? 'flash-info' : 'flash-error';
  el.hidden = !message;
}

export function clearFlash() { flash(''); }

// ---------------------------------------------------------------------------------------------
// The API

/** An answer that was not a success: its problem body's message, status and code. */
export class ApiError extends Error {
  constructor(status, problem, fallback) {
    const message = (problem && (problem.detail || problem.title)) || fallback || `HTTP ${status}`;
    super(String(message));
    this.status = status;
    this.code = problem && problem.code;
    this.problem = problem;
  }
}

let currentSession = null;
// The highest log position a write of ours answered with: GETs ask the server to have applied it
// (`Bosun-Min-Position`), so a page opened right after a write shows that write.
let writtenPosition = 0;
let onSignedOut = () => {};

export function session() { return currentSession; }

/** Whether the session may read the whole log (the live feed, /v1/events, the audit). */
export function mayReadLog() {
  const s = currentSession;
  if (!s || !s.admin) return false;
  const scopes = Array.isArray(s.scopes) ? s.scopes : String(s.scopes || '').split(/[\s,]+/);
  // A session without scopes listed has its owner's rights.
  return scopes.length === 0 || scopes.includes('admin');
}

export function csrfToken() {
  // The server's own answer first: a cookie of that name could have been planted by a sibling
  // host. The cookie is `__Host-bosun_csrf` under TLS, `bosun_csrf` on plain HTTP.
  if (currentSession && currentSession.csrf) return currentSession.csrf;
  const match = document.cookie.match(/(?:^|;\s*)(?:__Host-)?bosun_csrf=([^;]*)/);
  if (match) {
    try { return decodeURIComponent(match[1]); } catch { return match[1]; }
  }
  return '';
}

/** `?a=1&b=2` of the given parameters, leaving out empty ones. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, String(v)));
    else search.append(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** Random hex, for Idempotency-Key (crypto.randomUUID needs a secure context; this does not). */
export function randomKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Calls the API: `{status, headers, data}`; data is the parsed JSON, the text of a text answer,
 * or null. A non-2xx answer throws ApiError with the problem's message; a 401 also ends the
 * session in the page. Writes carry the CSRF token and JSON.
 */
export async function api(method, path, { body, signal, headers = {}, raw = false } = {}) {
  const write = method !== 'GET' && method !== 'HEAD';
  const sent = { Accept: 'application/json, text/plain;q=0.9', ...headers };
  if (write) {
    sent['Content-Type'] = sent['Content-Type'] || 'application/json';
    sent['X-CSRF-Token'] = csrfToken();
  } else if (writtenPosition > 0 && path.startsWith('/v1/')) {
    sent['Bosun-Min-Position'] = String(writtenPosition);
  }
  const init = { method, credentials: 'same-origin', headers: sent, signal };
  if (write) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body === undefined ? {} : body);
  }
  const response = await fetch(path, init);
  const position = Number(response.headers.get('Bosun-Position'));
  if (write && Number.isFinite(position) && position > writtenPosition) writtenPosition = position;
  const type = response.headers.get('Content-Type') || '';
  let data = null;
  if (response.status !== 204 && method !== 'HEAD') {
    if (raw && response.ok) data = await response.arrayBuffer();
    else if (type.includes('json')) data = await response.json().catch(() => null);
    else data = await response.text();
  }
  if (!response.ok) {
    const problem = data && typeof data === 'object' && !(data instanceof ArrayBuffer) ? data : null;
    const error = new ApiError(response.status, problem, response.statusText);
    if (response.status === 401 && path.startsWith('/v1/') && currentSession) {
      onSignedOut('Your session has ended: sign in again.');
    }
    throw error;
  }
  return { status: response.status, headers: response.headers, data };
}

export async function getJson(path, opts) { return (await api('GET', path, opts)).data; }
export async function post(path, body, opts = {}) { return (await api('POST', path, { ...opts, body })).data; }
export async function patch(path, body, opts = {}) { return (await api('PATCH', path, { ...opts, body })).data; }

export function isAbort(error) {
  return error && (error.name === 'AbortError' || error.name === 'Aborted');
}

/** Shows an error in #flash (a navigation's aborted request is no error). */
export function showError(error, prefix) {
  if (isAbort(error)) return;
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  flash(prefix ? `${prefix}: ${message}` : message);
}

/** A button that runs `action` once per click, disabled while it runs; errors go to #flash. */
export function actionButton(label, attrs, action) {
  const button = h('button', { type: 'button', ...attrs }, label);
  button.addEventListener('click', async () => {
    if (button.disabled) return;
    button.disabled = true;
    try {
      clearFlash();
      await action();
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** Follows an output or logs URL (`Bosun-Output-Offset`, `Bosun-Output-Complete`) into `pane`.
 *  Returns whether the output is complete. */
export async function readOutput(url, state, pane, signal) {
  for (let pages = 0; pages < 20; pages++) {
    const sep = url.includes('?') ? '&' : '?';
    const before = state.offset;
    const answer = await api('GET', `${url}${sep}offset=${before}`, { signal });
    const text = typeof answer.data === 'string' ? answer.data : '';
    pane.append(text);
    const next = Number(answer.headers.get('Bosun-Output-Offset'));
    const moved = Number.isFinite(next) && next > before;
    if (Number.isFinite(next)) state.offset = Math.max(before, next);
    state.complete = answer.headers.get('Bosun-Output-Complete') === 'true';
    // A full page (offsets are bytes, the text is characters): read on at once; else wait for
    // the next tick.
    if (state.complete || !moved || next - before < 512 * 1024) break;
  }
  return state.complete;
}

// ---------------------------------------------------------------------------------------------
// The live feed: /v1/events/live over a WebSocket (the session cookie authenticates the upgrade).

/** The wait before retry `n` (1, 2, …): 2 s, 4 s, 8 s, 16 s, then 30 s. */
function backoff(n) {
  return Math.min(30000, 1000 * 2 ** Math.max(0, Math.min(n, 5)));
}

/** The `Bosun-Head` header as a position, or null when it is missing or not a number. */
function parseHead(value) {
  if (value === null || !/^\s*\d+\s*$/.test(value)) return null;
  const head = Number(value);
  return Number.isSafeInteger(head) ? head : null;
}

/**
 * Events as they are written, from now on (or from `back` positions before now), delivered to
 * `onEvent(envelope)`. With `backlog(head)` (async), that is called once the head of the log is
 * known, before the socket opens, and the feed then starts right after the head (`back` is not
 * used): a page reads its own backlog (a filtered one, say) from `/v1/events`.
 *
 * The feed never connects without `from`: it first asks `/v1/events` for the head of the log
 * (`Bosun-Head`), and retries that probe with a growing wait when it fails (network, 5xx, 400, or
 * an answer without the header); a 401/403 ends the feed.
 *
 * The feed is for admins. With the session cookie, a refusal comes before the upgrade as an HTTP
 * 401/403, which the browser only shows as a close 1006 of a socket that never opened: three
 * sockets in a row that never open end the feed. A close 4401/4403 comes after the upgrade, when
 * the token stops being good for the feed (revoked, expired, no longer admin): that ends it too.
 * Ending calls `onFallback(reason, from)` once (`from`: where the feed would have read on, or
 * null), so the page can poll instead, and sets the state 'off'. Other closes reconnect from the
 * position after the last event seen (a slow consumer's 4408 says where), after a wait that
 * grows with each close that delivered nothing (a server that accepts and then closes at once
 * is not hammered); six such closes in a row end the feed as well.
 */
export class LiveFeed {
  constructor({ category, type, back = 0, backlog, onEvent, onFallback, onState }) {
    this.category = category;
    this.type = type;
    this.back = back;
    this.backlog = backlog || null;
    this.onEvent = onEvent || (() => {});
    this.onFallback = onFallback || (() => {});
    this.onState = onState || (() => {});
    this.socket = null;
    this.stopped = false;
    this.from = null;
    // Head probes that failed in a row.
    this.probeFailures = 0;
    // Sockets in a row that never opened.
    this.refused = 0;
    // Closes in a row that delivered no message (and did not stay open a good while).
    this.quiet = 0;
    this.timer = null;
  }

  async start() {
    if (this.stopped) return;
    if (!mayReadLog()) {
      this.fallback('the live feed is for admins');
      return;
    }
    this.onState(this.probeFailures ? 'reconnecting' : 'connecting');
    let head;
    try {
      const answer = await api('GET', `/v1/events${query({ from: 9007199254740991, limit: 1 })}`);
      head = parseHead(answer.headers.get('Bosun-Head'));
      if (head === null) throw new Error('the head of the log was not given (no Bosun-Head)');
    } catch (error) {
      if (this.stopped) return;
      if (error instanceof ApiError && (error.status === 403 || error.status === 401)) {
        this.fallback(error.message);
        return;
      }
      this.probeFailures += 1;
      this.onState('reconnecting');
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.start(), backoff(this.probeFailures));
      return;
    }
    this.probeFailures = 0;
    if (this.stopped) return;
    if (this.backlog) {
      try {
        await this.backlog(head);
      } catch (error) {
        if (!this.stopped && !isAbort(error)) console.warn('the backlog could not be read', error);
      }
      if (this.stopped) return;
      this.from = Math.max(1, head + 1);
    } else {
      this.from = Math.max(1, head + 1 - this.back);
    }
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    if (!Number.isSafeInteger(this.from) || this.from < 1) {
      // Never without `from` (it would start at the log's beginning): probe the head again.
      this.start();
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = query({ from: this.from, category: this.category, type: this.type });
    let opened = false;
    let delivered = false;
    let openedAt = 0;
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}/v1/events/live${params}`);
    } catch {
      this.fallback('the live feed could not be opened');
      return;
    }
    this.socket = socket;
    this.onState('connecting');
    socket.addEventListener('open', () => {
      opened = true;
      openedAt = Date.now();
      this.refused = 0;
      this.onState('live');
    });
    socket.addEventListener('message', (message) => {
      if (typeof message.data !== 'string') return;
      delivered = true;
      this.quiet = 0;
      let envelope;
      try { envelope = JSON.parse(message.data); } catch { return; }
      if (envelope && Number.isSafeInteger(envelope.position)) this.from = envelope.position + 1;
      try { this.onEvent(envelope); } catch (error) { console.error(error); }
    });
    socket.addEventListener('close', (event) => {
      if (this.socket === socket) this.socket = null;
      if (this.stopped) return;
      // After the upgrade: the token stopped being good for the feed.
      if (event.code === 4403 || event.code === 4401) {
        this.fallback(event.reason || 'the live feed is for admins');
        return;
      }
      if (event.code === 4408) {
        try {
          const reason = JSON.parse(event.reason);
          if (Number.isSafeInteger(reason.last_position)) this.from = reason.last_position + 1;
        } catch { /* keep the last position seen */ }
      }
      if (!opened) this.refused += 1;
      // A socket that stayed open a minute was fine even if nothing matched its filter.
      if (delivered || (opened && Date.now() - openedAt >= 60000)) this.quiet = 0;
      else this.quiet += 1;
      if (this.refused >= 3 || this.quiet >= 6) {
        this.fallback('the live feed is not available');
        return;
      }
      this.onState('reconnecting');
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), this.quiet ? backoff(this.quiet) : 1000);
    });
  }

  fallback(reason) {
    if (this.stopped) return;
    const from = Number.isSafeInteger(this.from) ? this.from : null;
    this.stop();
    this.onState('off');
    this.onFallback(reason, from);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket) {
      try { this.socket.close(1000); } catch { /* already closed */ }
      this.socket = null;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pages and routing

/**
 * What a page gets: `main` to fill, `signal` (aborted when the reader leaves the page),
 * `params` of the route, `search` (the URLSearchParams after `?` in the hash), `cleanup(fn)` to
 * run on leaving, `every(ms, fn)` to repeat `fn` (awaited) until leaving, and `alive()`.
 */
class PageContext {
  constructor(main, params, search) {
    this.main = main;
    this.params = params;
    this.search = search;
    this.controller = new AbortController();
    this.signal = this.controller.signal;
    this.cleanups = [];
  }

  alive() { return !this.signal.aborted; }

  /** Runs `fn` on leaving; at once when the page was already left. */
  cleanup(fn) {
    if (this.alive()) {
      this.cleanups.push(fn);
      return;
    }
    try { fn(); } catch (error) { console.error(error); }
  }

  every(ms, fn, { now = true } = {}) {
    let timer = null;
    const tick = async () => {
      if (!this.alive()) return;
      try {
        const again = await fn();
        if (again === false) return;
      } catch (error) {
        if (!this.alive()) return;
        showError(error);
      }
      if (this.alive()) timer = setTimeout(tick, typeof ms === 'function' ? ms() : ms);
    };
    if (now) tick(); else timer = setTimeout(tick, typeof ms === 'function' ? ms() : ms);
    this.cleanup(() => clearTimeout(timer));
  }

  leave() {
    this.controller.abort();
    for (const fn of this.cleanups) {
      try { fn(); } catch (error) { console.error(error); }
    }
    this.cleanups = [];
  }
}

// [pattern of the hash (without `#` and `?…`), module, export, nav link it belongs to]
const ROUTES = [
  [/^jobs$/, 'page-jobs.js', 'jobsPage', 'jobs'],
  [/^submit$/, 'page-submit.js', 'submitPage', 'submit'],
  [/^job\/([^/]+)$/, 'page-job.js', 'jobPage', 'jobs'],
  [/^orchestrations$/, 'page-orchestrations.js', 'orchestrationsPage', 'orchestrations'],
  [/^orchestration\/([^/]+)$/, 'page-orchestrations.js', 'orchestrationPage', 'orchestrations'],
  [/^apps$/, 'page-apps.js', 'appsPage', 'apps'],
  [/^app\/([^/]+)$/, 'page-apps.js', 'appPage', 'apps'],
  [/^runnables$/, 'page-runnables.js', 'runnablesPage', 'runnables'],
  [/^runnable\/([^/]+)$/, 'page-runnables.js', 'runnablePage', 'runnables'],
  [/^audit$/, 'page-audit.js', 'auditPage', 'audit'],
  [/^events$/, 'page-events.js', 'eventsPage', 'events'],
];

let currentPage = null;
let routeSerial = 0;

/** Goes to `hash` (`#jobs?status=error`); the same hash again renders the page anew. */
export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function markNav(section) {
  for (const a of document.querySelectorAll('#nav a')) {
    const active = a.getAttribute('href') === `#${section}`;
    a.classList.toggle('active', active);
    if (active) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
}

async function render() {
  if (!currentSession) return;
  const serial = ++routeSerial;
  if (currentPage) currentPage.leave();
  currentPage = null;
  clearFlash();
  const raw = location.hash.replace(/^#/, '');
  if (raw === '') {
    history.replaceState(null, '', '#jobs');
  }
  const hash = raw || 'jobs';
  const [pathPart, searchPart = ''] = hash.split('?', 2);
  const main = document.getElementById('app');
  main.replaceChildren();
  for (const [pattern, module, name, section] of ROUTES) {
    const match = pathPart.match(pattern);
    if (!match) continue;
    markNav(section);
    let params;
    try {
      params = match.slice(1).map((p) => decodeURIComponent(p));
    } catch {
      flash(`Not a page of the console: #${hash}`);
      return;
    }
    const page = new PageContext(main, params, new URLSearchParams(searchPart));
    currentPage = page;
    main.append(h('p', { class: 'muted loading' }, 'Loading…'));
    let pageModule;
    try {
      pageModule = await import(`./${module}`);
    } catch (error) {
      console.error(error);
      if (serial === routeSerial) {
        main.replaceChildren();
        flash(`The console could not load ${module}.`);
      }
      return;
    }
    if (serial !== routeSerial || !page.alive()) return;
    main.replaceChildren();
    try {
      await pageModule[name](page);
    } catch (error) {
      if (page.alive()) showError(error);
    }
    return;
  }
  markNav('');
  flash(`Not a page of the console: #${hash}`);
}

// ---------------------------------------------------------------------------------------------
// Session and sign-in

function byId(id) { return document.getElementById(id); }

function showSignedIn(signedIn) {
  currentSession = signedIn;
  byId('signin-view').hidden = true;
  byId('nav').hidden = false;
  byId('user').hidden = false;
  byId('whoami').textContent = signedIn.username;
  byId('whoami-role').textContent = signedIn.admin ? 'admin' : '';
  byId('whoami-role').hidden = !signedIn.admin;
  const form = byId('signin');
  form.reset();
  render();
}

async function showSignIn(message) {
  if (currentPage) currentPage.leave();
  currentPage = null;
  currentSession = null;
  byId('nav').hidden = true;
  byId('user').hidden = true;
  byId('app').replaceChildren();
  byId('signin-view').hidden = false;
  if (message) flash(message, 'info'); else clearFlash();
  const username = byId('signin').elements.namedItem('username');
  if (username) username.focus();
  try {
    const settings = await getJson('/console/settings');
    byId('github-signin').hidden = !(settings && settings.github === true);
  } catch {
    byId('github-signin').hidden = true;
  }
}

onSignedOut = (message) => { showSignIn(message); };

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector('button[type=submit]');
  const username = form.elements.namedItem('username').value.trim();
  const password = form.elements.namedItem('password').value;
  button.disabled = true;
  try {
    const answer = await api('POST', '/console/session', { body: { username, password } });
    clearFlash();
    showSignedIn(answer.data);
  } catch (error) {
    flash(error instanceof ApiError && error.status === 401
      ? `Sign-in refused: ${error.message}` : error.message);
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try {
    await api('DELETE', '/console/session');
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      showError(error, 'Signing out failed');
      return;
    }
  }
  showSignIn('Signed out.');
}

async function start() {
  byId('signin').addEventListener('submit', signIn);
  byId('signout').addEventListener('click', signOut);
  byId('flash').addEventListener('click', clearFlash);
  window.addEventListener('hashchange', () => render());
  try {
    const answer = await api('GET', '/console/session');
    showSignedIn(answer.data);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) showSignIn();
    else {
      showSignIn();
      showError(error, 'The server could not be reached');
    }
  }
}

start();
