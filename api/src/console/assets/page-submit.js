// Submitting a job (#submit, #submit?task=app/env/task): a catalog task (GET /v1/catalog), its
// variables as `NAME=value` lines, an optional name and timeout; POST /v1/jobs, then the job's
// page. A refusal (400 for an unknown task or a bad variable) is shown in #flash.

import { h, getJson, post, pageHeader, navigate, route, flash, clearFlash, showError, randomKey } from './console.js';

/** `NAME=value` lines as an object; blank lines and `#` comments are skipped. Throws on a line
 *  without `=` or with an empty name, naming its line. */
export function parseVariables(text) {
  const variables = {};
  const lines = String(text || '').split(/\r?\n/);
  lines.forEach((line, index) => {
    if (line.trim() === '' || line.trim().startsWith('#')) return;
    const eq = line.indexOf('=');
    const name = eq < 0 ? '' : line.slice(0, eq).trim();
    if (eq < 0 || name === '') {
      throw new Error(`Variables, line ${index + 1}: expected NAME=value`);
    }
    variables[name] = line.slice(eq + 1);
  });
  return variables;
}

export async function submitPage(page) {
  const catalog = await getJson('/v1/catalog', { signal: page.signal });
  if (!page.alive()) return;
  const wanted = page.search.get('task') || '';
  const tasks = new Map();
  const select = h('select', { name: 'task', id: 'submit-task', required: true });
  for (const entry of Array.isArray(catalog) ? catalog : []) {
    const group = h('optgroup', { label: `${entry.app} / ${entry.env}` });
    for (const task of entry.tasks || []) {
      const value = `${entry.app}/${entry.env}/${task.name}`;
      tasks.set(value, { app: entry.app, env: entry.env, task: task.name, description: task.description || '' });
      group.append(h('option', { value, selected: value === wanted }, value));
    }
    if (group.children.length) select.append(group);
  }
  const description = h('span', { class: 'hint', id: 'submit-task-description' });
  const describe = () => {
    const chosen = tasks.get(select.value);
    description.textContent = chosen && chosen.description ? chosen.description : '';
  };
  select.addEventListener('change', describe);
  describe();

  const variables = h('textarea', {
    name: 'variables', rows: '6', spellcheck: 'false', autocapitalize: 'none',
    placeholder: 'NAME=value\nOTHER=another value',
  });
  const name = h('input', { name: 'name', maxlength: '200', placeholder: 'optional' });
  const timeout = h('input', { name: 'timeout_seconds', type: 'number', min: '1', step: '1', inputmode: 'numeric', placeholder: 'server default' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Submit');
  // One key per form: a double click, or a retry after a lost answer, makes one job.
  let idempotencyKey = randomKey();

  const form = h('form', { id: 'submit-job', class: 'stacked' },
    h('label', {}, 'Task', select, description),
    h('label', {}, 'Variables', h('span', { class: 'hint' }, 'One NAME=value a line'), variables),
    h('label', {}, 'Name', name),
    h('label', {}, 'Timeout (seconds)', timeout),
    h('div', { class: 'actions' }, submit));

  form.addEventListener('input', () => { idempotencyKey = randomKey(); });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFlash();
    const chosen = tasks.get(select.value);
    if (!chosen) { flash('Choose a task.'); return; }
    let body;
    try {
      body = { app: chosen.app, env: chosen.env, task: chosen.task, variables: parseVariables(variables.value) };
    } catch (error) {
      flash(error.message);
      return;
    }
    if (name.value.trim()) body.name = name.value.trim();
    if (timeout.value.trim()) {
      const seconds = Number(timeout.value);
      if (!Number.isInteger(seconds) || seconds <= 0) { flash('Timeout: a whole number of seconds, 1 or more.'); return; }
      body.timeout_seconds = seconds;
    }
    submit.disabled = true;
    try {
      const job = await post('/v1/jobs', body, { signal: page.signal, headers: { 'Idempotency-Key': idempotencyKey } });
      if (job && job.id) navigate(route('job', job.id));
    } catch (error) {
      showError(error);
    } finally {
      submit.disabled = false;
    }
  });

  page.main.append(pageHeader('Submit a job'));
  if (tasks.size === 0) {
    page.main.append(h('p', { class: 'notice' }, 'The catalog has no task you may run.'));
  }
  page.main.append(h('section', { class: 'card' }, form));
}
