// Orchestrations: the list (#orchestrations, GET /v1/orchestrations) and one (#orchestration/<id>,
// GET /v1/orchestrations/{id}): schedule, next and last run, enabled (PATCH active), its tasks
// and notifications, run now (POST /v1/orchestrations/{id}/jobs) and its jobs
// (GET /v1/jobs?orchestration_id=, kept fresh like the job list).

import {
  h, api, getJson, post, patch, table, noteRow, badge, time, link, route, details, section,
  pageHeader, navigate, actionButton, query, compactJson, setChildren, showError,
} from './console.js';
import { JobTable, followJobs, liveState, inOrder } from './page-jobs.js';

const PAGE_SIZE = 50;

function enabledBadge(o) {
  if (o.deleted) return badge('deleted');
  return badge(o.active ? 'enabled' : 'disabled');
}

export async function orchestrationsPage(page) {
  const offset = Math.max(0, Number.parseInt(page.search.get('offset') || '0', 10) || 0);
  const answer = await api('GET', `/v1/orchestrations${query({ limit: PAGE_SIZE, offset: offset || '' })}`, { signal: page.signal });
  if (!page.alive()) return;
  const list = Array.isArray(answer.data) ? answer.data : [];
  const total = Number(answer.headers.get('X-Total-Count'));
  const { wrap, tbody } = table(['Name', 'Schedule', 'Enabled', 'Next run', 'Last run', 'Last job'], { id: 'orchestration-list' });
  for (const o of list) {
    const row = h('tr', { class: 'clickable', dataset: { orchestrationId: o.id } },
      h('td', { class: 'wrap' }, link(route('orchestration', o.id), o.name || o.id)),
      h('td', { class: 'mono nowrap' }, o.crontab || 'manual'),
      h('td', {}, enabledBadge(o)),
      h('td', { class: 'nowrap' }, time(o.next_scheduled_at)),
      h('td', { class: 'nowrap' }, time(o.last_scheduled_at)),
      h('td', {}, o.last_job_id ? link(route('job', o.last_job_id), String(o.last_job_id).slice(0, 8), { class: 'mono' }) : '—'));
    row.addEventListener('click', (event) => {
      if (!event.target.closest('a')) navigate(route('orchestration', o.id));
    });
    tbody.append(row);
  }
  if (!list.length) tbody.append(noteRow(6, 'No orchestrations.'));
  const pager = h('div', { class: 'pager' },
    h('button', { type: 'button', hidden: offset === 0, onclick: () => navigate(`#orchestrations${query({ offset: Math.max(0, offset - PAGE_SIZE) || '' })}`) }, '← Newer'),
    h('button', { type: 'button', hidden: !(Number.isFinite(total) && offset + list.length < total), onclick: () => navigate(`#orchestrations${query({ offset: offset + PAGE_SIZE })}`) }, 'Older →'),
    Number.isFinite(total) ? h('span', { class: 'muted small' }, `${total} orchestrations`) : null);
  page.main.append(pageHeader('Orchestrations'), wrap, pager);
}

export async function orchestrationPage(page) {
  const [id] = page.params;
  const url = `/v1/orchestrations/${encodeURIComponent(id)}`;
  let orchestration = await getJson(url, { signal: page.signal });
  if (!page.alive()) return;

  const title = h('h1', {}, orchestration.name || id);
  const state = h('span');
  const runNow = actionButton('Run now', { id: 'run-now', class: 'primary' }, async () => {
    const job = await post(`${url}/jobs`, {}, { signal: page.signal });
    await refreshJobs();
    if (job && job.id) {
      const row = jobs.rows.get(String(job.id));
      if (row) row.classList.add('fresh');
    }
    await refresh();
  });
  const toggle = actionButton('', { id: 'toggle-active' }, async () => {
    show(await patch(url, { active: !orchestration.active }, { signal: page.signal }));
  });
  const facts = h('div');
  const tasks = h('div');
  const notifications = h('div');
  const jobs = new JobTable('orchestration-jobs');
  const jobsState = liveState();

  page.main.append(
    h('div', { class: 'page-header' }, title, state, h('div', { class: 'actions' }, toggle, runNow)),
    section('Schedule', facts),
    tasks,
    notifications,
    h('section', { class: 'card' },
      h('div', { class: 'output-head' }, h('h2', {}, 'Jobs'), jobsState.el),
      jobs.wrap));

  function show(o) {
    if (!o || !page.alive()) return;
    // A poll's answer that left before a write's may come back after it: keep the newer.
    if (orchestration && Number(o.version) < Number(orchestration.version)) return;
    orchestration = o;
    title.textContent = o.name || id;
    state.replaceChildren(enabledBadge(o));
    toggle.textContent = o.active ? 'Disable' : 'Enable';
    toggle.hidden = Boolean(o.deleted);
    runNow.hidden = Boolean(o.deleted);
    facts.replaceChildren(details([
      ['ID', h('span', { class: 'mono' }, String(o.id))],
      ['Schedule', o.crontab ? h('code', {}, o.crontab) : 'none (runs when asked)'],
      ['Enabled', o.active ? 'yes' : 'no'],
      ['Next run', time(o.next_scheduled_at)],
      ['Last run', time(o.last_scheduled_at)],
      ['Last job', o.last_job_id ? link(route('job', o.last_job_id), String(o.last_job_id), { class: 'mono' }) : null],
      ['Created', h('span', {}, time(o.created_at), o.created_by ? ` by ${o.created_by}` : '')],
      ['Updated', time(o.updated_at)],
      o.deleted ? ['Deleted', 'yes: nothing more is scheduled'] : null,
    ]));
    tasks.replaceChildren(tasksTable(o.tasks));
    setChildren(notifications, notificationsTable(o.notifications));
  }
  show(orchestration);

  async function refresh() {
    show(await getJson(url, { signal: page.signal }));
  }
  // Run now, the feed and the poll all refresh: an answer older than one shown is dropped.
  const refreshJobs = inOrder(
    () => getJson(`/v1/jobs${query({ orchestration_id: id, limit: 50 })}`, { signal: page.signal }),
    (list) => { if (page.alive()) jobs.update(Array.isArray(list) ? list : []); });
  try {
    await refreshJobs();
  } catch (error) {
    if (!page.alive()) return;
    showError(error, 'Its jobs could not be loaded');
    jobs.failed(error);
  }
  // Even after a failed first load: the next refresh may work.
  followJobs(page, refreshJobs, jobsState);
  // Next and last run move on by themselves.
  page.every(10000, refresh, { now: false });
}

function tasksTable(tasks) {
  const list = Array.isArray(tasks) ? tasks : [];
  const { wrap, tbody } = table(['#', 'Task', 'Action', 'Parameters', 'On failure', 'Timeout', 'Active'], { id: 'orchestration-tasks' });
  list.forEach((t, index) => {
    const target = t.component
      ? link(`#submit${query({ task: t.component })}`, t.component, { class: 'mono' })
      : h('span', { class: 'mono' }, t.component_url || '—');
    tbody.append(h('tr', {},
      h('td', {}, String(index)),
      h('td', { class: 'wrap' }, target),
      h('td', {}, t.action || '—'),
      h('td', { class: 'mono small wrap' }, t.parameters ? compactJson(t.parameters, 200) : '—'),
      h('td', {}, t.continue_on_failure ? 'continue' : 'stop'),
      h('td', {}, t.timeout_minutes ? `${t.timeout_minutes} min` : '—'),
      h('td', {}, badge(t.active === false ? 'inactive' : 'active'))));
  });
  if (!list.length) tbody.append(noteRow(7, 'No tasks.'));
  return section('Tasks', wrap);
}

function notificationsTable(notifications) {
  const list = Array.isArray(notifications) ? notifications : [];
  if (!list.length) return null;
  const { wrap, tbody } = table(['To', 'On', 'Parameters']);
  for (const n of list) {
    tbody.append(h('tr', {},
      h('td', { class: 'mono wrap' }, n.email || n.webhook_url || '—'),
      h('td', {}, n.channel || '—'),
      h('td', { class: 'mono small wrap' }, n.parameters ? compactJson(n.parameters, 200) : '—')));
  }
  return section('Notifications', wrap);
}
