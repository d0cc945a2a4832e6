// The console's shell: sign-in with the keys, the sections, and the outcome of a Microsoft sign-in that came
// back to this page. Each section lives in its own module and uses only the public API (api.js).

import { ApiError, CONSOLE_URL, explain, get, session } from './api.js';
import { alertsView, refreshAlertCount } from './alerts.js';
import { connectionView, connectionsView } from './connections.js';
import { announce, clearStaleAnnouncement, field, h, messageBox } from './dom.js';
import { integrationView } from './integration.js';

const main = document.getElementById('main');

// The outcomes the OAuth callback appends to return_url, in an admin's words.
const OUTCOMES = {
  connected: 'The Microsoft account is connected.',
  wrong_account: 'A different Microsoft account signed in than the one this connection is for. Sign out of Microsoft (or use a private window) and connect again with the expected account.',
  consent_denied: "Permission was not granted on Microsoft's consent page.",
  admin_approval_required: 'The organization requires an administrator to approve this app first. Ask a Microsoft 365 administrator to grant admin consent, then connect again.',
  wrong_account_type: 'This kind of Microsoft account cannot use this app registration (e.g. a personal account on a work-only app). Check the supported account type under Integration.',
  integration_disabled: 'Outlook sync is disabled for this system: enable it under Integration.',
  flow_expired: 'The sign-in took too long and expired. Connect again.',
  flow_invalid: 'This sign-in link is invalid or was already used. Connect again.',
  credentials_invalid: "Microsoft refused the app's ID or secret: fix them under Integration.",
  authorization_failed: 'Microsoft did not complete the authorization.',
};

// A Microsoft sign-in came back here with ?outcome=...: keep it, and take it out of the address bar.
function takeOutcome() {
  const query = new URLSearchParams(window.location.search);
  const outcome = query.get('outcome');
  if (!outcome) return null;
  const result = {
    outcome, kind: query.get('kind'), id: query.get('id'), account: query.get('account'),
    expected: query.get('expected_account'), code: query.get('microsoft_code'),
  };
  const target = result.kind && result.id ? `#/connection/${encodeURIComponent(result.kind)}/${encodeURIComponent(result.id)}` : '#/connections';
  window.history.replaceState(null, '', CONSOLE_URL + target);
  return result;
}

function showOutcome(result) {
  const what = result.kind && result.id ? `${result.kind} ${result.id}` : 'The connection';
  let text = OUTCOMES[result.outcome] || `The sign-in ended with "${result.outcome}".`;
  if (result.outcome === 'connected') {
    text = `Connected: ${what}${result.account ? ` as ${result.account}` : ''}. Choose its calendar below.`;
  } else if (result.outcome === 'wrong_account' && result.account && result.expected) {
    text = `Not connected: ${result.account} signed in, but ${what} is for ${result.expected}. ${OUTCOMES.wrong_account}`;
  } else {
    text = `Not connected (${result.outcome}): ${text}`;
  }
  if (result.code) text += ` Microsoft's code: ${result.code}.`;
  announce(text, result.outcome === 'connected' ? 'success' : 'error');
}

function signInView(problem) {
  const system = h('input', { name: 'system', required: true, autocomplete: 'off', spellcheck: 'false', pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,63}' });
  const functionKey = h('input', { name: 'function-key', type: 'password', required: true, autocomplete: 'off' });
  const systemKey = h('input', { name: 'system-key', type: 'password', autocomplete: 'off' });
  const message = messageBox();
  if (problem) message.show('error', problem);
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'sign-in-title', novalidate: true },
    h('h1', { id: 'sign-in-title' }, 'Open the console'),
    h('p', {}, 'Paste the keys the operator gave you. They stay in this browser tab only (session storage) and are sent as request headers; closing the tab forgets them.'),
    field('System ID', system, 'The institution this console manages, e.g. demo.'),
    field('Function key', functionKey, 'Sent as x-functions-key. The run command prints it locally.'),
    field('System key', systemKey, 'Sent as x-system-key (sk_…). Leave empty only where the deployment turned system keys off.'),
    message.element,
    h('button', { type: 'submit' }, 'Open'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.clear();
    if (!system.checkValidity() || !functionKey.value.trim()) {
      message.show('error', 'Enter the system ID (letters, digits, ".", "-", "_") and the function key.');
      (system.checkValidity() ? functionKey : system).focus();
      return;
    }
    session.set({ system: system.value.trim(), functionKey: functionKey.value.trim(), systemKey: systemKey.value.trim() });
    try {
      await get(['integration']);
    } catch (error) {
      session.clear();
      message.show('error', error instanceof ApiError ? explain(error) : String(error));
      return;
    }
    if (!window.location.hash.startsWith('#/')) window.location.hash = '#/integration';
    start();
  });
  main.replaceChildren(form);
  system.focus();
}

function route() {
  const hash = window.location.hash;
  if (!hash.startsWith('#/')) return ['connections'];
  return hash.slice(2).split('/').map(decodeURIComponent);
}

function markNav(section) {
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

let rendering = 0;

async function render({ focus = true } = {}) {
  const keys = session.get();
  if (!keys) {
    signInView();
    return;
  }
  const [section, ...rest] = route();
  const ticket = ++rendering;
  const view = {
    integration: () => integrationView(),
    connections: () => connectionsView(),
    connection: () => connectionView(rest[0], rest[1]),
    alerts: () => alertsView(),
  }[section] || (() => connectionsView());
  markNav(section === 'connection' ? 'connections' : section);
  let content;
  try {
    content = await view();
  } catch (error) {
    content = h('div', { class: 'card' }, h('h1', {}, 'Something went wrong'),
      ...(error instanceof ApiError ? explain(error) : [String(error)]).map((line) => h('p', {}, line)));
    if (error instanceof ApiError && error.status === 401) {
      session.clear();
      signInView(explain(error));
      return;
    }
  }
  if (ticket !== rendering) return; // a newer navigation won
  main.replaceChildren(content);
  const heading = main.querySelector('h1');
  if (focus && heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
  refreshAlertCount();
}

function start() {
  const keys = session.get();
  document.getElementById('nav').hidden = !keys;
  document.getElementById('who').hidden = !keys;
  document.getElementById('system-name').textContent = keys ? keys.system : '';
  render();
}

document.getElementById('forget').addEventListener('click', () => {
  session.clear();
  announce('The keys are forgotten.');
  window.location.hash = '';
  start();
});

window.addEventListener('hashchange', () => {
  if (window.location.hash.startsWith('#/') || window.location.hash === '') {
    clearStaleAnnouncement();
    render();
  }
});

const returned = takeOutcome();
start();
if (returned) showOutcome(returned);
