/**
 * The daemon's dashboard: one page, four views (Now, History, Problems, Data) and three pages under them (a rejection
 * group's records, a table's rows, a file). Everything it shows comes from this daemon's own API (src/http/): the
 * overview arrives as server-sent events, so the page updates itself without reloading. Built by scripts/bundle.mjs.
 *
 * Every value is put in the page as text (never as HTML), so nothing a file holds can run here.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import type { HistoryPoint, Overview, Problems, FilePage, Page } from './types.js';
import { api, action, setToken, token } from './client.js';
import { ago, button, cell, clear, duration, h, link, num, time } from './dom.js';

const main = document.getElementById('main') as HTMLElement;
const notice = document.getElementById('notice') as HTMLElement;
let latest: Overview | null = null;
/** What the open view showed last, to refresh it only when the numbers behind it moved. */
let shownSignature = '';
let refreshView: (() => void) | null = null;

// ---------------------------------------------------------------------------------------------------------------------
// Routing: `#/now`, `#/history`, `#/problems`, `#/data`, `#/rejections/<group>`, `#/table/<name>`, `#/file/<key>`.

interface Route { view: string; arg: string }

function route(): Route {
  const m = /^#\/([a-z]+)(?:\/(.*))?$/.exec(location.hash);
  return m ? { view: m[1] ?? 'now', arg: m[2] === undefined ? '' : decodeURIComponent(m[2]) } : { view: 'now', arg: '' };
}

export function href(view: string, arg?: string): string {
  return `#/${view}${arg === undefined ? '' : `/${encodeURIComponent(arg)}`}`;
}

function render(focus: boolean): void {
  const r = route();
  const section = ({ rejections: 'problems', table: 'data', file: 'data' } as Record<string, string>)[r.view] ?? r.view;
  for (const a of document.querySelectorAll<HTMLAnchorElement>('[data-nav]')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main);
  refreshView = null;
  shownSignature = signature();
  const views: Record<string, (arg: string) => void> = { now: nowView, history: historyView, problems: problemsView, data: dataView, rejections: groupView, table: tableView, file: fileView };
  (views[r.view] ?? nowView)(r.arg);
  const heading = main.querySelector('h2');
  document.title = `${heading?.textContent ?? 'Dashboard'} · bucket-ingest`;
  if (focus && heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

window.addEventListener('hashchange', () => render(true));

// ---------------------------------------------------------------------------------------------------------------------
// Header: state, where the daemon reads from and writes to, the problem count, the token form.

function renderHeader(o: Overview | null, connected: boolean): void {
  const state = document.getElementById('state') as HTMLElement;
  const s = !connected ? 'stopped' : o === null ? 'connecting' : o.state;
  state.dataset.state = s;
  state.textContent = s === 'stopped' ? 'stopped (not answering)' : s === 'draining' ? 'draining (finishing files in flight)' : s === 'running' ? 'running' : 'connecting…';
  if (!o) return;
  (document.getElementById('profile') as HTMLElement).textContent = `profile ${o.profile}`;
  (document.getElementById('bucket') as HTMLElement).textContent = o.bucket;
  (document.getElementById('database') as HTMLElement).textContent = o.database;
  const failed = o.status.files.failed;
  (document.getElementById('problem-count') as HTMLElement).textContent = failed > 0 ? `(${failed} failed)` : '';
  const form = document.getElementById('unlock') as HTMLFormElement;
  form.hidden = !o.actions;
  (document.getElementById('lock') as HTMLElement).hidden = token() === null;
  (form.querySelector('input') as HTMLInputElement).hidden = token() !== null;
  (form.querySelector('label') as HTMLElement).textContent = token() === null ? 'Dashboard token' : 'Actions unlocked';
  (form.querySelector('button[type=submit]') as HTMLElement).hidden = token() !== null;
}

const unlock = document.getElementById('unlock') as HTMLFormElement;
unlock.addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('token') as HTMLInputElement;
  if (input.value === '') return;
  setToken(input.value);
  input.value = '';
  say('actions unlocked for this tab; each one is checked by the daemon');
  renderHeader(latest, true);
  render(false);
});
(document.getElementById('lock') as HTMLElement).addEventListener('click', () => {
  setToken(null);
  renderHeader(latest, true);
  render(false);
});

function say(text: string, error = false): void {
  notice.textContent = text;
  notice.classList.toggle('error', error);
}

/** Whether actions are shown: the daemon has a token and this tab was given one. */
function actionsOn(): boolean {
  return latest?.actions === true && token() !== null;
}

async function act(what: string, path: string, body: unknown): Promise<void> {
  say(`${what}…`);
  try {
    const r = await action(path, body);
    say(r.message);
  } catch (err) {
    say(`${what} failed: ${(err as Error).message}`, true);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Now

function field(name: string, label: string, hint?: string): HTMLElement {
  return h('div', { class: 'stat' }, [h('dt', {}, [label]), h('dd', { 'data-field': name, ...(hint ? { title: hint } : {}) }, ['–'])]);
}

function nowView(): void {
  main.append(
    h('h2', {}, ['Now']),
    h('section', { 'aria-labelledby': 'cycle-h', class: 'panel' }, [
      h('h3', { id: 'cycle-h' }, ['Current cycle']),
      h('p', { 'data-field': 'current.text', class: 'current' }, ['–']),
      h('progress', { id: 'cycle-progress', max: '1', value: '0', 'aria-labelledby': 'cycle-h' }),
    ]),
    h('section', { 'aria-labelledby': 'attention-h', class: 'panel attention' }, [
      h('h3', { id: 'attention-h' }, ['Needs attention']),
      h('p', { 'data-field': 'attention' }, ['–']),
      h('p', {}, [link(href('problems'), 'Open Problems')]),
    ]),
    h('h3', {}, ['Files']),
    h('dl', { class: 'stats' }, [
      field('files.total', 'Known'), field('files.done', 'Done'), field('files.failed', 'Failed'),
      field('pending.files', 'Pending', 'listed, not done yet: new, failed or waiting to retry'), field('pending.oldest', 'Longest wait of a pending file'),
    ]),
    h('h3', {}, ['Records in done files']),
    h('dl', { class: 'stats' }, [
      field('records.loaded', 'Loaded'), field('records.rejected', 'Rejected', 'kept in rejected_records with their reason'), field('records.skipped', 'Skipped', 'of types no schema declares'),
    ]),
    h('h3', {}, ['Recently']),
    h('dl', { class: 'stats' }, [
      field('lastSuccessAt', 'Last successful cycle'), field('lastDoneAt', 'Last file done'), field('reprocess', 'Waiting to be reprocessed'),
    ]),
    h('p', { 'data-field': 'lastCycle', class: 'last-cycle' }, ['–']),
  );
  fillNow();
}

function setField(name: string, text: string, title?: string): void {
  for (const el of main.querySelectorAll<HTMLElement>(`[data-field="${name}"]`)) {
    if (el.textContent !== text) el.textContent = text;
    if (title !== undefined) el.title = title;
  }
}

function fillNow(): void {
  const o = latest;
  if (!o) return;
  const s = o.status;
  setField('files.total', num(s.files.total));
  setField('files.done', num(s.files.done));
  setField('files.failed', num(s.files.failed));
  setField('records.loaded', num(s.records.loaded));
  setField('records.rejected', num(s.records.rejected));
  setField('records.skipped', num(s.records.skipped));
  setField('pending.files', num(o.pending.files));
  setField('pending.oldest', o.pending.files === 0 ? 'none' : duration(o.pending.oldestAgeSeconds));
  setField('lastSuccessAt', o.lastSuccessAt ? ago(o.lastSuccessAt) : 'not since start', o.lastSuccessAt ?? '');
  setField('lastDoneAt', s.lastDoneAt ? ago(s.lastDoneAt) : 'never', s.lastDoneAt ?? '');
  setField('reprocess', num(s.reprocess.length));
  const c = o.current;
  const bar = main.querySelector<HTMLProgressElement>('#cycle-progress');
  if (bar) {
    const settled = c ? c.done + c.failed + c.unchanged + c.cancelled : 0;
    bar.max = Math.max(1, c?.planned ?? 1);
    bar.value = c ? settled : 0;
    bar.classList.toggle('idle', c === null);
    setField('current.text', c === null ? `waiting for the next cycle (one starts ${duration(o.pollSeconds)} after the last one ended)`
      : `cycle #${c.cycle}: ${num(settled)} of ${num(c.planned)} file(s) — ${num(c.done)} done, ${num(c.failed)} failed, ${num(c.unchanged)} unchanged; ${num(c.records)} records, since ${ago(c.startedAt)}`);
  }
  const rejected = s.records.rejected;
  const first = s.failed[0];
  setField('attention', s.files.failed === 0 && rejected === 0 ? 'Nothing: no failed file, no rejected record.'
    : [s.files.failed === 0 ? '' : `${num(s.files.failed)} failed file(s)${first ? `, e.g. ${first.key}: ${first.error ?? 'unknown error'}` : ''}.`,
      rejected === 0 ? '' : `${num(rejected)} rejected record(s).`].filter((t) => t !== '').join(' '));
  const l = s.lastCycle;
  setField('lastCycle', l === null ? (s.lastCycleError ?? 'no cycle recorded yet')
    : `last cycle #${l.cycle} ${l.ok ? 'ok' : 'failed'}, finished ${ago(l.finishedAt)}${l.summary ? `: ${num(l.summary.listed)} listed, ${duration(l.summary.seconds)}` : ''}${l.error ? ` — ${l.error}` : ''}`);
}

// ---------------------------------------------------------------------------------------------------------------------
// History

let chart: uPlot | null = null;

function historyView(): void {
  const figure = h('figure', { class: 'chart', id: 'history-chart', 'aria-labelledby': 'chart-caption' }, [
    h('div', { class: 'plot' }),
    h('figcaption', { id: 'chart-caption' }, ['Records per second (left axis) and files per second (right axis) of each cycle; the table below has the same numbers.']),
  ]);
  main.append(
    h('h2', {}, ['History']),
    figure,
    h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Recent cycles' }, [
      h('table', { id: 'cycles' }, [
        h('caption', {}, ['Recent cycles, newest first']),
        h('thead', {}, [h('tr', {}, ['Cycle', 'Finished', 'Duration', 'Done', 'Failed', 'Unchanged', 'Loaded', 'Rejected', 'Skipped', 'Records/s', 'Outcome'].map((t) => h('th', { scope: 'col' }, [t])))]),
        h('tbody'),
      ]),
    ]),
  );
  chart = null;
  fillHistory();
}

function fillHistory(): void {
  const o = latest;
  const figure = main.querySelector<HTMLElement>('#history-chart');
  if (!o || !figure) return;
  const points = o.history;
  const data: uPlot.AlignedData = [points.map((p) => p.cycle), points.map((p) => p.recordsPerSecond), points.map((p) => p.filesPerSecond)];
  figure.dataset.points = String(points.length);
  figure.dataset.firstCycle = String(points[0]?.cycle ?? '');
  figure.dataset.lastCycle = String(points[points.length - 1]?.cycle ?? '');
  const plot = figure.querySelector<HTMLElement>('.plot') as HTMLElement;
  const width = Math.max(280, plot.clientWidth);
  if (chart === null) {
    chart = new uPlot({
      width, height: 240,
      scales: { x: { time: false }, files: { auto: true } },
      axes: [
        { label: 'cycle', stroke: '#444', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10_000, 100_000], values: (_u, ticks) => ticks.map((t) => `#${t}`) },
        { label: 'records/s', stroke: '#1f5fa8', size: 60 },
        { label: 'files/s', scale: 'files', side: 1, stroke: '#a8461f', grid: { show: false }, size: 50 },
      ],
      series: [
        { label: 'cycle' },
        { label: 'records/s', stroke: '#1f5fa8', width: 2, points: { show: true, size: 5 }, value: (_u, v) => (v === null ? '–' : v.toFixed(1)) },
        { label: 'files/s', scale: 'files', stroke: '#a8461f', width: 2, dash: [6, 3], points: { show: true, size: 5 }, value: (_u, v) => (v === null ? '–' : v.toFixed(2)) },
      ],
    }, data, plot);
  } else {
    chart.setData(data);
    if (Math.abs(chart.width - width) > 2) chart.setSize({ width, height: 240 });
  }
  const body = main.querySelector('#cycles tbody') as HTMLElement;
  const rows = [...points].reverse().slice(0, 50).map((p: HistoryPoint) => h('tr', {}, [
    h('th', { scope: 'row' }, [`#${p.cycle}`]), h('td', { title: p.finishedAt }, [time(p.finishedAt)]), cell(p.seconds === null ? '–' : duration(p.seconds)),
    cell(num(p.filesDone)), cell(num(p.filesFailed)), cell(num(p.filesUnchanged)), cell(num(p.recordsLoaded)), cell(num(p.recordsRejected)), cell(num(p.recordsSkipped)),
    cell(p.recordsPerSecond === null ? '–' : p.recordsPerSecond.toFixed(1)),
    h('td', { class: p.ok ? 'ok' : 'bad' }, [p.ok ? (p.filesFailed > 0 ? `${p.filesFailed} file(s) failed` : 'ok') : `failed: ${p.error ?? ''}`]),
  ]));
  if (rows.length === 0) rows.push(h('tr', {}, [h('td', { colspan: '11' }, [o.historyError ?? 'no cycle recorded yet'])]));
  body.replaceChildren(...rows);
}

window.addEventListener('resize', () => {
  const plot = main.querySelector<HTMLElement>('#history-chart .plot');
  if (chart && plot) chart.setSize({ width: Math.max(280, plot.clientWidth), height: 240 });
});

// ---------------------------------------------------------------------------------------------------------------------
// Problems

function problemsView(): void {
  const failedBody = h('tbody');
  const groupBody = h('tbody');
  const totals = h('p', { 'data-field': 'rejections.total' }, ['loading…']);
  const bulk = h('div', { class: 'actions' });
  main.append(
    h('h2', {}, ['Problems']),
    h('section', { 'aria-labelledby': 'failed-h' }, [
      h('h3', { id: 'failed-h' }, ['Failed files']),
      h('p', { class: 'hint' }, ['Files that could not be fetched or read. Each is tried again on a later cycle, after its backoff; reprocessing one skips the wait.']),
      bulk,
      h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Failed files' }, [
        h('table', { id: 'failed' }, [
          h('thead', {}, [h('tr', {}, ['File', 'Error', 'Attempts', 'Next retry', ''].map((t) => h('th', { scope: 'col' }, [t])))]),
          failedBody,
        ]),
      ]),
    ]),
    h('section', { 'aria-labelledby': 'rejected-h' }, [
      h('h3', { id: 'rejected-h' }, ['Rejected records by reason']),
      totals,
      h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Rejection groups' }, [
        h('table', { id: 'groups' }, [
          h('thead', {}, [h('tr', {}, ['Records', 'Reason', 'Types', 'Example', ''].map((t) => h('th', { scope: 'col' }, [t])))]),
          groupBody,
        ]),
      ]),
    ]),
  );
  const load = (): void => {
    api<Problems>('/api/dashboard/problems').then((p) => {
      const on = actionsOn();
      bulk.replaceChildren(...(on ? [
        button('Reprocess all failed files', () => void act('reprocess all failed files', '/api/actions/reprocess', { failed: true }), { 'data-action': 'reprocess-failed', disabled: p.failed.length === 0 }),
        button('Replay all rejections', () => void act('replay rejections', '/api/actions/replay', {}), { 'data-action': 'replay-all', disabled: p.rejections.total === 0 }),
      ] : []));
      failedBody.replaceChildren(...(p.failed.length === 0 ? [h('tr', {}, [h('td', { colspan: '5' }, ['No failed files.'])])] : p.failed.map((f) => h('tr', { 'data-key': f.key }, [
        h('th', { scope: 'row' }, [link(href('file', f.key), f.key, 'mono')]),
        h('td', { class: 'error' }, [f.error ?? 'unknown error']),
        cell(num(f.attempts)),
        h('td', { title: f.nextAttemptAt ?? '' }, [f.nextAttemptAt ? time(f.nextAttemptAt) : 'next cycle']),
        h('td', {}, on ? [button('Reprocess', () => void act(`reprocess ${f.key}`, '/api/actions/reprocess', { keys: [f.key] }), { 'data-action': 'reprocess', 'aria-label': `Reprocess ${f.key}` })] : []),
      ]))));
      totals.textContent = p.rejections.total === 0 ? 'No rejected records.' : `${num(p.rejections.total)} rejected record(s) in ${num(p.rejections.groups.length)} group(s); values in reasons are shown as …`;
      groupBody.replaceChildren(...p.rejections.groups.map((g) => h('tr', { 'data-reason': g.reason }, [
        cell(num(g.count), 'num'),
        h('th', { scope: 'row' }, [link(href('rejections', g.reason), g.reason)]),
        cell(g.types.map((t) => t ?? '(no type)').join(', '), 'text'),
        h('td', { class: 'example' }, [link(href('file', g.example.sourceKey), `${g.example.sourceKey} #${g.example.recordIndex}`, 'mono'), h('br'), h('code', {}, [g.example.raw])]),
        h('td', {}, on ? [button('Replay', () => void act(`replay "${g.reason}"`, '/api/actions/replay', { reason: reasonGlob(g.reason) }), { 'data-action': 'replay', 'aria-label': `Replay the records rejected for ${g.reason}` })] : []),
      ])));
    }, (err: Error) => say(`cannot read the problems: ${err.message}`, true));
  };
  refreshView = load;
  load();
}

/** A group's pattern as the glob `reprocess --rejected --reason` takes: `…` (a value) is `*`, glob characters escaped. */
function reasonGlob(pattern: string): string {
  return pattern.split('…').map((part) => part.replace(/[\\*?[\]{}()!+@|]/g, (c) => `\\${c}`)).join('*');
}

// ---------------------------------------------------------------------------------------------------------------------
// Paged tables: Next and Previous walk the API's keyset cursors.

const PAGE_SIZE = 25;

function pagedTable(label: string, fetchPage: (after: string | null) => Promise<Page>, columns?: (row: Record<string, unknown>) => string[]): HTMLElement {
  const cursors: Array<string | null> = [null];
  let at = 0;
  const table = h('table', { class: 'rows' });
  const status = h('span', { class: 'page-no', 'aria-live': 'polite' }, ['']);
  const prev = button('Previous page', () => void show(at - 1), { 'data-pager': 'prev' });
  const next = button('Next page', () => void show(at + 1), { 'data-pager': 'next' });
  const wrap = h('div', { class: 'paged', 'data-paged': label }, [
    h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': label }, [table]),
    h('div', { class: 'pager' }, [prev, status, next]),
  ]);
  async function show(i: number): Promise<void> {
    const page = await fetchPage(cursors[i] ?? null).catch((err: Error) => {
      say(`cannot read ${label}: ${err.message}`, true);
      return null;
    });
    if (page === null) return;
    at = i;
    cursors[i + 1] = page.next;
    const names = page.rows.length > 0 ? (columns ? columns(page.rows[0] as Record<string, unknown>) : Object.keys(page.rows[0] as object)) : [];
    table.replaceChildren(
      h('thead', {}, [h('tr', {}, names.map((n) => h('th', { scope: 'col' }, [n])))]),
      h('tbody', {}, page.rows.length === 0 ? [h('tr', {}, [h('td', {}, ['No rows.'])])] : page.rows.map((r) => h('tr', {}, names.map((n) => {
        const v = (r as Record<string, unknown>)[n];
        if (n === 'source_key' && typeof v === 'string') return h('td', {}, [link(href('file', v), v, 'mono')]);
        const text = typeof v === 'string' ? v : JSON.stringify(v) ?? '';
        return h('td', text.length > 80 ? { title: text } : {}, [text.length > 80 ? `${text.slice(0, 79)}…` : text]);
      })))),
    );
    status.textContent = `page ${i + 1}${page.rows.length > 0 ? `, ${page.rows.length} row(s)` : ''}`;
    (prev as HTMLButtonElement).disabled = i === 0;
    (next as HTMLButtonElement).disabled = page.next === null;
  }
  void show(0);
  return wrap;
}

function pageUrl(base: string, after: string | null, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE), ...extra });
  if (after !== null) q.set('after', after);
  return `${base}?${q.toString()}`;
}

function groupView(group: string): void {
  main.append(
    h('p', { class: 'crumbs' }, [link(href('problems'), '← Problems')]),
    h('h2', {}, ['Rejected records']),
    h('p', {}, ['Reason: ', h('code', { 'data-field': 'group' }, [group])]),
    pagedTable('Rejected records of the group', (after) => api<Page>(pageUrl('/api/dashboard/rejections', after, { group })),
      () => ['id', 'source_key', 'record_index', 'type', 'reason', 'raw', 'rejected_at']),
  );
}

// ---------------------------------------------------------------------------------------------------------------------
// Data

function dataView(): void {
  const body = h('tbody');
  main.append(
    h('h2', {}, ['Data']),
    h('section', { 'aria-labelledby': 'tables-h' }, [
      h('h3', { id: 'tables-h' }, ['Tables']),
      h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Tables' }, [
        h('table', { id: 'tables' }, [h('thead', {}, [h('tr', {}, ['Table', 'Rows'].map((t) => h('th', { scope: 'col' }, [t])))]), body]),
      ]),
    ]),
    h('section', { 'aria-labelledby': 'files-h' }, [
      h('h3', { id: 'files-h' }, ['Files in the registry']),
      h('p', { class: 'hint' }, ['Open a file for everything the registry knows of it, what the next cycle does with it, its rows and its rejections.']),
      pagedTable('Files', (after) => api<{ files: Array<Record<string, unknown>>; next: string | null }>(pageUrl('/api/files', after)).then((p) => ({
        next: p.next,
        rows: p.files.map((f) => ({ source_key: f.key, status: f.status, loaded: f.loaded, rejected: f.rejected, skipped: f.skipped, error: f.error })),
      }))),
    ]),
  );
  const load = (): void => {
    api<{ tables: Array<{ name: string; rows: number }> }>('/api/tables').then((t) => {
      body.replaceChildren(...t.tables.map((x) => h('tr', { 'data-table': x.name }, [h('th', { scope: 'row' }, [link(href('table', x.name), x.name)]), cell(num(x.rows), 'num')])));
    }, (err: Error) => say(`cannot read the tables: ${err.message}`, true));
  };
  refreshView = load;
  load();
}

function tableView(name: string): void {
  main.append(
    h('p', { class: 'crumbs' }, [link(href('data'), '← Data')]),
    h('h2', {}, [`Table ${name}`]),
    pagedTable(`Rows of ${name}`, (after) => api<Page>(pageUrl(`/api/tables/${encodeURIComponent(name)}/rows`, after))),
  );
}

function fileView(key: string): void {
  const facts = h('dl', { class: 'facts' });
  const summary = h('p', { 'data-field': 'explain.summary', class: 'summary' }, ['loading…']);
  const tools = h('div', { class: 'actions' });
  const rows = h('div');
  main.append(h('p', { class: 'crumbs' }, [link(href('data'), '← Data')]), h('h2', {}, [h('span', { class: 'mono' }, [key])]), summary, tools, facts, rows);
  api<FilePage>(`/api/dashboard/file?key=${encodeURIComponent(key)}`).then((f) => {
    const x = f.explanation;
    summary.textContent = x.summary;
    const e = x.entry;
    if (e) {
      const pairs: Array<[string, string]> = [
        ['status', e.status], ['etag', e.etag ?? '-'], ['size', e.size === null ? '-' : `${num(e.size)} bytes`],
        ['attempts', `${e.attempts} (${e.failures} failure(s) since the last success)`], ['records', `${num(e.loaded)} loaded, ${num(e.rejected)} rejected, ${num(e.skipped)} skipped`],
        ['error', e.error ?? '-'], ['first seen', e.firstSeenAt], ['updated', e.updatedAt], ['done', e.doneAt ?? '-'], ['checked', e.checkedAt ?? '-'],
        ['next attempt', e.nextAttemptAt ?? '-'], ['reprocess', e.reprocess ? 'marked' : x.pendingRequests.length > 0 ? 'requested, not yet applied' : 'no'],
        ['next cycle', `${x.next.reason}${x.next.until ? ` until ${x.next.until}` : ''}`],
      ];
      facts.replaceChildren(...pairs.flatMap(([k, v]) => [h('dt', {}, [k]), h('dd', { 'data-fact': k }, [v])]));
      if (actionsOn()) tools.replaceChildren(button('Reprocess this file', () => void act(`reprocess ${key}`, '/api/actions/reprocess', { keys: [key] }), { 'data-action': 'reprocess-file' }));
    }
    rows.replaceChildren(...f.tables.filter((t) => t.rows > 0).map((t) => h('section', { 'aria-label': `${t.name} of this file` }, [
      h('h3', {}, [`${t.name}: ${num(t.rows)} from this file`]),
      pagedTable(`${t.name} of ${key}`, (after) => api<Page>(pageUrl(`/api/tables/${encodeURIComponent(t.name)}/rows`, after, { source_key: key }))),
    ])));
    if (f.tables.every((t) => t.rows === 0)) rows.replaceChildren(h('p', {}, ['No rows or rejections from this file.']));
  }, (err: Error) => say(`cannot read ${key}: ${err.message}`, true));
}

// ---------------------------------------------------------------------------------------------------------------------
// Updates: the overview as server-sent events (EventSource reconnects by itself while the daemon restarts).

/** What the Problems and Data views are computed from: they are read again only when it changes. */
function signature(): string {
  const s = latest?.status;
  return s ? JSON.stringify([s.files, s.records, s.lastCycle?.cycle, s.reprocess.length, s.failed.map((f) => f.attempts)]) : '';
}

function onOverview(o: Overview): void {
  latest = o;
  renderHeader(o, true);
  if (main.childElementCount === 0) render(false);
  fillNow();
  fillHistory();
  const sig = signature();
  if (sig !== shownSignature) {
    shownSignature = sig;
    refreshView?.();
  }
}

const events = new EventSource('/api/dashboard/events');
events.addEventListener('overview', (e) => onOverview(JSON.parse((e as MessageEvent<string>).data) as Overview));
events.addEventListener('failure', (e) => say(`the daemon could not compute the overview: ${(JSON.parse((e as MessageEvent<string>).data) as { error: string }).error}`, true));
events.addEventListener('error', () => renderHeader(latest, events.readyState === EventSource.OPEN));
events.addEventListener('open', () => renderHeader(latest, true));
