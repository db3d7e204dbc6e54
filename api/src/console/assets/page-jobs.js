// The job list (#jobs): newest first, filtered by status and app, paged; kept up to date over
// the live feed (admins) or by polling GET /v1/jobs every 2 s. Also the job table other pages
// reuse (an orchestration's jobs, an app's jobs).

import {
  h, api, query, table, noteRow, badge, time, duration, link, route, pageHeader, navigate,
  LiveFeed, showError,
} from './console.js';

export const JOB_STATUSES = ['waiting', 'processing', 'success', 'error', 'warning', 'cancelled', 'killed'];

/** The events that change a job's row (its output is left out: there is a lot of it). */
export const JOB_ROW_EVENTS = [
  'JobSubmitted', 'JobStarted', 'JobTaskStarted', 'JobTaskFinished', 'JobRetried',
  'JobCancelled', 'JobKillRequested', 'JobFinished',
].join(',');

export const FINISHED = new Set(['success', 'error', 'warning', 'cancelled', 'killed']);

/** What a job is called: its name, its catalog task, or its orchestration. */
export function jobTitle(job) {
  if (job.app && job.env && job.task) {
    const task = `${job.app}/${job.env}/${job.task}`;
    return job.name && job.name !== task ? `${job.name} (${task})` : task;
  }
  if (job.name) return job.name;
  if (job.orchestration_id) return `orchestration ${job.orchestration_id}`;
  return job.kind ? `${job.kind} job` : 'job';
}

/** A table of jobs whose rows are updated in place (so a row and its status cell stay the
 *  same elements while the job changes): `tr[data-job-id]`, `td.status`. */
export class JobTable {
  constructor(id) {
    const { wrap, table: el, tbody } = table(['Status', 'Job', 'Created', 'Duration', 'By'], { id, class: 'jobs' });
    this.wrap = wrap;
    this.table = el;
    this.tbody = tbody;
    this.rows = new Map();
    this.loaded = false;
    tbody.append(noteRow(5, 'Loading…'));
    tbody.addEventListener('click', (event) => {
      if (event.target.closest('a, button')) return;
      const row = event.target.closest('tr[data-job-id]');
      if (row) navigate(route('job', row.dataset.jobId));
    });
  }

  update(jobs) {
    const seen = new Set();
    const rows = [];
    for (const job of jobs) {
      if (!job || !job.id) continue;
      const id = String(job.id);
      seen.add(id);
      let row = this.rows.get(id);
      if (!row) {
        row = h('tr', { class: ['clickable', this.loaded && 'fresh'], dataset: { jobId: id } },
          h('td', { class: 'status' }), h('td', { class: 'wrap' }), h('td', { class: 'nowrap' }),
          h('td', { class: 'nowrap' }), h('td'));
        this.rows.set(id, row);
      }
      fill(row, job);
      rows.push(row);
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) { row.remove(); this.rows.delete(id); }
    }
    for (const child of Array.from(this.tbody.children)) {
      if (!child.dataset.jobId) child.remove();
    }
    // Appending moves existing rows into order without recreating them.
    rows.forEach((row) => this.tbody.append(row));
    if (rows.length === 0) this.tbody.append(noteRow(5, 'No jobs.'));
    this.loaded = true;
  }

  /** A first load that failed: says so in place of "Loading…" (the next update replaces it). */
  failed(error) {
    if (this.loaded) return;
    const message = error && error.message ? error.message : String(error);
    this.tbody.replaceChildren(noteRow(5, `The jobs could not be loaded: ${message}`));
  }
}

function fill(row, job) {
  const [statusCell, titleCell, createdCell, durationCell, byCell] = row.children;
  const status = String(job.status ?? '');
  if (row.dataset.status !== status) {
    statusCell.replaceChildren(badge(status));
    row.dataset.status = status;
  }
  titleCell.replaceChildren(
    link(route('job', job.id), jobTitle(job)),
    h('div', { class: 'muted small mono' }, String(job.id).slice(0, 8)));
  createdCell.replaceChildren(time(job.created_at));
  durationCell.textContent = job.started_at ? duration(job.started_at, job.finished_at) : '—';
  byCell.textContent = job.created_by || '—';
}

/** `read()` then `apply(answer)`, where overlapping calls apply in the order they were made: an
 *  answer older than one already applied is dropped. */
export function inOrder(read, apply) {
  let asked = 0;
  let shown = 0;
  return async () => {
    const serial = ++asked;
    const answer = await read();
    if (serial < shown) return;
    shown = serial;
    apply(answer);
  };
}

/** Runs `refresh` soon, once, however many times it is asked while one runs or waits. */
export function debounced(refresh, wait = 250) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try { await refresh(); } catch (error) { showError(error); } finally {
      running = false;
      if (again) { again = false; schedule(); }
    }
  };
  const schedule = () => { if (!timer) timer = setTimeout(run, wait); };
  schedule.cancel = () => { clearTimeout(timer); timer = null; };
  return schedule;
}

/** A little "● live" / "● polling" line. 'polling' is for a page that does poll; 'off' says
 *  the live feed is off (and nothing polls). */
export function liveState() {
  const el = h('span', { class: 'live-state', text: 'connecting' });
  const labels = {
    connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', polling: 'polling every 2 s',
    off: 'live feed off',
  };
  return {
    el,
    set(state) { el.textContent = labels[state] || state; el.className = `live-state state-${state}`; },
  };
}

/**
 * Keeps a job list fresh: `refresh()` after every job event of the live feed (debounced), and
 * once when the feed opens (for what happened before); every 2 s whenever the feed is not open
 * (refused to a non-admin, or connecting); every 30 s anyway, as a safety net.
 */
export function followJobs(page, refresh, state) {
  if (!page.alive()) return;
  let live = false;
  let last = Date.now();
  const fresh = async () => {
    last = Date.now();
    try { await refresh(); } catch (error) { if (page.alive()) throw error; }
  };
  const soon = debounced(fresh);
  const feed = new LiveFeed({
    category: 'job',
    type: JOB_ROW_EVENTS,
    onEvent: () => soon(),
    onState: (s) => {
      live = s === 'live';
      // Without the feed this polls every 2 s (below): say so.
      if (state) state.set(s === 'off' ? 'polling' : s);
      if (live) soon();
    },
  });
  feed.start();
  page.cleanup(() => { feed.stop(); soon.cancel(); });
  page.every(2000, async () => {
    if (!live || Date.now() - last > 30000) await fresh();
  }, { now: false });
}

const PAGE_SIZE = 50;

export async function jobsPage(page) {
  const status = page.search.get('status') || '';
  const app = page.search.get('app') || '';
  const offset = Math.max(0, Number.parseInt(page.search.get('offset') || '0', 10) || 0);
  const go = (changes) => {
    const next = { status, app, offset: 0, ...changes };
    navigate(`#jobs${query({ status: next.status, app: next.app, offset: next.offset || '' })}`);
  };

  const statusSelect = h('select', { name: 'status', id: 'status-filter', onchange: () => go({ status: statusSelect.value }) },
    h('option', { value: '' }, 'all'),
    JOB_STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)));
  const appInput = h('input', { name: 'app', type: 'search', value: app, placeholder: 'any app', size: '12' });
  const filterForm = h('form', { class: 'toolbar', id: 'job-filters', onsubmit: (e) => { e.preventDefault(); go({ app: appInput.value.trim() }); } },
    h('label', {}, 'Status', statusSelect),
    h('label', {}, 'App', appInput),
    h('button', { type: 'submit' }, 'Filter'));
  const state = liveState();
  filterForm.append(state.el);

  const jobs = new JobTable('job-list');
  const counter = h('span', { class: 'muted small' });
  const older = h('button', { type: 'button', id: 'jobs-older', hidden: true, onclick: () => go({ offset: offset + PAGE_SIZE }) }, 'Older →');
  const newer = h('button', { type: 'button', id: 'jobs-newer', hidden: offset === 0, onclick: () => go({ offset: Math.max(0, offset - PAGE_SIZE) }) }, '← Newer');

  page.main.append(
    pageHeader('Jobs', h('div', { class: 'actions' }, link('#submit', 'Submit a job', { class: 'button-link' }))),
    filterForm,
    jobs.wrap,
    h('div', { class: 'pager' }, newer, older, counter));

  // Refreshes may overlap (feed, poll): an answer older than one already shown is dropped.
  const refresh = inOrder(
    () => api('GET', `/v1/jobs${query({ status, app, limit: PAGE_SIZE, offset: offset || '' })}`, { signal: page.signal }),
    (answer) => {
      if (!page.alive()) return;
      const list = Array.isArray(answer.data) ? answer.data : [];
      jobs.update(list);
      const total = Number(answer.headers.get('X-Total-Count'));
      if (Number.isFinite(total)) {
        counter.textContent = list.length ? `${offset + 1}–${offset + list.length} of ${total}` : `${total} jobs`;
        older.hidden = offset + list.length >= total;
      }
    });
  try {
    await refresh();
  } catch (error) {
    if (!page.alive()) return;
    showError(error);
    jobs.failed(error);
  }
  // Even after a failed first load: the next refresh may work.
  followJobs(page, refresh, state);
}
