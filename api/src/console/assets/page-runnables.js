// Runnables: the list (#runnables, GET /v1/runnables) and one (#runnable/<id>): its state and
// run (refreshed every 2 s), start / stop / restart buttons, its file tree (GET
// /v1/runnables/{id}/files?path=, one folder at a time; a file's content from
// GET /v1/runnables/{id}/files/{path}) and its logs (GET /v1/runnables/{id}/logs?offset=).

import {
  h, api, getJson, post, table, noteRow, badge, time, link, route, details, section,
  pageHeader, navigate, actionButton, query, outputPane, readOutput, bytes, ApiError, showError,
} from './console.js';

const PAGE_SIZE = 100;
const SHOWN_FILE_BYTES = 256 * 1024;

export async function runnablesPage(page) {
  const offset = Math.max(0, Number.parseInt(page.search.get('offset') || '0', 10) || 0);
  const mine = page.search.get('owner') || '';
  const answer = await api('GET', `/v1/runnables${query({ owner: mine, limit: PAGE_SIZE, offset: offset || '' })}`, { signal: page.signal });
  if (!page.alive()) return;
  const list = Array.isArray(answer.data) ? answer.data : [];
  const total = Number(answer.headers.get('X-Total-Count'));
  const { wrap, tbody } = table(['Name', 'State', 'Owner', 'Image', 'Last access', 'Created'], { id: 'runnable-list' });
  for (const r of list) {
    const row = h('tr', { class: 'clickable', dataset: { runnableId: r.id } },
      h('td', { class: 'wrap' }, link(route('runnable', r.id), r.name || r.id)),
      h('td', { class: 'status' }, badge(r.state)),
      h('td', {}, r.owner || '—'),
      h('td', { class: 'nowrap' }, r.image ? h('span', { title: r.image.digest }, 'saved ', time(r.image.saved_at)) : '—'),
      h('td', { class: 'nowrap' }, time(r.last_access)),
      h('td', { class: 'nowrap' }, time(r.created_at)));
    row.addEventListener('click', (event) => { if (!event.target.closest('a')) navigate(route('runnable', r.id)); });
    tbody.append(row);
  }
  if (!list.length) tbody.append(noteRow(6, 'No runnables you may see.'));
  const pager = h('div', { class: 'pager' },
    h('button', { type: 'button', hidden: offset === 0, onclick: () => navigate(`#runnables${query({ owner: mine, offset: Math.max(0, offset - PAGE_SIZE) || '' })}`) }, '← Previous'),
    h('button', { type: 'button', hidden: !(Number.isFinite(total) && offset + list.length < total), onclick: () => navigate(`#runnables${query({ owner: mine, offset: offset + PAGE_SIZE })}`) }, 'Next →'),
    Number.isFinite(total) ? h('span', { class: 'muted small' }, `${total} runnables`) : null);
  page.main.append(pageHeader('Runnables'), wrap, pager);
}

/** A path of the tree as URL path segments, each encoded. */
function encodePath(path) {
  return String(path).split('/').filter(Boolean).map(encodeURIComponent).join('/');
}

export async function runnablePage(page) {
  const [id] = page.params;
  const url = `/v1/runnables/${encodeURIComponent(id)}`;
  let runnable = await getJson(url, { signal: page.signal });
  if (!page.alive()) return;

  const title = h('h1', {}, runnable.name || id);
  const state = badge(runnable.state, { id: 'runnable-state' });
  const start = actionButton('Start', { id: 'start', class: 'primary' }, async () => {
    show(await post(`${url}/start`, {}, { signal: page.signal }));
    logs.wake();
  });
  const stop = actionButton('Stop', { id: 'stop', class: 'danger' }, async () => {
    show(await post(`${url}/stop`, {}, { signal: page.signal }));
  });
  const restart = actionButton('Restart', { id: 'restart-runnable' }, async () => {
    show(await post(`${url}/restart`, {}, { signal: page.signal }));
    logs.wake();
  });
  const facts = h('div');
  const gone = h('p', { class: 'notice', id: 'runnable-gone', hidden: true });
  // Said once, by whichever loop sees the 404 first; every loop stops on it.
  const markGone = () => {
    if (!gone.hidden) return;
    gone.textContent = `The runnable ${runnable.name || id} is gone (deleted): what is shown is its last known state.`;
    gone.hidden = false;
    start.hidden = true;
    stop.hidden = true;
    restart.hidden = true;
  };
  const files = fileBrowser(url, page);
  const logs = logView(url, page, markGone);

  page.main.append(
    h('div', { class: 'page-header' }, title, state, h('div', { class: 'actions' }, start, stop, restart)),
    gone,
    section('Details', facts),
    files.card,
    logs.card);

  function show(r) {
    if (!r || !page.alive()) return;
    // A poll's answer that left before a write's may come back after it: keep the newer.
    if (runnable && Number(r.version) < Number(runnable.version)) return;
    runnable = r;
    title.textContent = r.name || id;
    state.textContent = String(r.state);
    state.className = `badge status-${String(r.state).replace(/[^a-z0-9-]/g, '-')}`;
    const running = r.state === 'running' || r.state === 'starting';
    start.hidden = running || !gone.hidden;
    stop.hidden = !running || !gone.hidden;
    const run = r.run || {};
    facts.replaceChildren(details([
      ['ID', h('span', { class: 'mono' }, String(r.id))],
      ['Owner', r.owner],
      ['Parent', r.parent ? link(route('runnable', r.parent), String(r.parent), { class: 'mono' }) : 'none (a root runnable)'],
      ['Image', r.image ? h('span', {}, h('code', {}, String(r.image.digest).slice(0, 16)), ' saved ', time(r.image.saved_at)) : 'none'],
      ['Start command', h('code', {}, r.start_command || ''), 'wide'],
      ['Generation', run.generation === undefined ? null : String(run.generation)],
      ['Node', run.node || null],
      ['PID', run.pid ? String(run.pid) : null],
      ['Exit code', run.exit_code === null || run.exit_code === undefined ? null : String(run.exit_code)],
      run.signal ? ['Signal', String(run.signal)] : null,
      ['State since', time(run.since)],
      run.diagnostics ? ['Diagnostics', h('pre', { class: 'json' }, String(run.diagnostics)), 'wide'] : null,
      ['Last access', time(r.last_access)],
      ['Created', time(r.created_at)],
    ]));
  }
  show(runnable);
  files.open('');
  logs.start();

  page.every(2000, async () => {
    if (!gone.hidden) return false;
    try {
      show(await getJson(url, { signal: page.signal }));
    } catch (error) {
      if (page.alive() && error instanceof ApiError && error.status === 404) {
        markGone();
        return false;
      }
      throw error;
    }
    return undefined;
  }, { now: false });
}

function fileBrowser(url, page) {
  const crumbs = h('div', { class: 'breadcrumbs' });
  const { wrap, tbody } = table(['Name', 'Size', 'Digest'], { id: 'runnable-files' });
  const viewer = h('div', { class: 'file-view' });
  const card = section('Files', crumbs, wrap, viewer);
  let current = '';
  // The latest file clicked: an older click's answer is not shown over it.
  let shownFile = 0;

  async function open(path) {
    current = path;
    tbody.replaceChildren(noteRow(3, 'Loading…'));
    let entries;
    try {
      entries = await getJson(`${url}/files${query({ path: path || '' })}`, { signal: page.signal });
    } catch (error) {
      if (!page.alive() || current !== path) return;
      if (error instanceof ApiError && error.status === 403) {
        card.replaceChildren(h('h2', {}, 'Files'), h('p', { class: 'muted' }, 'Only its owner or an admin may read its files.'));
        return;
      }
      tbody.replaceChildren(noteRow(3, error.message));
      return;
    }
    if (!page.alive() || current !== path) return;
    showCrumbs(path);
    const list = Array.isArray(entries) ? entries : [];
    tbody.replaceChildren();
    const sorted = [...list].sort((a, b) => (b.dir - a.dir) || String(a.path).localeCompare(String(b.path)));
    for (const entry of sorted) {
      const full = String(entry.path);
      const name = full.split('/').filter(Boolean).pop() || full;
      const button = h('button', { type: 'button', class: 'file-name' }, entry.dir ? `${name}/` : name);
      button.addEventListener('click', () => (entry.dir ? open(full) : showFile(full, entry)));
      tbody.append(h('tr', { dataset: { path: full } },
        h('td', { class: 'wrap' }, button),
        h('td', { class: 'nowrap' }, bytes(entry.size)),
        h('td', { class: 'mono small' }, entry.digest ? String(entry.digest).slice(0, 12) : '')));
    }
    if (!sorted.length) tbody.append(noteRow(3, 'No files.'));
  }

  function showCrumbs(path) {
    const parts = String(path).split('/').filter(Boolean);
    const items = [h('button', { type: 'button', onclick: () => open('') }, '/')];
    parts.forEach((part, i) => {
      const upTo = parts.slice(0, i + 1).join('/');
      items.push(h('button', { type: 'button', onclick: () => open(upTo) }, part), '/');
    });
    crumbs.replaceChildren(...items);
  }

  async function showFile(path, entry) {
    const token = ++shownFile;
    viewer.replaceChildren(h('p', { class: 'muted' }, `Loading ${path}…`));
    try {
      const answer = await api('GET', `${url}/files/${encodePath(path)}`, { signal: page.signal, raw: true });
      if (!page.alive() || token !== shownFile) return;
      const buffer = new Uint8Array(answer.data || new ArrayBuffer(0));
      const head = buffer.subarray(0, SHOWN_FILE_BYTES);
      const binary = head.includes(0);
      const pane = outputPane({ id: 'file-content' });
      if (binary) {
        pane.append(`(a binary file, ${bytes(buffer.length)})`);
      } else {
        pane.append(new TextDecoder('utf-8', { fatal: false }).decode(head));
        if (buffer.length > SHOWN_FILE_BYTES) pane.append(`\n… (${bytes(buffer.length - SHOWN_FILE_BYTES)} more not shown)`);
      }
      viewer.replaceChildren(h('h2', { class: 'subhead mono' }, path, ' ', h('span', { class: 'muted small' }, bytes(entry.size))), pane.el);
    } catch (error) {
      if (!page.alive() || token !== shownFile) return;
      viewer.replaceChildren();
      showError(error, path);
    }
  }

  return { card, open };
}

/** Its logs, read on while the page is open; kept to the pane's cap (the oldest go). `onGone`
 *  is called when the runnable is gone (404), and reading stops. */
function logView(url, page, onGone) {
  const pane = outputPane({ id: 'runnable-logs' });
  const card = section('Logs', pane.el);
  const state = { offset: 0, complete: false };
  let stopped = false;

  async function tick() {
    if (stopped) return false;
    try {
      await readOutput(`${url}/logs`, state, pane, page.signal);
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) {
        stopped = true;
        card.replaceChildren(h('h2', {}, 'Logs'), h('p', { class: 'muted' }, 'Only its owner or an admin may read its logs.'));
        return false;
      }
      if (error instanceof ApiError && error.status === 404 && page.alive()) {
        stopped = true;
        onGone();
        return false;
      }
      throw error;
    }
    return undefined;
  }

  return {
    card,
    start() {
      // Every second while it runs; every 5 s once nothing runs (it may be started elsewhere).
      page.every(() => (state.complete ? 5000 : 1000), tick);
    },
    // A start: read at the quick pace again.
    wake() { state.complete = false; },
  };
}
