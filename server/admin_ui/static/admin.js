/* rlpa: the admin page (/admin/ui) and the API reference (/docs).
 *
 * Dependency-free and served by the gateway itself. Every piece of data reaches the page as
 * text (textContent, Text nodes, input values), never as markup. The admin key lives in this
 * tab's sessionStorage and travels only as an Authorization header: no cookie, so no CSRF.
 */
(() => {
  'use strict';

  const KEY_STORAGE = 'rlpa.adminKey';
  const PAGE_SIZE = 25;
  const ROOT = document.body.dataset.root || '';
  const $ = (id) => document.getElementById(id);

  /* ---------- DOM ---------- */

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'text') node.textContent = String(value);
      else if (name === 'className') node.className = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  function count(n, noun) {
    return `${n} ${noun}${n === 1 ? '' : 's'}`;
  }

  function when(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  // Each list remembers its latest request: an older answer arriving late (a search typed
  // while the first page loads) must not overwrite a newer one.
  const latest = new Map();

  function ticket(name) {
    const mine = (latest.get(name) || 0) + 1;
    latest.set(name, mine);
    return () => latest.get(name) === mine;
  }

  /* ---------- the admin API ---------- */

  class ApiError extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  function storedKey() {
    return sessionStorage.getItem(KEY_STORAGE);
  }

  async function api(method, path, options = {}) {
    const url = new URL(ROOT + path, location.origin);
    for (const [name, value] of Object.entries(options.query || {})) {
      if (value !== undefined && value !== null && value !== '') {
        url.searchParams.set(name, String(value));
      }
    }
    const headers = { Accept: 'application/json' };
    const key = storedKey();
    if (key) headers.Authorization = 'Bearer ' + key;
    const init = { method, headers, credentials: 'omit', cache: 'no-store' };
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(0, 'The gateway did not answer (' + err.message + ').');
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message = (data && data.error && data.error.message) || response.statusText;
      throw new ApiError(response.status, message, response.headers.get('Retry-After'));
    }
    return data;
  }

  // A browser resolves "." and ".." path segments before sending, encoded or not (the URL
  // standard treats %2e as a dot), so those two user ids cannot be addressed from a page.
  function userPath(user, tail = '') {
    if (user === '.' || user === '..') {
      throw new ApiError(0, `A browser cannot address the user id "${user}" in a URL path; ` +
        'use curl --path-as-is.');
    }
    return '/admin/users/' + encodeURIComponent(user) + tail;
  }

  function describe(err) {
    if (!(err instanceof ApiError)) return String((err && err.message) || err);
    switch (err.status) {
      case 0: return err.message;
      case 401: return `The gateway refused the key (401): ${err.message} Sign in with a valid admin key.`;
      case 403: return `This key may not do that (403): ${err.message} ` +
        'It needs the admin scope, and a key bound to one user reaches only that user.';
      case 429: return `Too many requests (429): ${err.message}` +
        (err.retryAfter ? ` Try again in ${err.retryAfter} s.` : '');
      default: return `${err.message} (${err.status})`;
    }
  }

  /* ---------- messages ---------- */

  function notice(text) {
    $('notice').textContent = text;
  }

  function showError(text) {
    const box = $('error');
    box.textContent = text;
    box.hidden = !text;
  }

  // Runs one user action: clears the last error, shows a new one, and signs out on a 401.
  async function guard(action, button) {
    showError('');
    if (button) button.disabled = true;
    try {
      await action();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && document.body.dataset.page === 'admin') {
        signOut();
      }
      showError(describe(err));
    } finally {
      if (button) button.disabled = false;
    }
  }

  function onSubmit(form, action) {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      guard(action, form.querySelector('button[type=submit]'));
    });
  }

  function onClick(button, action) {
    button.addEventListener('click', () => guard(action, button));
  }

  /* ---------- the API reference (shared by /docs and the API tab) ---------- */

  const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

  function typeName(schema) {
    if (!schema) return '';
    if (schema.$ref) return schema.$ref.split('/').pop();
    if (schema.type === 'array') return typeName(schema.items) + '[]';
    const union = schema.anyOf || schema.oneOf;
    if (union) return union.map(typeName).join(' | ');
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
    return schema.type || 'object';
  }

  function operationItem(method, path, op) {
    const details = el('details', { className: 'op' },
      el('summary', {},
        el('span', { className: 'method method-' + method, text: method.toUpperCase() }), ' ',
        el('code', { text: path }), ' ', el('span', { text: op.summary || '' })));
    if (op.description) details.append(el('p', { className: 'description', text: op.description }));
    const params = op.parameters || [];
    if (params.length) {
      details.append(el('h4', { text: 'Parameters' }), el('ul', {}, ...params.map((p) =>
        el('li', {}, el('code', { text: p.name }),
          ` (${p.in}${p.required ? ', required' : ''}) ${typeName(p.schema)}`,
          p.description ? ': ' + p.description : ''))));
    }
    const content = op.requestBody && op.requestBody.content;
    if (content) {
      details.append(el('h4', { text: 'Body' }), el('ul', {}, ...Object.entries(content).map(
        ([type, media]) => el('li', {}, el('code', { text: type }), ' ' + typeName(media.schema)))));
    }
    details.append(el('h4', { text: 'Responses' }), el('ul', {}, ...Object.entries(
      op.responses || {}).map(([code, r]) => el('li', {}, el('code', { text: code }),
      ' ' + (r.description || '')))));
    return el('li', {}, details);
  }

  function schemaItem(name, schema) {
    const required = new Set(schema.required || []);
    const props = Object.entries(schema.properties || {});
    return el('li', {}, el('details', { className: 'op' },
      el('summary', {}, el('code', { text: name }), ' ', typeName(schema)),
      schema.description ? el('p', { className: 'description', text: schema.description }) : null,
      el('ul', {}, ...props.map(([prop, s]) => el('li', {}, el('code', { text: prop }),
        ` ${typeName(s)}${required.has(prop) ? ' (required)' : ''}`,
        s.description ? ': ' + s.description : '')))));
  }

  function renderSchema(schema, container) {
    const level = Number(container.dataset.level || 2);
    const heading = (text) => el('h' + level, { text });
    const groups = new Map();
    for (const [path, item] of Object.entries(schema.paths || {})) {
      for (const method of METHODS) {
        if (!item[method]) continue;
        const tag = (item[method].tags || ['other'])[0];
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push(operationItem(method, path, item[method]));
      }
    }
    const info = schema.info || {};
    container.replaceChildren(
      el('p', { className: 'hint', text: `${info.title || 'API'} ${info.version || ''}` }),
      info.description ? el('p', { text: info.description }) : '');
    for (const [tag, items] of groups) container.append(heading(tag), el('ul', { className: 'ops' }, ...items));
    const schemas = Object.entries((schema.components || {}).schemas || {});
    if (schemas.length) {
      container.append(heading('Schemas'),
        el('ul', { className: 'ops' }, ...schemas.map(([name, s]) => schemaItem(name, s))));
    }
  }

  async function loadReference() {
    renderSchema(await api('GET', '/openapi.json'), $('api-ops'));
  }

  /* ---------- signing in ---------- */

  const VIEWS = ['sign-in-view', 'users-view', 'user-view', 'keys-view', 'usage-view', 'audit-view',
    'api-view'];

  function show(view, heading) {
    for (const id of VIEWS) $(id).hidden = id !== view;
    const signedIn = view !== 'sign-in-view';
    $('nav').hidden = !signedIn;
    $('session').hidden = !signedIn;
    for (const link of $('nav').querySelectorAll('a')) {
      const current = (location.hash || '#/users').startsWith(link.getAttribute('href'));
      if (current) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (heading) $(heading).focus();
  }

  function signOut() {
    sessionStorage.removeItem(KEY_STORAGE);
    $('key-input').value = '';
    show('sign-in-view');
  }

  function signInMessage(err, key) {
    if (!(err instanceof ApiError)) return describe(err);
    if (err.status === 401 && !key) return 'Authentication is on: enter an admin API key.';
    if (err.status === 401) return 'That key was not accepted (401). Check it, or create one ' +
      'with `rlpa keys create --scopes admin`.';
    if (err.status === 403) return 'That key is valid but lacks the admin scope (403).';
    return describe(err);
  }

  async function signIn() {
    const key = $('key-input').value.trim();
    if (!/^[\x21-\x7e]*$/.test(key)) {
      showError('An API key is printable ASCII without spaces.');
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    try {
      await api('GET', '/admin/users', { query: { limit: 1 } });
    } catch (err) {
      sessionStorage.removeItem(KEY_STORAGE);
      showError(signInMessage(err, key));
      return;
    }
    $('key-input').value = '';
    notice('Signed in.');
    if (location.hash === '' || location.hash === '#/users') await route();
    else location.hash = '#/users';
  }

  function describeSession() {
    const key = storedKey();
    $('who').textContent = key ? `Key ${key.slice(0, 12)}…` : 'No key (authentication off)';
  }

  /* ---------- users ---------- */

  const users = { query: '', cursors: [null], next: null };

  async function loadUsers() {
    const cursor = users.cursors[users.cursors.length - 1];
    const fresh = ticket('users');
    const page = await api('GET', '/admin/users',
      { query: { q: users.query, limit: PAGE_SIZE, cursor } });
    if (!fresh()) return;
    users.next = page.next_cursor;
    const list = $('user-list');
    list.replaceChildren(...page.data.map((u) => el('li', {},
      el('a', { href: '#/users/' + encodeURIComponent(u.user), text: u.user }),
      el('p', { className: 'hint', text: `version ${u.version} · ${count(u.traits_count, 'trait')} · ` +
        `last seen ${when(u.last_seen_at)}${u.personalization ? '' : ' · opted out'}` }))));
    const where = users.query ? ` matching "${users.query}"` : '';
    $('users-summary').textContent = page.data.length
      ? `Page ${users.cursors.length}: ${count(page.data.length, 'user')}${where}.`
      : `No users${where}.`;
    $('users-prev').hidden = users.cursors.length === 1;
    $('users-next').hidden = !users.next;
  }

  // The list is the one place a user's summary (personalization, last seen) is served.
  async function findSummary(user) {
    let cursor = null;
    for (let pages = 0; pages < 20; pages += 1) {
      const page = await api('GET', '/admin/users', { query: { q: user, limit: 100, cursor } });
      const found = page.data.find((u) => u.user === user);
      if (found) return found;
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    throw new ApiError(404, `No user "${user}".`);
  }

  /* ---------- one user ---------- */

  const current = { user: null, summary: null, profile: null };

  function renderFacts() {
    const { summary, profile } = current;
    const facts = [
      ['Profile version', String(profile.version)],
      ['Traits', String(profile.traits.length)],
      ['Personalization', summary.personalization ? 'on' : 'off (opted out)'],
      ['Last seen', when(summary.last_seen_at)],
    ];
    $('user-facts').replaceChildren(...facts.flatMap(([term, value]) =>
      [el('dt', { text: term }), el('dd', { text: value })]));
    $('toggle-personalization').textContent = summary.personalization
      ? 'Opt out (turn personalization off)' : 'Opt in (turn personalization on)';
  }

  function traitItem(trait) {
    const item = el('li', { className: 'trait' });
    const edit = el('button', { type: 'button', 'aria-label': `Edit trait: ${trait}`, text: 'Edit' });
    const remove = el('button', { type: 'button', 'aria-label': `Remove trait: ${trait}`, text: 'Remove' });
    item.append(el('span', { text: trait }), el('span', { className: 'actions' }, edit, remove));
    onClick(remove, async () => {
      await removeTrait(trait);
      notice(`Removed "${trait}".`);
      await refreshUser();
      $('traits-title').focus();
    });
    edit.addEventListener('click', () => item.replaceWith(editForm(trait)));
    return item;
  }

  let editCount = 0;

  function editForm(trait) {
    editCount += 1;
    const id = 'edit-trait-' + editCount;
    const input = el('input', { id, autocomplete: 'off', required: true });
    input.value = trait;
    const cancel = el('button', { type: 'button', text: 'Cancel' });
    const form = el('form', { className: 'inline' },
      el('label', { for: id, text: 'Change the trait to' }), input,
      el('button', { type: 'submit', text: 'Save' }), cancel);
    const item = el('li', { className: 'trait' }, form);
    cancel.addEventListener('click', () => {
      renderTraits();
      $('traits-title').focus();
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') cancel.click();
    });
    // Remove, then add: single-trait writes never overwrite a trait a chat turn has just
    // learned, as writing back the whole (possibly stale) list on this page could.
    onSubmit(form, async () => {
      const replacement = input.value.trim();
      if (!replacement || replacement === trait) return renderTraits();
      await removeTrait(trait);
      try {
        await addTrait(replacement);
      } catch (err) {
        await refreshUser();
        throw new ApiError(err.status, `Removed "${trait}" but could not add "${replacement}": ` +
          err.message);
      }
      notice(`Changed "${trait}" to "${replacement}".`);
      await refreshUser();
      $('traits-title').focus();
    });
    queueMicrotask(() => input.focus());
    return item;
  }

  function addTrait(trait) {
    return api('POST', userPath(current.user, '/profile/traits'), { body: { trait } });
  }

  function removeTrait(trait) {
    return api('DELETE', userPath(current.user, '/profile/traits'), { query: { trait } });
  }

  function renderTraits() {
    const { traits, version, updated_at: updated, source } = current.profile;
    $('profile-meta').textContent = `Version ${version}, ${when(updated)}, by ${source}.`;
    $('traits').replaceChildren(...(traits.length
      ? traits.map(traitItem) : [el('li', { className: 'hint', text: 'No traits.' })]));
  }

  function traitList(traits, className, mark) {
    return el('ul', { className }, ...traits.map((t) => el('li', {}, mark + ' ', t)));
  }

  function versionItem(v) {
    const madeBy = [`source ${v.source}`];
    if (v.model_name) madeBy.push(`model ${v.model_name}`);
    if (v.request_id) madeBy.push(`request ${v.request_id}`);
    if (v.actor_key_id !== undefined && v.actor_key_id !== null) madeBy.push(`key #${v.actor_key_id}`);
    const item = el('li', { className: 'version' },
      el('h4', { text: `Version ${v.version}` + (v.version === current.profile.version ? ' (current)' : '') }),
      el('p', { className: 'hint', text: `${when(v.created_at)} · ${madeBy.join(' · ')}` }));
    if (v.added.length) item.append(traitList(v.added, 'added', '+'));
    if (v.removed.length) item.append(traitList(v.removed, 'removed', '−'));
    if (!v.added.length && !v.removed.length) item.append(el('p', { className: 'hint', text: 'No change.' }));
    if (v.version !== current.profile.version) {
      const rollback = el('button', { type: 'button', text: `Roll back to version ${v.version}` });
      onClick(rollback, async () => {
        await api('POST', userPath(current.user, '/profile/rollback'), { body: { version: v.version } });
        notice(`Rolled back to version ${v.version}.`);
        await refreshUser();
        $('traits-title').focus();
      });
      item.append(rollback);
    }
    return item;
  }

  async function refreshUser() {
    const user = current.user;
    const fresh = ticket('user');
    const [summary, profile, history] = await Promise.all([
      findSummary(user),
      api('GET', userPath(user, '/profile')),
      api('GET', userPath(user, '/profile/history')),
    ]);
    if (!fresh()) return;
    Object.assign(current, { summary, profile });
    renderFacts();
    renderTraits();
    const versions = [...history.data].sort((a, b) => b.version - a.version);
    $('history').replaceChildren(...versions.map(versionItem));
  }

  async function openUser(user) {
    current.user = user;
    $('user-title').textContent = user;
    for (const id of ['user-facts', 'traits', 'history']) $(id).replaceChildren();
    $('profile-meta').textContent = 'Loading…';
    $('erase-form').hidden = true;
    show('user-view', 'user-title');
    await refreshUser();
  }

  function exportName(user) {
    return 'rlpa-export-' + user.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80) + '.json';
  }

  async function downloadExport() {
    const data = await api('GET', userPath(current.user, '/export'));
    const blob = new Blob([JSON.stringify(data, null, 2) + '\n'], { type: 'application/json' });
    const link = el('a', { href: URL.createObjectURL(blob), download: exportName(current.user) });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    notice(`Downloaded the export of "${current.user}".`);
  }

  function wireUser() {
    onClick($('toggle-personalization'), async () => {
      const on = !current.summary.personalization;
      current.summary = await api('PATCH', userPath(current.user), { body: { personalization: on } });
      renderFacts();
      notice(on ? 'Personalization is on.' : 'The user is opted out: no profile is read or learned.');
    });
    onClick($('export-user'), downloadExport);
    $('erase-start').addEventListener('click', () => {
      $('erase-form').hidden = false;
      $('erase-confirm').value = '';
      $('erase-submit').disabled = true;
      $('erase-confirm').focus();
    });
    $('erase-cancel').addEventListener('click', () => {
      $('erase-form').hidden = true;
      $('erase-start').focus();
    });
    $('erase-confirm').addEventListener('input', () => {
      $('erase-submit').disabled = $('erase-confirm').value !== current.user;
    });
    onSubmit($('erase-form'), async () => {
      if ($('erase-confirm').value !== current.user) throw new Error('Type the user id exactly.');
      await api('DELETE', userPath(current.user));
      notice(`Erased "${current.user}".`);
      location.hash = '#/users';
    });
    onSubmit($('add-trait-form'), async () => {
      const trait = $('new-trait').value.trim();
      if (!trait) return;
      await addTrait(trait);
      $('new-trait').value = '';
      notice(`Added "${trait}".`);
      await refreshUser();
    });
  }

  /* ---------- keys ---------- */

  function keyItem(key) {
    const facts = [`prefix ${key.prefix}…`, `scopes ${key.scopes.join(', ')}`,
      `created ${when(key.created_at)}`];
    if (key.user !== null) facts.push(`bound to ${key.user}`);
    if (key.expires_at) facts.push(`expires ${when(key.expires_at)}`);
    if (key.rpm_limit !== null) facts.push(`${limit(key.rpm_limit)} requests per minute`);
    if (key.tpm_limit !== null) facts.push(`${limit(key.tpm_limit)} tokens per minute`);
    facts.push(key.last_used_at ? `last used ${when(key.last_used_at)}` : 'never used');
    if (key.revoked_at) facts.push(`revoked ${when(key.revoked_at)}`);
    const item = el('li', { className: key.revoked_at ? 'revoked' : '' },
      el('h3', { text: `#${key.id} ${key.name || '(no name)'}` }),
      el('p', { className: 'hint', text: facts.join(' · ') }));
    if (!key.revoked_at) {
      const revoke = el('button', { type: 'button', className: 'danger',
        'aria-label': `Revoke key #${key.id}`, text: 'Revoke' });
      onClick(revoke, async () => {
        if (!window.confirm(`Revoke key #${key.id} (${key.prefix}…)? Clients using it stop working.`)) return;
        await api('DELETE', '/admin/keys/' + encodeURIComponent(key.id));
        notice(`Revoked key #${key.id}.`);
        await loadKeys();
        $('keys-title').focus();
      });
      item.append(revoke);
    }
    return item;
  }

  function limit(n) {
    return n === 0 ? 'no limit on' : number(n);
  }

  function perMinute(id) {
    const text = $(id).value.trim();
    if (!text) return undefined;
    if (!/^\d+$/.test(text)) throw new Error('A limit per minute is a whole number (0: no limit).');
    return Number(text);
  }

  async function loadKeys() {
    const fresh = ticket('keys');
    const keys = await api('GET', '/admin/keys');
    if (!fresh()) return;
    $('key-list').replaceChildren(...keys.data.map(keyItem));
  }

  function wireKeys() {
    onSubmit($('create-key-form'), async () => {
      const scopes = ['chat', 'admin'].filter((s) => $('scope-' + s).checked);
      if (!scopes.length) throw new Error('Choose at least one scope.');
      const body = { name: $('key-name').value.trim(), scopes };
      const user = $('key-user').value;
      if (user) body.user = user;
      if ($('key-expires').value) body.expires_at = $('key-expires').value + 'T00:00:00Z';
      body.rpm_limit = perMinute('key-rpm');
      body.tpm_limit = perMinute('key-tpm');
      const created = await api('POST', '/admin/keys', { body });
      $('new-secret-value').value = created.key;
      $('new-secret').hidden = false;
      $('new-secret-title').focus();
      $('create-key-form').reset();
      await loadKeys();
    });
    $('copy-secret').addEventListener('click', async () => {
      const input = $('new-secret-value');
      try {
        await navigator.clipboard.writeText(input.value);
        notice('Copied the secret.');
      } catch {
        input.select();
        notice('Select-and-copy it by hand: the clipboard is not available here.');
      }
    });
    $('dismiss-secret').addEventListener('click', () => {
      $('new-secret-value').value = '';
      $('new-secret').hidden = true;
      $('keys-title').focus();
    });
  }

  /* ---------- usage ---------- */

  const USAGE_GROUPS = {
    hour: ['Hour (UTC)', (row) => when(row.hour)],
    day: ['Day (UTC)', (row) => row.day],
    tenant: ['Tenant', (row) => row.tenant],
    key: ['Key', (row) => (row.key_id === null ? 'no key (authentication off)'
      : `#${row.key_id} ${row.key_name || ''}`.trim())],
    user: ['End user (pseudonym)', (row) => row.user_hash || 'no user'],
    model: ['Model', (row) => row.model],
  };
  const USAGE_COUNTS = [['Requests', 'requests'], ['Prompt tokens', 'prompt_tokens'],
    ['Completion tokens', 'completion_tokens'], ['Total tokens', 'total_tokens']];

  function number(n) {
    return Number(n).toLocaleString('en-US');
  }

  function nextDay(day) {
    const date = new Date(day + 'T00:00:00Z');
    date.setUTCDate(date.getUTCDate() + 1);
    return date.toISOString();
  }

  async function loadUsage() {
    const groups = $('usage-group').value.split(',');
    const since = $('usage-since').value;
    const until = $('usage-until').value;
    const fresh = ticket('usage');
    const report = await api('GET', '/admin/usage', { query: {
      group_by: groups.join(','),
      since: since ? since + 'T00:00:00Z' : null,
      until: until ? nextDay(until) : null,
      key_id: $('usage-key').value.trim(),
      user: $('usage-user').value,
      model: $('usage-model').value.trim(),
    } });
    if (!fresh()) return;
    const cell = (tag, text, numeric) => el(tag, { className: numeric ? 'num' : null, text });
    $('usage-head').replaceChildren(
      ...groups.map((g) => el('th', { scope: 'col', text: USAGE_GROUPS[g][0] })),
      ...USAGE_COUNTS.map(([title]) => cell('th', title, true)));
    $('usage-rows').replaceChildren(...report.data.map((row) => el('tr', {},
      ...groups.map((g) => cell('td', USAGE_GROUPS[g][1](row))),
      ...USAGE_COUNTS.map(([, field]) => cell('td', number(row[field]), true)))));
    $('usage-total').replaceChildren(
      el('th', { scope: 'row', colspan: groups.length, text: 'Total' }),
      ...USAGE_COUNTS.map(([, field]) => cell('td', number(report.total[field]), true)));
    $('usage-summary').textContent = report.data.length
      ? `${count(report.data.length, 'row')}${report.has_more ? ' (more: narrow the filters)' : ''}.`
      : 'No usage matches these filters.';
  }

  /* ---------- audit ---------- */

  const audit = { cursors: [null], next: null };

  function auditItem(event) {
    const actor = event.actor_key_id === null ? 'no key (authentication off, or the CLI)'
      : `key #${event.actor_key_id}`;
    const isUser = /^(user|profile)\./.test(event.action) && !event.target.startsWith('blake2b:');
    const target = isUser
      ? el('a', { href: '#/users/' + encodeURIComponent(event.target), text: event.target })
      : el('span', { text: event.target });
    return el('li', {}, el('h3', {}, `${event.action} `, target),
      el('p', { className: 'hint', text: `${when(event.at)} · by ${actor}` }),
      Object.keys(event.detail || {}).length
        ? el('pre', { text: JSON.stringify(event.detail, null, 1) }) : null);
  }

  async function loadAudit() {
    const cursor = audit.cursors[audit.cursors.length - 1];
    const fresh = ticket('audit');
    const page = await api('GET', '/admin/audit', { query: { limit: PAGE_SIZE, cursor } });
    if (!fresh()) return;
    audit.next = page.next_cursor;
    $('audit-list').replaceChildren(...(page.data.length ? page.data.map(auditItem)
      : [el('li', { className: 'hint', text: 'No events.' })]));
    $('audit-prev').hidden = audit.cursors.length === 1;
    $('audit-next').hidden = !audit.next;
  }

  /* ---------- routing: #/users, #/users/<id>, #/keys, #/audit, #/api ---------- */

  async function route() {
    showError('');
    if (storedKey() === null) {
      show('sign-in-view');
      return;
    }
    describeSession();
    const hash = location.hash || '#/users';
    if (hash.startsWith('#/users/')) {
      let user;
      try {
        user = decodeURIComponent(hash.slice('#/users/'.length));
      } catch {
        location.hash = '#/users';
        return;
      }
      await guard(() => openUser(user));
    } else if (hash === '#/keys') {
      show('keys-view', 'keys-title');
      await guard(loadKeys);
    } else if (hash === '#/usage') {
      show('usage-view', 'usage-title');
      await guard(loadUsage);
    } else if (hash === '#/audit') {
      show('audit-view', 'audit-title');
      audit.cursors = [null];
      await guard(loadAudit);
    } else if (hash === '#/api') {
      show('api-view', 'api-title');
      await guard(loadReference);
    } else {
      show('users-view', 'users-title');
      await guard(loadUsers);
    }
  }

  function wireAdmin() {
    onSubmit($('sign-in-form'), signIn);
    $('sign-out').addEventListener('click', () => {
      signOut();
      notice('Signed out: the key is forgotten in this tab.');
    });
    onSubmit($('search-form'), async () => {
      users.query = $('user-search').value.trim();
      users.cursors = [null];
      await loadUsers();
    });
    onClick($('users-next'), async () => {
      users.cursors.push(users.next);
      await loadUsers();
    });
    onClick($('users-prev'), async () => {
      users.cursors.pop();
      await loadUsers();
    });
    onClick($('audit-next'), async () => {
      audit.cursors.push(audit.next);
      await loadAudit();
    });
    onClick($('audit-prev'), async () => {
      audit.cursors.pop();
      await loadAudit();
    });
    onSubmit($('usage-form'), loadUsage);
    wireUser();
    wireKeys();
    window.addEventListener('hashchange', route);
    route();
  }

  if (document.body.dataset.page === 'admin') wireAdmin();
  else guard(loadReference);
})();
