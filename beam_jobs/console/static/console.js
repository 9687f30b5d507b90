// The beam-jobs console's few lines of JavaScript: the start form and its
// confirmation, refreshing pages while runs are unfinished, output tabs and
// copy, cancel and approve. Everything shown is set with textContent, never
// as HTML. Every request that changes something sends the page's CSRF token.
'use strict';

const POLL_MS = 2000;

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : '';
}

async function api(method, url, body) {
  const options = {method, credentials: 'same-origin', headers: {'Accept': 'application/json'}};
  if (method !== 'GET') {
    options.headers['Content-Type'] = 'application/json';
    options.headers['X-CSRF-Token'] = csrfToken();
    options.body = JSON.stringify(body || {});
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    return {ok: false, status: 0, data: {error: 'The console did not answer: ' + error.message}};
  }
  let data = {};
  try { data = await response.json(); } catch (error) { data = {error: 'HTTP ' + response.status}; }
  return {ok: response.ok, status: response.status, data};
}

function showError(element, message) {
  if (!element) return;
  element.textContent = message || '';
  element.hidden = !message;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// Jobs: search, the start form, its confirmation.

function setUpJobFilter() {
  const filter = document.getElementById('job-filter');
  if (!filter) return;
  filter.addEventListener('input', () => {
    const wanted = filter.value.trim().toLowerCase();
    let shown = 0;
    document.querySelectorAll('section.job').forEach((job) => {
      const match = job.dataset.jobName.includes(wanted);
      job.hidden = !match;
      if (match) shown += 1;
    });
    document.getElementById('no-match').hidden = shown > 0;
  });
}

function parseValue(text) {
  // As `--param`: JSON when it parses, else the text itself.
  try { return JSON.parse(text); } catch (error) { return text; }
}

function readStartForm(form) {
  const params = {};
  for (const row of form.querySelectorAll('.param-row')) {
    const name = row.querySelector('.param-name').value.trim();
    const value = row.querySelector('.param-value').value;
    if (!name && !value) continue;
    if (!name) throw new Error('A param value has no name: name it, or clear the row.');
    if (name in params) throw new Error('The param "' + name + '" is given twice.');
    params[name] = parseValue(value);
  }
  const body = {job: form.dataset.job, params, dry_run: form.querySelector('.dry-run').checked};
  const shards = form.querySelector('.shard-count').value.trim();
  if (shards) body.shard_count = /^-?\d+$/.test(shards) ? Number(shards) : shards;
  const exportPath = form.querySelector('.export').value.trim();
  if (exportPath) body.export = exportPath;
  const spaces = form.querySelector('.namespaces');
  if (spaces && spaces.value.trim()) body.namespaces = spaces.value.trim();
  return body;
}

function addParamRow(form) {
  const tbody = form.querySelector('.params tbody');
  const row = tbody.querySelector('.param-row').cloneNode(true);
  row.querySelectorAll('input').forEach((input) => { input.value = ''; });
  tbody.appendChild(row);
  row.querySelector('.param-name').focus();
}

function setUpStartForms() {
  const dialog = document.getElementById('confirm-start');
  if (!dialog) return;
  let pending = null;
  document.querySelectorAll('.start-form').forEach((form) => {
    form.querySelector('.add-param').addEventListener('click', () => addParamRow(form));
    form.addEventListener('click', (event) => {
      if (!event.target.classList.contains('remove-param')) return;
      const rows = form.querySelectorAll('.param-row');
      const row = event.target.closest('.param-row');
      if (rows.length > 1) row.remove();
      else row.querySelectorAll('input').forEach((input) => { input.value = ''; });
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const error = form.querySelector('.form-error');
      let body;
      try { body = readStartForm(form); } catch (problem) { showError(error, problem.message); return; }
      const answer = await api('POST', '/api/runs/plan', body);
      if (!answer.ok) { showError(error, answer.data.error); return; }
      showError(error, '');
      pending = body;
      fillConfirmation(dialog, answer.data);
      dialog.showModal();
    });
  });
  document.getElementById('confirm-start-button').addEventListener('click', async (event) => {
    event.preventDefault();
    const button = event.target;
    button.disabled = true;
    const answer = await api('POST', '/api/runs', pending);
    button.disabled = false;
    if (!answer.ok) { showError(dialog.querySelector('.form-error'), answer.data.error); return; }
    window.location.href = answer.data.url;
  });
}

function fillConfirmation(dialog, plan) {
  const fields = {
    job: plan.job, destination: plan.destination, reads: plan.reads, writes: plan.writes,
    params: JSON.stringify(plan.params), shard_count: plan.shard_count,
    estimate: plan.estimate || '', estimate_assumptions: plan.estimate_assumptions || '',
    guardrails: plan.guardrails || '',
  };
  for (const [name, value] of Object.entries(fields)) {
    dialog.querySelector('[data-confirm="' + name + '"]').textContent = value;
  }
  // A Dataflow run's estimate and guardrails; a local run has neither.
  for (const name of ['estimate', 'guardrails']) {
    dialog.querySelectorAll('[data-when="' + name + '"]').forEach((row) => { row.hidden = !plan[name]; });
  }
  const warnings = dialog.querySelector('[data-confirm="warnings"]');
  warnings.replaceChildren(...plan.warnings.map((text) => el('li', text)));
  warnings.hidden = plan.warnings.length === 0;
  showError(dialog.querySelector('.form-error'), '');
}

// Runs: refresh the table while a run shown is not finished.

function setUpRunsTable() {
  const table = document.getElementById('runs-table');
  if (!table || table.dataset.allFinished === 'true') return;
  const state = document.querySelector('[data-poll-state]');
  const timer = setInterval(async () => {
    const answer = await api('GET', table.dataset.pollUrl);
    if (!answer.ok) return;
    const runs = answer.data.runs;
    table.tBodies[0].replaceChildren(...runs.map(runRow));
    if (runs.every((run) => run.finished)) {
      clearInterval(timer);
      table.dataset.allFinished = 'true';
      if (state) state.textContent = 'All shown runs are finished.';
    }
  }, POLL_MS);
}

function statusBadge(run) {
  const badge = el('span', run.label,
    'status status-' + run.status + (run.has_errors ? ' has-failures' : ''));
  badge.dataset.field = 'label';
  return badge;
}

function runRow(run) {
  const row = el('tr');
  row.dataset.runId = run.run_id;
  const link = el('a', run.run_id);
  link.href = run.url;
  const cells = [
    el('td', run.job_name), el('td'), el('td'),
    el('td', run.started_msec ? run.started_text : run.created_text),
    el('td', run.duration_text), el('td', run.output_line_count || 0, 'num'),
    el('td', run.error_count, 'num' + (run.error_count ? ' failures' : '')),
    el('td', run.source_text),
  ];
  cells[1].appendChild(link);
  cells[2].appendChild(statusBadge(run));
  row.append(...cells);
  return row;
}

// A run: follow it while it runs, then show it whole.

function renderProgress(view) {
  const body = document.getElementById('progress-body');
  if (!body) return;
  if (!view) { body.replaceChildren(el('div', 'No progress reported yet.', 'muted')); return; }
  const rows = view.kinds.map((kind) => {
    const row = el('div', null, 'progress-kind');
    const bar = document.createElement('progress');
    let text;
    if (kind.percent !== null) {
      bar.max = 100;
      bar.value = kind.percent;
      text = kind.read + ' / ' + kind.total + ' (' + kind.percent + '%)';
    } else {
      text = kind.read + ' read (total unknown)';
    }
    row.append(el('span', kind.kind, 'progress-name'), bar, el('span', text, 'progress-text'));
    return row;
  });
  const wrap = el('div', null, 'progress-kinds');
  wrap.append(...rows, el('div', 'updated ' + view.updated, 'muted'));
  body.replaceChildren(wrap);
}

function setUpRunPage() {
  const page = document.getElementById('run-page');
  if (!page) return;
  if (page.dataset.finished !== 'true') {
    const timer = setInterval(async () => {
      const answer = await api('GET', page.dataset.runUrl);
      if (!answer.ok) return;
      const run = answer.data;
      if (run.finished) { clearInterval(timer); window.location.reload(); return; }
      document.querySelectorAll('.run-status [data-field="label"]').forEach((badge) => {
        badge.replaceWith(statusBadge(run));
      });
      for (const name of ['status', 'started_text', 'finished_text', 'duration_text',
        'shard_count', 'runner', 'source_text', 'output_line_count', 'error_count',
        'error_line_count']) {
        const field = document.querySelector('.record [data-field="' + name + '"]');
        if (field) field.textContent = run[name] === null ? '-' : run[name];
      }
      renderProgress(run.progress_view);
      for (const [id, name] of [['stages', 'stages_text'], ['follow-error', 'follow_error'],
        ['budget-left', 'budget_left_text']]) {
        const box = document.getElementById(id);
        if (!box) continue;
        box.hidden = !run[name];
        const field = box.querySelector('[data-field]');
        if (field) field.textContent = run[name] || '';
      }
    }, POLL_MS);
  }
  document.querySelectorAll('.tab').forEach((tab) => {
    tab.addEventListener('click', () => {
      document.querySelectorAll('.tab').forEach((other) => {
        other.setAttribute('aria-selected', String(other === tab));
      });
      document.querySelectorAll('[data-panel]').forEach((panel) => {
        panel.hidden = panel.dataset.panel !== tab.dataset.tab;
      });
    });
  });
  const copy = document.getElementById('copy-output');
  if (copy) copy.addEventListener('click', () => copyOutput());
  setUpCancel();
  setUpBackup();
}

async function copyOutput() {
  const lines = [...document.querySelectorAll('[data-panel="all"] .line')].map((line) => line.textContent);
  await copyText(lines.join('\n') + '\n');
  document.getElementById('copy-note').textContent = 'Copied ' + lines.length + ' lines.';
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {
    // Without a secure context (http to another host), copy the old way.
    const area = el('textarea');
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}

// Signed approvals are made where the approver's key is: the page offers
// the command, and this copies it.
function setUpCopyCommands() {
  // A shortened id: the whole of it is on hover, and this copies it.
  document.querySelectorAll('.copy-id').forEach((button) => {
    button.addEventListener('click', async () => {
      await copyText(button.dataset.copy);
      button.textContent = 'Copied';
    });
  });
  document.querySelectorAll('.copy-command').forEach((button) => {
    button.addEventListener('click', async () => {
      await copyText(button.parentElement.querySelector('.approve-command').textContent);
      button.textContent = 'Copied';
    });
  });
}

function setUpCancel() {
  const button = document.getElementById('cancel-button');
  const dialog = document.getElementById('confirm-cancel');
  if (!button || !dialog) return;
  button.addEventListener('click', () => dialog.showModal());
  document.getElementById('confirm-cancel-button').addEventListener('click', async (event) => {
    event.preventDefault();
    const confirm = event.target;
    confirm.disabled = true;
    confirm.textContent = 'Canceling…';
    const page = document.getElementById('run-page');
    // A console that knows who is signed in records that name; the field
    // is there only where it knows nobody (one shared token).
    const field = document.getElementById('cancel-user');
    const user = field ? field.value.trim() : '';
    const answer = await api('POST', page.dataset.runUrl + '/cancel', {user: user || null});
    if (!answer.ok) {
      confirm.disabled = false;
      confirm.textContent = 'Cancel the run';
      showError(dialog.querySelector('.form-error'), answer.data.error);
      return;
    }
    window.location.reload();
  });
}

// A run's backup: a revert starts as a dry run (its page then offers the
// revert itself, confirmed); a run with failed items is finished by a retry.
function setUpBackup() {
  const error = document.getElementById('backup-error');
  const go = async (url, body, button) => {
    button.disabled = true;
    const answer = await api('POST', url, body);
    if (!answer.ok) {
      button.disabled = false;
      showError(error, answer.data.error);
      return false;
    }
    window.location.href = answer.data.url;
    return true;
  };
  const dryRun = document.getElementById('revert-dry-run');
  if (dryRun) {
    dryRun.addEventListener('click', () => go(
      `/api/runs/${encodeURIComponent(dryRun.dataset.revert)}/revert`, {dry_run: true}, dryRun));
  }
  const retry = document.getElementById('retry-failed');
  if (retry) {
    retry.addEventListener('click', () => go('/api/runs', {
      job: retry.dataset.job, params: withoutDryRun(JSON.parse(retry.dataset.params)),
      retry_failed: retry.dataset.retry}, retry));
  }
  const confirmButton = document.getElementById('revert-confirm-button');
  const dialog = document.getElementById('confirm-revert');
  if (!confirmButton || !dialog) return;
  confirmButton.addEventListener('click', () => dialog.showModal());
  document.getElementById('confirm-revert-button').addEventListener('click', async (event) => {
    event.preventDefault();
    const button = event.target;
    button.disabled = true;
    const answer = await api('POST',
      `/api/runs/${encodeURIComponent(confirmButton.dataset.revert)}/revert`, {
        reason: document.getElementById('revert-reason').value.trim() || null,
        force: document.getElementById('revert-force').checked});
    if (!answer.ok) {
      button.disabled = false;
      showError(dialog.querySelector('.form-error'), answer.data.error);
      return;
    }
    window.location.href = answer.data.url;
  });
}

function withoutDryRun(params) {
  const copy = {...params};
  delete copy.dry_run;
  return copy;
}

// Rehearsals: approve a passed one.

// Sign-off: the signed-in user approves, withdraws, rejects (the server
// records who; no form sends a name).
function setUpSignOff() {
  const forms = [['.approve-form', 'approveUrl', {note: '.approve-note'}],
    ['.withdraw-form', 'withdrawUrl', {reason: '.withdraw-reason'}],
    ['.reject-form', 'rejectUrl', {note: '.reject-note'}],
    ['.cancel-rehearsal-form', 'cancelUrl', {user: '.cancel-user'}]];
  for (const [selector, urlField, fields] of forms) {
    document.querySelectorAll(selector).forEach((form) => {
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const body = {};
        for (const [name, input] of Object.entries(fields)) {
          const field = form.querySelector(input);   // absent where the server knows who
          if (field) body[name] = field.value;
        }
        const answer = await api('POST', form.dataset[urlField], body);
        if (!answer.ok) { showError(form.querySelector('.form-error'), answer.data.error); return; }
        window.location.reload();
      });
    });
  }
}

// A running rehearsal: each look takes it on (server side), so the page asks
// every few seconds and shows it again once a run has started or it ended.
const REHEARSAL_POLL_MS = 10000;

function setUpRunningRehearsal() {
  const card = document.querySelector('.rehearsal[data-running="true"][data-full="true"]');
  if (!card) return;
  const timer = setInterval(async () => {
    const answer = await api('GET', '/api/rehearsals/' + encodeURIComponent(card.dataset.rehearsalId));
    if (!answer.ok) return;
    const seen = answer.data.run_ids.join(' ');
    if (!answer.data.is_running || seen !== card.dataset.runIds) {
      clearInterval(timer);
      window.location.reload();
    }
  }, REHEARSAL_POLL_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  setUpJobFilter();
  setUpStartForms();
  setUpRunsTable();
  setUpRunPage();
  setUpSignOff();
  setUpCopyCommands();
  setUpRunningRehearsal();
});
