// Apps: the list (#apps, GET /v1/apps) and one (#app/<name>): its details (GET /v1/apps/{app}),
// its environment (GET /v1/apps/{app}/env: a private value is null there and is shown as hidden,
// never asked for in clear), its units (refreshed every 5 s), its bound service instances with
// their status, a restart button and its latest jobs.

import {
  h, api, getJson, post, table, noteRow, badge, time, link, route, details, section,
  pageHeader, navigate, actionButton, query, ApiError, showError,
} from './console.js';
import { JobTable, followJobs, liveState, inOrder } from './page-jobs.js';

const PAGE_SIZE = 100;

function unitSummary(units) {
  const list = Array.isArray(units) ? units : [];
  if (!list.length) return '—';
  const started = list.filter((u) => u.state === 'started').length;
  return `${started}/${list.length} started`;
}

export async function appsPage(page) {
  const team = page.search.get('team') || '';
  const offset = Math.max(0, Number.parseInt(page.search.get('offset') || '0', 10) || 0);
  const answer = await api('GET', `/v1/apps${query({ team, limit: PAGE_SIZE, offset: offset || '' })}`, { signal: page.signal });
  if (!page.alive()) return;
  const list = Array.isArray(answer.data) ? answer.data : [];
  const total = Number(answer.headers.get('X-Total-Count'));

  const teamInput = h('input', { name: 'team', type: 'search', value: team, placeholder: 'any team', size: '12' });
  const filters = h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); navigate(`#apps${query({ team: teamInput.value.trim() })}`); } },
    h('label', {}, 'Team', teamInput), h('button', { type: 'submit' }, 'Filter'));

  const { wrap, tbody } = table(['Name', 'Platform', 'Team', 'Units', 'Instances', 'Description'], { id: 'app-list' });
  for (const app of list) {
    const row = h('tr', { class: 'clickable', dataset: { app: app.name } },
      h('td', {}, link(route('app', app.name), app.name)),
      h('td', {}, app.platform || '—'),
      h('td', {}, app.team_owner || '—'),
      h('td', { class: 'nowrap' }, unitSummary(app.units)),
      h('td', {}, String(Array.isArray(app.instances) ? app.instances.length : 0)),
      h('td', { class: 'wrap' }, app.description || ''));
    row.addEventListener('click', (event) => { if (!event.target.closest('a')) navigate(route('app', app.name)); });
    tbody.append(row);
  }
  if (!list.length) tbody.append(noteRow(6, 'No apps you may see.'));
  const pager = h('div', { class: 'pager' },
    h('button', { type: 'button', hidden: offset === 0, onclick: () => navigate(`#apps${query({ team, offset: Math.max(0, offset - PAGE_SIZE) || '' })}`) }, '← Previous'),
    h('button', { type: 'button', hidden: !(Number.isFinite(total) && offset + list.length < total), onclick: () => navigate(`#apps${query({ team, offset: offset + PAGE_SIZE })}`) }, 'Next →'),
    Number.isFinite(total) ? h('span', { class: 'muted small' }, `${total} apps`) : null);
  page.main.append(pageHeader('Apps'), filters, wrap, pager);
}

export async function appPage(page) {
  const [name] = page.params;
  const url = `/v1/apps/${encodeURIComponent(name)}`;
  const app = await getJson(url, { signal: page.signal });
  if (!page.alive()) return;

  const restart = actionButton('Restart', { id: 'restart-app' }, async () => {
    const answer = await post(`${url}/restart`, {}, { signal: page.signal });
    if (answer && Array.isArray(answer.units)) showUnits(answer.units);
  });
  const facts = h('div');
  const env = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const unitsBox = h('div');
  const instancesBox = h('div');
  const jobs = new JobTable('app-jobs');
  const jobsState = liveState();
  const gone = h('p', { class: 'notice', id: 'app-gone', hidden: true });

  page.main.append(
    pageHeader(app.name, h('div', { class: 'actions' }, restart, link(`#jobs${query({ app: app.name })}`, 'All its jobs', { class: 'button-link' }))),
    gone,
    section('Details', facts),
    section('Environment', env),
    section('Units', unitsBox),
    section('Service instances', instancesBox),
    h('section', { class: 'card' },
      h('div', { class: 'output-head' }, h('h2', {}, 'Latest jobs'), jobsState.el),
      jobs.wrap));

  function showFacts(a) {
    facts.replaceChildren(details([
      ['Name', a.name],
      ['Platform', a.platform],
      ['Team owner', a.team_owner],
      ['Teams', Array.isArray(a.teams) ? a.teams.join(', ') : null],
      ['Owner', a.owner],
      ['Description', a.description || null],
      ['CNAMEs', Array.isArray(a.cnames) && a.cnames.length ? a.cnames.join(', ') : null],
      ['Created', time(a.created_at)],
    ]));
  }

  function showUnits(units) {
    const list = Array.isArray(units) ? units : [];
    const { wrap, tbody } = table(['Unit', 'State', 'Node', 'PID', 'Address', 'Restarts', 'Since'], { id: 'app-units' });
    for (const u of list) {
      tbody.append(h('tr', { dataset: { unitId: u.id } },
        h('td', { class: 'mono wrap' }, u.id || `${u.env}/${u.process}/${u.index}`),
        h('td', { class: 'status' }, badge(u.state)),
        h('td', {}, u.node || '—'),
        h('td', {}, u.pid ? String(u.pid) : '—'),
        h('td', { class: 'mono' }, u.address || '—'),
        h('td', {}, String(u.restarts ?? 0)),
        h('td', { class: 'nowrap' }, time(u.since))));
    }
    if (!list.length) tbody.append(noteRow(7, 'No units: its catalog entry declares no processes.'));
    unitsBox.replaceChildren(wrap);
  }

  showFacts(app);
  showUnits(app.units);
  showInstances(instancesBox, app.instances, page);
  loadEnv(env, url, page);

  // The feed and the poll both refresh: an answer older than one shown is dropped.
  const refreshJobs = inOrder(
    () => getJson(`/v1/jobs${query({ app: app.name, limit: 10 })}`, { signal: page.signal }),
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

  page.every(5000, async () => {
    let next;
    try {
      next = await getJson(url, { signal: page.signal });
    } catch (error) {
      if (page.alive() && error instanceof ApiError && error.status === 404) {
        // Deleted: say so once and stop asking.
        gone.textContent = `The app ${name} is gone (deleted): what is shown is its last known state.`;
        gone.hidden = false;
        restart.hidden = true;
        return false;
      }
      throw error;
    }
    if (!page.alive()) return undefined;
    showFacts(next);
    showUnits(next.units);
    return undefined;
  }, { now: false });
}

async function loadEnv(box, url, page) {
  try {
    const vars = await getJson(`${url}/env`, { signal: page.signal });
    if (!page.alive()) return;
    const list = Array.isArray(vars) ? vars : [];
    const { wrap, tbody } = table(['Name', 'Value', 'From'], { id: 'app-env' });
    for (const v of list) {
      // A private value is never sent by the API (null): it is shown as hidden, with no way to
      // reveal it here.
      const value = v.public && v.value !== null && v.value !== undefined
        ? h('span', { class: 'mono wrap' }, String(v.value))
        : h('span', { class: 'secret', title: 'a private value: never shown' }, 'hidden (private)');
      tbody.append(h('tr', { dataset: { env: v.name } },
        h('td', { class: 'mono' }, v.name),
        h('td', { class: 'wrap' }, value),
        h('td', { class: 'mono small' }, v.bound ? `${v.bound.service}/${v.bound.instance}` : 'app')));
    }
    if (!list.length) tbody.append(noteRow(3, 'No variables.'));
    box.replaceChildren(wrap);
  } catch (error) {
    if (!page.alive()) return;
    box.replaceChildren(h('p', { class: 'muted' },
      error instanceof ApiError && error.status === 403 ? 'You may not read its environment.' : `Its environment could not be read: ${error.message}`));
  }
}

function showInstances(box, instances, page) {
  const list = Array.isArray(instances) ? instances : [];
  if (!list.length) {
    box.replaceChildren(h('p', { class: 'muted' }, 'No service instance is bound to it.'));
    return;
  }
  const { wrap, tbody } = table(['Instance', 'Plan', 'Status', 'Message'], { id: 'app-instances' });
  for (const ref of list) {
    const text = String(ref);
    const slash = text.indexOf('/');
    const service = slash > 0 ? text.slice(0, slash) : text;
    const instance = slash > 0 ? text.slice(slash + 1) : '';
    const plan = h('td', {}, '…');
    const status = h('td', { class: 'status' }, '…');
    const message = h('td', { class: 'wrap small' });
    tbody.append(h('tr', {}, h('td', { class: 'mono' }, text), plan, status, message));
    if (!instance) { plan.textContent = '—'; status.textContent = '—'; continue; }
    const base = `/v1/services/${encodeURIComponent(service)}/instances/${encodeURIComponent(instance)}`;
    getJson(base, { signal: page.signal })
      .then((i) => { plan.textContent = (i && i.plan) || 'default'; })
      .catch(() => { plan.textContent = '—'; });
    getJson(`${base}/status`, { signal: page.signal })
      .then((s) => { status.replaceChildren(badge(s && s.status)); message.textContent = (s && s.message) || ''; })
      .catch((error) => { status.textContent = '—'; message.textContent = error.message || ''; });
  }
  box.replaceChildren(wrap);
}
