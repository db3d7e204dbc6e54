// The live event view (#events?category=&type=): ul#live-events, newest on top, at most 500
// items, from /v1/events/live (the last 50 events first, then as they are written), filtered by
// category and event type as the feed takes them. With a filter, the last 50 matching events
// come from GET /v1/events (same filter), read backwards in growing windows of positions. When
// the feed cannot be had, GET /v1/events?from= is polled every 2 s instead. All of it is for
// admins: anyone else sees a message saying so.

import {
  h, api, time, pageHeader, navigate, query, streamLink, flash, LiveFeed, mayReadLog, ApiError,
} from './console.js';
import { liveState } from './page-jobs.js';

const MAX_ITEMS = 500;
const BACKLOG = 50;
const MAX_JSON = 20000;
const POLL_MS = 2000;
const EVENTS_PAGE = 1000;

export async function eventsPage(page) {
  const category = page.search.get('category') || '';
  const type = page.search.get('type') || '';

  const list = h('ul', { id: 'live-events', class: 'events' });
  const note = h('p', { id: 'live-events-note', class: 'notice', hidden: true });
  const state = liveState();
  const counter = h('span', { class: 'muted small' });
  const categoryInput = h('input', { name: 'category', type: 'search', value: category, placeholder: 'job,app', size: '12', autocapitalize: 'none' });
  const typeInput = h('input', { name: 'type', type: 'search', value: type, placeholder: 'JobFinished', size: '14', autocapitalize: 'none' });
  let paused = false;
  // Set once the backlog is in: only later events flash as new.
  let loaded = false;
  const held = [];
  const pause = h('button', { type: 'button', id: 'pause-events' }, 'Pause');
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? `Resume${held.length ? ` (${held.length})` : ''}` : 'Pause';
    if (!paused) { held.splice(0).forEach(add); pause.textContent = 'Pause'; }
  });
  const clear = h('button', { type: 'button', onclick: () => { list.replaceChildren(); count(); } }, 'Clear');
  const form = h('form', { class: 'toolbar', id: 'event-filters' },
    h('label', {}, 'Categories', categoryInput),
    h('label', {}, 'Types', typeInput),
    h('button', { type: 'submit' }, 'Filter'),
    pause, clear, state.el);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate(`#events${query({ category: categoryInput.value.trim(), type: typeInput.value.trim() })}`);
  });

  page.main.append(pageHeader('Live events'), note, form, h('section', { class: 'card' }, list, counter));

  function count() {
    counter.textContent = list.children.length ? `${list.children.length} shown (at most ${MAX_ITEMS})` : 'No events yet.';
  }
  count();

  function add(envelope) {
    const data = envelope.data;
    let json;
    try { json = JSON.stringify(data, null, 2); } catch { json = String(data); }
    if (json && json.length > MAX_JSON) json = `${json.slice(0, MAX_JSON)}\n…`;
    const actor = envelope.metadata && envelope.metadata.actor;
    const item = h('li', { class: loaded ? 'fresh' : null, dataset: { position: envelope.position, eventType: envelope.event_type } },
      h('details', {},
        h('summary', {},
          h('span', { class: 'position' }, `#${envelope.position}`),
          h('span', { class: 'event-type' }, String(envelope.event_type)),
          streamLink(envelope.stream_id),
          h('span', { class: 'muted small' }, actor ? `by ${actor}` : ''),
          h('span', { class: 'muted small' }, time(envelope.recorded_at))),
        h('pre', { class: 'json' }, json || 'null'),
        metadataLine(envelope.metadata)));
    list.prepend(item);
    while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
    count();
  }

  if (!mayReadLog()) {
    note.textContent = 'The live event feed is for admins: sign in as an admin to watch it.';
    note.hidden = false;
    flash('The live event feed is for admins.', 'info');
    state.set('off');
    return;
  }

  function deliver(envelope) {
    if (!page.alive() || !envelope) return;
    if (paused) {
      held.push(envelope);
      if (held.length > MAX_ITEMS) held.shift();
      pause.textContent = `Resume (${held.length})`;
    } else add(envelope);
  }

  // The last BACKLOG events matching the filter, at or before `head`: windows of positions
  // before the head, each read forwards with the filter, newest window first, growing while
  // they hold few events, shrinking when one holds more than a page.
  async function readBacklog(head) {
    let found = [];
    let end = head;
    let size = 500;
    for (let asked = 0; asked < 30 && end >= 1 && found.length < BACKLOG; asked++) {
      const start = Math.max(1, end - size + 1);
      const answer = await api('GET', `/v1/events${query({ from: start, limit: EVENTS_PAGE, category, type })}`, { signal: page.signal });
      if (!page.alive()) return;
      const list = (Array.isArray(answer.data) ? answer.data : []).filter((e) => e && Number.isSafeInteger(e.position));
      const last = list.length ? list[list.length - 1].position : 0;
      if (list.length >= EVENTS_PAGE && last < end) {
        // More than a page in the window: a narrower one (a page always covers 1000 positions).
        size = Math.max(EVENTS_PAGE, Math.floor(size / 8));
        continue;
      }
      const inWindow = list.filter((e) => e.position <= end);
      found = inWindow.concat(found);
      end = start - 1;
      if (inWindow.length < BACKLOG / 2) size = Math.min(size * 2, 1 << 20);
    }
    found.slice(-BACKLOG).forEach(deliver);
  }

  // Without the feed: GET /v1/events from the next position, every 2 s.
  function poll(from, reason) {
    let next = from;
    state.set('polling');
    note.textContent = `The live event feed is not available (${reason}): reading the log every 2 s instead.`;
    note.hidden = false;
    page.every(POLL_MS, async () => {
      let answer;
      try {
        answer = await api('GET', `/v1/events${query({ from: next, limit: EVENTS_PAGE, category, type })}`, { signal: page.signal });
      } catch (error) {
        if (page.alive() && error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          off(error.message);
          return false;
        }
        throw error;
      }
      if (!page.alive()) return false;
      for (const envelope of Array.isArray(answer.data) ? answer.data : []) {
        if (!envelope || !Number.isSafeInteger(envelope.position)) continue;
        next = Math.max(next, envelope.position + 1);
        deliver(envelope);
      }
      return undefined;
    }, { now: true });
  }

  function off(reason) {
    state.set('off');
    note.textContent = `The live event feed is off: ${reason}. It is for admins.`;
    note.hidden = false;
  }

  // The backlog comes in one burst: shown without the "fresh" flash, then live ones with it.
  setTimeout(() => { loaded = true; }, 1500);
  const feed = new LiveFeed({
    category,
    type,
    back: BACKLOG,
    // A filter: the last positions may hold none of its events, so the backlog is looked for.
    backlog: category || type ? readBacklog : undefined,
    onEvent: deliver,
    onState: (s) => state.set(s),
    onFallback: (reason, from) => {
      if (!page.alive()) return;
      if (from !== null && mayReadLog()) poll(from, reason);
      else off(reason);
    },
  });
  feed.start();
  page.cleanup(() => feed.stop());
}

function metadataLine(metadata) {
  if (!metadata || typeof metadata !== 'object') return null;
  const parts = [];
  for (const key of ['request_id', 'correlation_id', 'causation_id', 'source', 'user_agent']) {
    if (metadata[key]) parts.push(`${key}: ${metadata[key]}`);
  }
  return parts.length ? h('p', { class: 'muted small mono' }, parts.join(' · ')) : null;
}
