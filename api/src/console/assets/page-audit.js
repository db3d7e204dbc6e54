// The audit log (#audit?actor=&since=&until=&limit=&offset=): GET /v1/audit with the filters it
// takes (actor, since, until: RFC 3339) and its paging (limit, offset, X-Total-Count); the latest
// page first, newest on top. Admins only: the API's 403 is shown in #flash.

import { h, api, table, noteRow, time, pageHeader, navigate, query, streamLink, flash } from './console.js';

const SIZES = [50, 100, 200, 500];

/** An RFC 3339 time as a datetime-local input's value (the reader's local time). */
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local input's value as RFC 3339 (UTC). */
function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export async function auditPage(page) {
  const actor = page.search.get('actor') || '';
  const since = page.search.get('since') || '';
  const until = page.search.get('until') || '';
  const limitAsked = Number.parseInt(page.search.get('limit') || '100', 10);
  const limit = SIZES.includes(limitAsked) ? limitAsked : 100;
  // The API answers in position order (oldest first): without an offset, the latest page is
  // shown; each page is shown newest on top.
  const offsetParam = page.search.get('offset');
  let offset = offsetParam === null ? null : Math.max(0, Number.parseInt(offsetParam, 10) || 0);
  const go = (changes) => {
    const next = { actor, since, until, limit, offset: null, ...changes };
    navigate(`#audit${query({ ...next, limit: next.limit === 100 ? '' : next.limit, offset: next.offset ?? '' })}`);
  };

  const actorInput = h('input', { name: 'actor', type: 'search', value: actor, placeholder: 'anyone', size: '14', autocapitalize: 'none' });
  const sinceInput = h('input', { name: 'since', type: 'datetime-local', value: toLocalInput(since) });
  const untilInput = h('input', { name: 'until', type: 'datetime-local', value: toLocalInput(until) });
  const sizeSelect = h('select', { name: 'limit' }, SIZES.map((n) => h('option', { value: String(n), selected: n === limit }, String(n))));
  const form = h('form', { id: 'audit-filters', class: 'toolbar' },
    h('label', {}, 'Actor', actorInput),
    h('label', {}, 'Since', sinceInput),
    h('label', {}, 'Until', untilInput),
    h('label', {}, 'Per page', sizeSelect),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    h('button', { type: 'button', onclick: () => navigate('#audit') }, 'Clear'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    go({
      actor: actorInput.value.trim(),
      since: fromLocalInput(sinceInput.value),
      until: fromLocalInput(untilInput.value),
      limit: Number(sizeSelect.value),
    });
  });

  const { wrap, tbody } = table(['#', 'At', 'Actor', 'Action', 'Target', 'Source', 'Request'], { id: 'audit-list' });
  tbody.append(noteRow(7, 'Loading…'));
  const counter = h('span', { class: 'muted small' });
  const newer = h('button', { type: 'button', id: 'audit-newer', hidden: true, onclick: () => go({ offset: offset + limit }) }, '← Newer');
  const older = h('button', { type: 'button', id: 'audit-older', hidden: true, onclick: () => go({ offset: Math.max(0, offset - limit) }) }, 'Older →');
  page.main.append(pageHeader('Audit log'), form, wrap, h('div', { class: 'pager' }, newer, older, counter));

  let answer;
  try {
    const filters = { actor, since, until };
    if (offset === null) {
      const first = await api('GET', `/v1/audit${query({ ...filters, limit: 1 })}`, { signal: page.signal });
      const count = Number(first.headers.get('X-Total-Count'));
      offset = Number.isFinite(count) ? Math.max(0, count - limit) : 0;
    }
    answer = await api('GET', `/v1/audit${query({ ...filters, limit, offset: offset || '' })}`, { signal: page.signal });
  } catch (error) {
    if (!page.alive()) return;
    tbody.replaceChildren(noteRow(7, error.status === 403 ? 'The audit log is for admins.' : 'The audit log could not be read.'));
    flash(error.message);
    return;
  }
  if (!page.alive()) return;
  const list = Array.isArray(answer.data) ? answer.data : [];
  tbody.replaceChildren();
  for (const entry of [...list].reverse()) {
    tbody.append(h('tr', { dataset: { position: entry.position } },
      h('td', { class: 'mono small' }, String(entry.position)),
      h('td', { class: 'nowrap' }, time(entry.at)),
      h('td', {}, entry.actor || '—'),
      h('td', { class: 'nowrap' }, entry.action || '—'),
      h('td', { class: 'wrap' }, streamLink(entry.target)),
      h('td', { class: 'small', title: entry.user_agent || '' }, entry.source || '—'),
      h('td', { class: 'mono small' }, entry.request_id || '—')));
  }
  if (!list.length) tbody.append(noteRow(7, 'Nothing matches.'));
  const total = Number(answer.headers.get('X-Total-Count'));
  older.hidden = offset === 0;
  if (Number.isFinite(total)) {
    counter.textContent = list.length ? `${offset + 1}–${offset + list.length} of ${total}` : `${total} entries`;
    newer.hidden = offset + list.length >= total;
  } else {
    newer.hidden = list.length < limit;
  }
}
