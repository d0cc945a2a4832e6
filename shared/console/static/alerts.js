// Alerts for the admin (GET .../alerts), each with what to do about it.

import { get } from './api.js';
import { badge, h, when } from './dom.js';

const TITLES = {
  reauthorization_required: 'Reauthorization required',
  credentials_invalid: 'App ID or secret refused',
  client_secret_expiring: 'Client secret expiring',
  client_secret_expired: 'Client secret expired',
  repeated_failures: 'Events keep failing to sync',
  webhook_failing: 'Webhook deliveries failing',
  app_access_denied: 'App access to a room refused',
};

const ADVICE = {
  reauthorization_required: 'The account must sign in again: open the connection and choose "Authorize again" (the same Microsoft account). Nothing syncs for it until then; events already in Outlook stay.',
  credentials_invalid: 'Microsoft refuses the app registration\'s client ID or secret, so nothing syncs. In Entra ID > App registrations > Certificates & secrets, create a new client secret and save its Value under Integration.',
  client_secret_expiring: 'Create a new client secret in the app registration (Certificates & secrets) before this date, then save it under Integration with its new expiry date.',
  client_secret_expired: 'Sync has stopped. Create a new client secret in the app registration (Certificates & secrets) and save it under Integration with its expiry date.',
  repeated_failures: 'Some events could not be written to Outlook after repeated retries. Open the connection, check its calendar and mailbox access, then run the export again ("All items" re-asserts every event without duplicates).',
  app_access_denied: 'Microsoft refuses the app this room mailbox (it left the app\'s Exchange management scope, the role assignment was removed, or consent was revoked). An Exchange administrator runs the commands the message names; the room recovers by itself at the next call that works, and its bookings wait meanwhile.',
  webhook_failing: 'The booking system\'s webhook receiver does not accept deliveries. Check the webhook URL and the receiver; nothing is lost, the feed keeps every change and deliveries resume when it answers.',
};

function subjectLink(subject) {
  const [kind, id] = String(subject).split(':');
  if ((kind === 'user' || kind === 'space') && id) {
    return h('a', { href: `#/connection/${encodeURIComponent(kind)}/${encodeURIComponent(id)}` }, `${kind} ${id}`);
  }
  if (subject === 'integration') return h('a', { href: '#/integration' }, 'the integration');
  return String(subject);
}

export async function refreshAlertCount() {
  const counter = document.getElementById('alert-count');
  try {
    const { alerts } = await get(['alerts']);
    const open = alerts.filter((a) => a.status === 'open').length;
    counter.textContent = open ? `${open} open` : '';
  } catch {
    counter.textContent = '';
  }
}

export async function alertsView() {
  const { alerts } = await get(['alerts']);
  const open = alerts.filter((a) => a.status === 'open');
  const list = h('ul', { class: 'alerts' }, alerts.map((alert) => h('li', { class: `card alert alert-${alert.status}` },
    h('h2', {}, TITLES[alert.type] || alert.type, ' ', badge(alert.status)),
    h('p', {}, 'Concerns ', subjectLink(alert.subject),
      alert.microsoft_code ? ` · Microsoft's code ${alert.microsoft_code}` : '',
      ` · raised ${when(alert.raised_at)}`, alert.occurrences > 1 ? ` · seen ${alert.occurrences} times, last ${when(alert.last_seen_at)}` : '',
      alert.resolved_at ? ` · resolved ${when(alert.resolved_at)}` : ''),
    h('p', { class: 'alert-message' }, alert.message),
    alert.status === 'open' ? h('p', { class: 'advice' }, h('strong', {}, 'What to do: '), ADVICE[alert.type] || 'Follow the message above.') : null)));
  return h('section', { 'aria-labelledby': 'alerts-title' },
    h('h1', { id: 'alerts-title' }, 'Alerts'),
    h('p', { class: 'lead' }, open.length
      ? `${open.length} open alert${open.length === 1 ? '' : 's'}: something needs an administrator.`
      : 'No open alerts. Resolved ones stay listed for a while.'),
    alerts.length ? list : h('p', {}, 'Nothing has been reported.'));
}
