// One job (#job/<id>, also pulsar's job URL /web#job/<id>): its status, task and times, its
// output as it comes (GET /v1/jobs/{id}/output?offset=, every 500 ms until complete; the last
// OUTPUT_CAP characters of it at most), kill, cancel and restart buttons by state, its tasks,
// and its stream's events (GET /v1/streams/job-<id>, hidden when the caller may not read it;
// the first pages of them, more on request).

import {
  h, api, getJson, post, table, noteRow, badge, time, duration, link, route, details, section,
  pageHeader, navigate, actionButton, outputPane, readOutput, compactJson, bytes, ApiError,
  query, setChildren, OUTPUT_CAP,
} from './console.js';
import { jobTitle, FINISHED } from './page-jobs.js';

const RESTARTABLE = new Set(['killed', 'error', 'warning', 'cancelled']);
// Every output line bumps the job's version: the event history is read again when what it shows
// changes (status, kill, tasks) or, for the rest, at most this often.
const EVENTS_EVERY_MS = 10000;

export async function jobPage(page) {
  const [id] = page.params;
  const jobUrl = `/v1/jobs/${encodeURIComponent(id)}`;
  let job = await getJson(jobUrl, { signal: page.signal });
  if (!page.alive()) return;

  const title = h('h1', {}, jobTitle(job));
  const status = badge(job.status, { id: 'job-status' });
  const kill = actionButton('Kill', { id: 'kill', class: 'danger' }, async () => {
    show(await post(`${jobUrl}/kill`, {}, { signal: page.signal }));
  });
  const cancel = actionButton('Cancel', { id: 'cancel', class: 'danger' }, async () => {
    show(await post(`${jobUrl}/cancel`, {}, { signal: page.signal }));
  });
  const restart = actionButton('Restart', { id: 'restart' }, async () => {
    const again = await post(`${jobUrl}/restart`, {}, { signal: page.signal });
    if (again && again.id) navigate(route('job', again.id));
  });
  const runAgain = link('#submit', 'Submit with changes', { class: 'button-link', id: 'run-again', hidden: true });
  const header = h('div', { class: 'page-header' }, title, status,
    h('div', { class: 'actions' }, kill, cancel, restart, runAgain));

  const facts = h('div');
  const variables = h('div');
  const tasks = h('div');
  const pane = outputPane({ id: 'job-output' });
  const outputSize = h('span', { class: 'muted small', id: 'job-output-size' });
  const events = jobEvents(id, page);

  page.main.append(
    header,
    h('section', { class: 'card' }, facts),
    h('section', { class: 'card' },
      h('div', { class: 'output-head' }, h('h2', {}, 'Output'), outputSize),
      pane.el),
    tasks,
    variables,
    events.card);

  // What the event history is read again for at once.
  const eventsKey = (j) => JSON.stringify([j.status, Boolean(j.kill_requested), j.tasks ?? null]);
  let shownKey = null;
  let eventsReadAt = 0;
  let eventsReadVersion = null;
  const refreshEvents = () => {
    eventsReadAt = Date.now();
    eventsReadVersion = job.version;
    events.refresh();
  };

  function show(next) {
    if (!next || !page.alive()) return;
    // A poll's answer that left before a write's may come back after it: keep the newer.
    if (job && Number(next.version) < Number(job.version)) return;
    job = next;
    title.textContent = jobTitle(job);
    document.title = `${jobTitle(job)} · Bosun`;
    status.textContent = String(job.status);
    status.className = `badge status-${String(job.status).replace(/[^a-z0-9-]/g, '-')}`;
    kill.hidden = job.status !== 'processing';
    kill.textContent = job.kill_requested ? 'Kill (requested)' : 'Kill';
    cancel.hidden = job.status !== 'waiting';
    restart.hidden = !(RESTARTABLE.has(job.status) && job.kind !== 'orchestration' && !job.orchestration_id);
    const task = job.app && job.env && job.task ? `${job.app}/${job.env}/${job.task}` : null;
    runAgain.hidden = !(task && FINISHED.has(job.status));
    if (task) runAgain.setAttribute('href', `#submit${query({ task })}`);
    facts.replaceChildren(jobFacts(job));
    setChildren(variables, variablesTable(job.variables));
    setChildren(tasks, tasksCard(job.tasks));
    outputSize.textContent = `${bytes((job.stdout_bytes || 0) + (job.stderr_bytes || 0))}`;
    const key = eventsKey(job);
    if (shownKey === null) {
      shownKey = key;
    } else if (key !== shownKey) {
      shownKey = key;
      refreshEvents();
    } else if (job.version !== eventsReadVersion && Date.now() - eventsReadAt >= EVENTS_EVERY_MS) {
      refreshEvents();
    }
  }
  show(job);
  refreshEvents();
  document.title = `${jobTitle(job)} · Bosun`;
  page.cleanup(() => { document.title = 'Bosun'; });

  // The job itself, every second until it has finished (then once more for its last state).
  page.every(1000, async () => {
    const next = await getJson(jobUrl, { signal: page.signal });
    show(next);
    return FINISHED.has(next.status) ? false : undefined;
  }, { now: false });

  // Its output, every 500 ms until the server says it is complete (finished and all read). The
  // pane keeps the last OUTPUT_CAP characters: a job with more output than that (bytes are at
  // least as many as characters) is read from that many bytes before its end.
  const total = Number(job.stdout_bytes || 0) + Number(job.stderr_bytes || 0);
  const output = { offset: Number.isFinite(total) ? Math.max(0, total - OUTPUT_CAP) : 0, complete: false };
  if (output.offset > 0) pane.markTrimmed();
  page.every(500, async () => {
    const complete = await readOutput(`${jobUrl}/output`, output, pane, page.signal);
    if (complete) {
      // The job's last state and events (its finish may be newer than our last look).
      try { show(await getJson(jobUrl, { signal: page.signal })); } catch { /* shown next time */ }
      refreshEvents();
      return false;
    }
    return undefined;
  });
}

function jobFacts(job) {
  const task = job.app && job.env && job.task ? `${job.app}/${job.env}/${job.task}` : null;
  const durationText = job.started_at ? duration(job.started_at, job.finished_at) : null;
  return details([
    ['ID', h('span', { class: 'mono' }, String(job.id)), 'wide'],
    job.name ? ['Name', job.name] : null,
    ['Task', task ? h('span', { class: 'mono' }, task) : (job.kind || null)],
    job.app ? ['App', link(route('app', job.app), job.app)] : null,
    job.env ? ['Environment', job.env] : null,
    job.orchestration_id ? ['Orchestration', link(route('orchestration', job.orchestration_id), String(job.orchestration_id))] : null,
    ['Created', time(job.created_at)],
    job.scheduled_for ? ['Scheduled for', time(job.scheduled_for)] : null,
    ['Started', time(job.started_at)],
    ['Finished', time(job.finished_at)],
    ['Duration', durationText],
    ['Exit code', job.exit_code === null || job.exit_code === undefined ? null : String(job.exit_code)],
    job.kill_requested ? ['Kill', 'requested'] : null,
    ['Worker', job.worker || null],
    job.pid ? ['PID', String(job.pid)] : null,
    job.timeout_seconds ? ['Timeout', `${job.timeout_seconds} s`] : null,
    job.command && (!Array.isArray(job.command) || job.command.length)
      ? ['Command', h('code', {}, Array.isArray(job.command) ? job.command.join(' ') : compactJson(job.command, 500)), 'wide'] : null,
    ['Submitted by', job.created_by || null],
    ['Initialized by', job.initialized_by || null],
    job.image ? ['Image', job.image] : null,
    Array.isArray(job.notification_emails) && job.notification_emails.length
      ? ['Notify', job.notification_emails.join(', ')] : null,
    job.diagnostics ? ['Diagnostics', h('pre', { class: 'json' }, String(job.diagnostics)), 'wide'] : null,
  ]);
}

function variablesTable(vars) {
  const entries = vars && typeof vars === 'object' ? Object.entries(vars) : [];
  if (!entries.length) return null;
  const { wrap, tbody } = table(['Variable', 'Value'], { id: 'job-variables' });
  for (const [name, value] of entries) {
    tbody.append(h('tr', {}, h('td', { class: 'mono' }, name),
      h('td', { class: 'mono wrap' }, typeof value === 'string' ? value : compactJson(value))));
  }
  return section('Variables', wrap);
}

function tasksCard(tasks) {
  if (!Array.isArray(tasks) || tasks.length === 0) return null;
  const { wrap, tbody } = table(['#', 'Task', 'Status', 'Started', 'Finished', 'Exit', 'Diagnostics'], { id: 'job-tasks' });
  for (const t of tasks) {
    const what = t.component || t.component_url || t.command || '—';
    const role = t.role ? `${t.role}[${t.role_index ?? 0}] ` : '';
    tbody.append(h('tr', {},
      h('td', {}, String(t.index ?? '')),
      h('td', { class: 'mono wrap' }, `${role}${what}`),
      h('td', { class: 'status' }, badge(t.status)),
      h('td', { class: 'nowrap' }, time(t.started_at)),
      h('td', { class: 'nowrap' }, time(t.finished_at)),
      h('td', {}, t.exit_code === null || t.exit_code === undefined ? '—' : String(t.exit_code)),
      h('td', { class: 'wrap' }, t.diagnostics || '')));
  }
  return section('Tasks', wrap);
}

const EVENTS_PAGE = 1000;
// Events read by themselves; past that, a "Load more events" button reads as many again.
const EVENTS_SHOWN = 2 * EVENTS_PAGE;

/** The job's stream as a table, read on from the last version seen; runs of output events are
 *  one row each. At most EVENTS_SHOWN events are read by themselves: past that, refreshes stop
 *  and a button reads EVENTS_SHOWN more. Hidden when the stream may not be read (403). */
function jobEvents(id, page) {
  const { wrap, tbody } = table(['#', 'Event', 'At', 'Actor', 'Data'], { id: 'job-events' });
  tbody.append(noteRow(5, 'Loading…'));
  const more = h('button', { type: 'button', id: 'job-events-more', hidden: true }, 'Load more events');
  const moreNote = h('span', { class: 'muted small', hidden: true });
  const card = section('Events', wrap, h('div', { class: 'pager' }, more, moreNote));
  let next = 0;
  let loaded = false;
  let outputRun = null;
  let running = null;
  let again = false;
  // How many events may be read before the reader is asked; how many were.
  let allowed = EVENTS_SHOWN;
  let read = 0;
  // The allowance is used up and the stream may hold more: refreshes wait for the button.
  let capped = false;

  async function load() {
    while (read < allowed) {
      let answer;
      try {
        answer = await api('GET', `/v1/streams/job-${encodeURIComponent(id)}${query({ from_version: next, limit: EVENTS_PAGE })}`, { signal: page.signal });
      } catch (error) {
        if (error instanceof ApiError && error.status === 403) { card.hidden = true; return; }
        if (error instanceof ApiError && error.status === 404) break;
        throw error;
      }
      if (!page.alive()) return;
      const list = Array.isArray(answer.data) ? answer.data : [];
      if (!loaded) { tbody.replaceChildren(); loaded = true; }
      for (const envelope of list) {
        add(envelope);
        next = Math.max(next, Number(envelope.version) + 1);
      }
      read += list.length;
      if (list.length < EVENTS_PAGE) break;
    }
    // A full last page that used the allowance up: there may be more.
    capped = read >= allowed;
    more.hidden = !capped;
    moreNote.hidden = !capped;
    moreNote.textContent = capped ? `The first ${read} events are shown; there may be more.` : '';
    if (!loaded) { tbody.replaceChildren(noteRow(5, 'No events yet.')); }
  }

  more.addEventListener('click', () => {
    allowed = read + EVENTS_SHOWN;
    capped = false;
    more.hidden = true;
    moreNote.hidden = true;
    refresh();
  });

  function add(e) {
    const data = e.data || {};
    const actor = e.metadata && e.metadata.actor;
    if (e.event_type === 'JobOutputAppended') {
      const size = new TextEncoder().encode(String(data.text ?? '')).length;
      if (outputRun) {
        outputRun.count += 1;
        outputRun.bytes += size;
        outputRun.streams.add(String(data.stream ?? ''));
        outputRun.last = e.version;
        outputRun.render();
        return;
      }
      const cells = [h('td'), h('td', { class: 'nowrap' }), h('td', { class: 'nowrap' }, time(e.recorded_at)), h('td', {}, actor || '—'), h('td', { class: 'muted' })];
      const row = h('tr', { dataset: { eventType: e.event_type } }, cells);
      outputRun = {
        first: e.version, last: e.version, count: 1, bytes: size, streams: new Set([String(data.stream ?? '')]),
        render() {
          cells[0].textContent = this.first === this.last ? String(this.first) : `${this.first}–${this.last}`;
          cells[1].textContent = this.count > 1 ? `JobOutputAppended ×${this.count}` : 'JobOutputAppended';
          cells[4].textContent = `${bytes(this.bytes)} of ${Array.from(this.streams).filter(Boolean).join(', ') || 'output'}`;
        },
      };
      outputRun.render();
      tbody.append(row);
      return;
    }
    outputRun = null;
    const shown = { ...data };
    delete shown.job_id;
    tbody.append(h('tr', { dataset: { eventType: String(e.event_type) } },
      h('td', {}, String(e.version)),
      h('td', { class: 'nowrap' }, String(e.event_type)),
      h('td', { class: 'nowrap' }, time(e.recorded_at)),
      h('td', {}, actor || '—'),
      h('td', { class: 'mono wrap small' }, Object.keys(shown).length ? compactJson(shown, 300) : '')));
  }

  async function refresh() {
    if (card.hidden || capped) return;
    if (running) { again = true; return; }
    running = load().catch((error) => { if (page.alive() && !(error && error.name === 'AbortError')) console.warn(error); });
    await running;
    running = null;
    if (again && page.alive()) { again = false; refresh(); }
  }

  return { card, refresh };
}
