// The system's integration: the redirect URI to register, the app registration's ID and secret, the account
// type, the return origins and the enable switch (GET and PUT .../integration; the PUT is checked with Microsoft).

import { ApiError, CONSOLE_URL, explain, get, put } from './api.js';
import { announce, busy, check, facts, field, h, messageBox, options, uid, when } from './dom.js';

const ACCOUNT_TYPES = [
  ['single_tenant', 'This organizational directory only (single tenant)'],
  ['organizations', 'Any organizational directory (multitenant)'],
  ['common', 'Any organizational directory and personal accounts'],
  ['consumers', 'Personal Microsoft accounts only'],
];

const consoleOrigin = () => new URL(CONSOLE_URL).origin;

function redirectBox(uri) {
  const input = h('input', { value: uri, readonly: true, class: 'mono', spellcheck: 'false' });
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy');
  copy.addEventListener('click', async () => {
    input.select();
    try {
      await navigator.clipboard.writeText(uri);
      announce('The redirect URI is copied.', 'success');
    } catch {
      announce('Press Ctrl+C (or Cmd+C) to copy the selected redirect URI.');
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'redirect-title' },
    h('h2', { id: 'redirect-title' }, 'Redirect URI to register'),
    h('p', {}, 'In Microsoft Entra ID > App registrations, register this as a redirect URI of platform Web.'),
    h('div', { class: 'inline' }, field('Redirect URI', input), copy));
}

function statusBox(integration) {
  if (!integration.configured) {
    return h('section', { class: 'card', 'aria-labelledby': 'status-title' }, h('h2', { id: 'status-title' }, 'Status'),
      h('p', {}, 'Not set up yet: register the app, then save its ID and secret below.'));
  }
  const { credentials, client_secret: secret } = integration;
  const rows = [
    ['Calendar sync', integration.enabled ? 'Enabled' : 'Disabled: nothing syncs and nobody can connect'],
    ['Credentials', credentials.ok === false
      ? `Refused by Microsoft${credentials.microsoft_code ? ` (${credentials.microsoft_code})` : ''}, checked ${when(credentials.checked_at)}`
      : `Accepted by Microsoft, checked ${when(credentials.checked_at)}`],
    ['Client secret', secret.set ? `Saved (${secret.hint || 'hidden'})${secret.expires_on ? `, expires ${when(secret.expires_on)}${secret.days_left !== null ? ` (${secret.days_left} days left)` : ''}` : ', no expiry date recorded'}` : 'Not saved'],
    ['Who can sign in', integration.sign_in ? integration.sign_in.description || integration.sign_in.accounts.join(', ') : '–'],
    ['App access to rooms', integration.app_access && integration.app_access.enabled
      ? `On, in directory ${integration.app_access.tenant_id}` : 'Off: rooms connect through a staff member\'s sign-in'],
    ['Last saved', when(integration.updated_at)],
  ];
  const warning = integration.app_access && integration.app_access.warning;
  return h('section', { class: 'card', 'aria-labelledby': 'status-title' },
    h('h2', { id: 'status-title' }, 'Status'),
    facts(rows),
    warning ? h('p', { class: 'advice' }, h('strong', {}, 'App access warning: '), warning) : null);
}

function integrationForm(integration, reload) {
  const configured = integration.configured;
  const clientId = h('input', { name: 'client_id', value: configured ? integration.client_id : '', required: true, class: 'mono', spellcheck: 'false', autocomplete: 'off' });
  const secret = h('input', { name: 'client_secret', type: 'password', autocomplete: 'new-password' });
  const expires = h('input', { name: 'client_secret_expires_on', type: 'date', value: configured && integration.client_secret.expires_on ? integration.client_secret.expires_on.slice(0, 10) : '' });
  const accountType = h('select', { name: 'account_type' }, options(ACCOUNT_TYPES, configured ? integration.account_type : 'single_tenant'));
  const tenant = h('input', { name: 'tenant_id', value: configured ? integration.tenant_id || '' : '', class: 'mono', spellcheck: 'false', autocomplete: 'off' });
  const origins = h('textarea', { name: 'allowed_return_origins', rows: 3, class: 'mono', spellcheck: 'false', id: uid('origins'), 'aria-describedby': 'origins-hint' });
  origins.value = configured ? integration.allowed_return_origins.join('\n') : consoleOrigin();
  const addOrigin = h('button', { type: 'button', class: 'secondary' }, "Add this console's origin");
  addOrigin.addEventListener('click', () => {
    const list = origins.value.split('\n').map((o) => o.trim()).filter(Boolean);
    if (!list.includes(consoleOrigin())) list.push(consoleOrigin());
    origins.value = list.join('\n');
    announce(`${consoleOrigin()} is in the list; save with the client secret to apply it.`);
  });
  const webhookUrl = h('input', { name: 'webhook_url', type: 'url', value: configured ? integration.webhook_url || '' : '', class: 'mono', spellcheck: 'false' });
  const webhookSecret = h('input', { name: 'webhook_secret', type: 'password', autocomplete: 'new-password' });
  const enabled = h('input', { type: 'checkbox', role: 'switch', name: 'enabled', checked: configured ? integration.enabled : true });
  const appAccess = (configured && integration.app_access) || {};
  const appEnabled = h('input', { type: 'checkbox', role: 'switch', name: 'app_access_enabled', checked: Boolean(appAccess.enabled) });
  const appTenant = h('input', { name: 'app_access_tenant_id', value: appAccess.tenant_id || '', class: 'mono', spellcheck: 'false', autocomplete: 'off' });
  const placeDelegated = h('input', { type: 'checkbox', name: 'room_discovery_delegated', checked: Boolean(configured && integration.room_discovery && integration.room_discovery.delegated) });
  const message = messageBox();
  const save = h('button', { type: 'submit' }, 'Save settings');
  const secretHint = configured && integration.client_secret.set
    ? `Stored in Key Vault and never shown again (saved one: ${integration.client_secret.hint}). Leave empty to keep it; required again to change the client ID, the return origins or the webhook URL.`
    : "The secret's Value (not its Secret ID), from Certificates & secrets. Stored in Key Vault, never shown again.";

  const form = h('form', { class: 'card', 'aria-labelledby': 'settings-title', novalidate: true },
    h('h2', { id: 'settings-title' }, 'App registration'),
    h('div', { class: 'columns' }, h('div', {},
      field('Application (client) ID', clientId, 'From the app registration\'s Overview page.'),
      field('Client secret value', secret, secretHint),
      field('Client secret expires on', expires, 'Alerts warn 30 and 7 days before this date.'),
      field('Supported account type', accountType, 'The same choice as the app registration\'s "Supported account types".'),
      field('Directory (tenant) ID', tenant, 'Required for a single-tenant registration; recommended for the others.')),
    h('div', {}, h('div', { class: 'field' },
      h('label', { for: origins.id }, 'Allowed return origins (one per line)'),
      origins,
      h('p', { class: 'hint', id: 'origins-hint' }, `Where the browser may come back after a sign-in. This console (${consoleOrigin()}) must be listed for Connect to come back here.`),
      addOrigin),
    field('Webhook URL (optional)', webhookUrl, 'Changes to room calendars are POSTed here, signed. Leave as shown to keep it.'),
    field('Webhook signing secret', webhookSecret, '32-512 characters; required the first time a webhook URL is set, kept when empty.'),
    check('Enable calendar sync (OAuth 2)', enabled, 'Off stops all syncing and refuses new sign-ins; events already in calendars stay.'),
    h('fieldset', {}, h('legend', {}, 'Rooms without a sign-in'),
      check('App access to room mailboxes', appEnabled, 'The app reaches rooms itself (client credentials), limited by an Exchange management scope. Turning it on needs the client secret.'),
      field('Directory of the rooms (tenant ID or domain)', appTenant, 'Required for apps of any organizational directory; a single-tenant app uses its own.'),
      check('Space sign-ins also ask for Place.Read.All', placeDelegated, 'Lets a signed-in room delegate list the rooms (needs admin consent).')))),
    message.element,
    save);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.clear();
    const body = {
      client_id: clientId.value.trim(),
      account_type: accountType.value,
      tenant_id: tenant.value.trim() || null,
      enabled: enabled.checked,
      allowed_return_origins: origins.value.split('\n').map((o) => o.trim()).filter(Boolean),
      client_secret_expires_on: expires.value || null,
      webhook_url: webhookUrl.value.trim() || null,
    };
    body.app_access = { enabled: appEnabled.checked };
    if (appTenant.value.trim()) body.app_access.tenant_id = appTenant.value.trim();
    body.room_discovery = { delegated: placeDelegated.checked };
    if (secret.value.trim()) body.client_secret = secret.value.trim();
    if (webhookSecret.value) body.webhook_secret = webhookSecret.value;
    await busy(save, put(['integration'], body).then(async (saved) => {
      secret.value = '';
      webhookSecret.value = '';
      announce('Settings saved: Microsoft accepted the credentials.', 'success');
      await reload(saved);
    }).catch((error) => {
      if (!(error instanceof ApiError)) throw error;
      const lines = explain(error);
      let title = 'Not saved';
      if (error.code === 'credentials_invalid') {
        title = 'App ID or Secret is incorrect';
        lines[0] = lines[0].replace(/^App ID or Secret is incorrect\.\s*/, '');
        lines.push('A registration made minutes ago can take a few minutes before Microsoft accepts it: wait and save again. Otherwise check the supported account type and the tenant ID.');
      }
      if (error.code === 'client_secret_required') {
        lines.push(`Enter the client secret again to change ${(error.details.changed || []).join(', ') || 'these settings'}.`);
      }
      message.show('error', h('h3', {}, title), lines);
      const at = { credentials_invalid: 'client_secret', client_secret_required: 'client_secret', app_not_in_directory: 'app_access.tenant_id' }[error.code] || error.field;
      const target = { client_secret: secret, client_id: clientId, tenant_id: tenant, allowed_return_origins: origins, webhook_url: webhookUrl, webhook_secret: webhookSecret, client_secret_expires_on: expires, app_access: appEnabled, 'app_access.tenant_id': appTenant, 'app_access.enabled': appEnabled }[at];
      if (target) target.focus();
    }));
  });
  return form;
}

export async function integrationView() {
  const container = h('section', { 'aria-labelledby': 'integration-title' });
  const fill = (integration) => {
    container.replaceChildren(
      h('h1', { id: 'integration-title' }, 'Integration'),
      h('p', { class: 'lead' }, 'The system\'s Microsoft Entra app registration, used by every user and space of the system.'),
      h('div', { class: 'grid' }, redirectBox(integration.redirect_uri), statusBox(integration)),
      integrationForm(integration, async (saved) => fill(saved)));
  };
  fill(await get(['integration']));
  return container;
}
