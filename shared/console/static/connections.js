// Connections of users and spaces: the list with their health, connecting one (the OAuth flow comes back to
// this console), and one connection's page: calendars, room mailbox, bulk export with its progress, the feed of
// Outlook bookings, and removing the authorization.

import { ApiError, CONSOLE_URL, call, del, explain, get, patch, post, systemPath } from './api.js';
import { announce, badge, busy, check, facts, field, h, messageBox, options, uid, when } from './dom.js';

const connectionHref = (kind, id) => `#/connection/${encodeURIComponent(kind)}/${encodeURIComponent(id)}`;

// Send the browser to Microsoft; it comes back to this console with ?outcome=... (app.js shows it).
async function authorize(kind, id, extra, message) {
  try {
    const started = await post(['connections', kind, id, 'authorize'], { return_url: CONSOLE_URL, ...extra });
    window.location.assign(started.authorize_url);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    const lines = explain(error);
    if (error.code === 'return_url_not_allowed') {
      lines.push(h('p', {}, `Add ${new URL(CONSOLE_URL).origin} to the allowed return origins under `, h('a', { href: '#/integration' }, 'Integration'), ' first.'));
    }
    message.show('error', h('h3', {}, 'Could not start the sign-in'), lines);
  }
}

function connectForm(integration) {
  const appAccess = Boolean(integration.app_access && integration.app_access.enabled);
  const kindUser = h('input', { type: 'radio', name: 'kind', value: 'user', checked: true, id: uid('kind') });
  const kindSpace = h('input', { type: 'radio', name: 'kind', value: 'space', id: uid('kind') });
  const subject = h('input', { name: 'id', required: true, autocomplete: 'off', spellcheck: 'false', pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,63}' });
  const spaceType = h('select', { name: 'space_type' }, options([
    ['room', 'Room or other space'], ['container_space_with_seats', 'Container space with seats (cannot be synced)']], 'room'));
  const viaSignIn = h('input', { type: 'radio', name: 'mode', value: 'delegated', checked: true, id: uid('mode') });
  const viaApp = h('input', { type: 'radio', name: 'mode', value: 'app', id: uid('mode'), disabled: !appAccess });
  const modeGroup = h('fieldset', {}, h('legend', {}, 'How the space reaches its room'),
    h('div', { class: 'check' }, viaSignIn, h('label', { for: viaSignIn.id }, 'A staff member with access to the room signs in')),
    h('div', { class: 'check' }, viaApp, h('label', { for: viaApp.id }, "The app's own access, no sign-in (app mode)")),
    appAccess ? null : h('p', { class: 'hint' }, 'App mode needs app access, under Integration.'));
  const roomSlot = h('div');
  const twoWay = h('input', { type: 'checkbox', role: 'switch', name: 'two_way', checked: true });
  const appFields = h('div', { hidden: true }, roomSlot, check('Two-way sync: bring bookings made in Outlook back', twoWay));
  const spaceFields = h('div', { hidden: true }, field('Type of space', spaceType), modeGroup, appFields);
  const expected = h('input', { name: 'expected_account', type: 'email', autocomplete: 'off', spellcheck: 'false' });
  const expectedField = field('Expected Microsoft account (optional)', expected, 'Only this account may complete the sign-in, e.g. marge@contoso.org.');
  const message = messageBox();
  const submit = h('button', { type: 'submit' }, 'Authorize with Microsoft Account');
  let room = null;
  const update = async () => {
    const app = kindSpace.checked && viaApp.checked;
    spaceFields.hidden = !kindSpace.checked;
    appFields.hidden = !app;
    expectedField.hidden = app;
    submit.textContent = app ? 'Connect the room' : 'Authorize with Microsoft Account';
    if (app && !room) {
      room = await roomControl('', null, { own: false });
      roomSlot.replaceChildren(field('Room mailbox', room.control, room.hint));
    }
  };
  for (const radio of [kindUser, kindSpace, viaSignIn, viaApp]) radio.addEventListener('change', update);
  const kindGroup = h('fieldset', {}, h('legend', {}, 'What to connect'),
    h('div', { class: 'check' }, kindUser, h('label', { for: kindUser.id }, 'A user (shifts, free/busy)')),
    h('div', { class: 'check' }, kindSpace, h('label', { for: kindSpace.id }, 'A space (room bookings, two-way)')));
  const form = h('form', { class: 'card', 'aria-labelledby': 'connect-title', novalidate: true },
    h('h2', { id: 'connect-title' }, 'Connect a user or a space'),
    kindGroup,
    field('ID in the booking system', subject, 'The host app\'s ID of the user or space, e.g. 42 or room-101.'),
    spaceFields, expectedField, message.element, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.clear();
    if (!subject.checkValidity()) {
      message.show('error', 'The ID must be 1-64 letters, digits, ".", "-" or "_".');
      subject.focus();
      return;
    }
    const kind = kindSpace.checked ? 'space' : 'user';
    const id = subject.value.trim();
    if (kind === 'space' && viaApp.checked) {
      const body = { mode: 'app', sync_resource: room.control.value.trim(), two_way: twoWay.checked, space_type: spaceType.value };
      await busy(submit, call('PUT', systemPath(['connections', 'space', id]), body).then(() => {
        announce(`Space ${id} is connected to ${body.sync_resource} with the app's own access.`, 'success');
        window.location.hash = connectionHref('space', id);
      }).catch((error) => {
        if (!(error instanceof ApiError)) throw error;
        message.show('error', h('h3', {}, 'Not connected'), explain(error));
      }));
      return;
    }
    const extra = {};
    if (kind === 'space') extra.space_type = spaceType.value;
    if (expected.value.trim()) extra.expected_account = expected.value.trim();
    await busy(submit, authorize(kind, id, extra, message));
  });
  return form;
}

// A Microsoft error in words, with its code unless the words already name it.
const problem = (error) => {
  const text = error.message || '';
  return error.microsoft_code && !text.includes(error.microsoft_code) ? `${text} (${error.microsoft_code})`.trim() : text;
};

function connectionsTable(page) {
  if (!page.connections.length) return h('p', {}, 'No connections yet.');
  return h('table', {},
    h('caption', { class: 'sr-only' }, 'Connected users and spaces'),
    h('thead', {}, h('tr', {}, ['Kind', 'ID', 'Access', 'Status', 'Syncs to', 'Calendar', 'Last problem'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, page.connections.map((c) => h('tr', {},
      h('td', {}, c.kind),
      h('th', { scope: 'row', class: 'nowrap' }, h('a', { href: connectionHref(c.kind, c.id) }, c.id)),
      h('td', {}, c.mode === 'app' ? "The app's own access" : c.account.username || '–'),
      h('td', {}, badge(c.status)),
      h('td', { class: 'mono nowrap' }, c.sync_resource || '–'),
      h('td', {}, c.sync_calendar_id ? 'Chosen' : h('span', { class: 'todo' }, 'Not chosen')),
      h('td', {}, c.last_error ? problem(c.last_error) : '–')))));
}

export async function connectionsView() {
  const [first, integration] = await Promise.all([get(['connections']), get(['integration'])]);
  const listing = h('div', { class: 'card' }, h('h2', {}, 'Users and spaces'), connectionsTable(first));
  let cursor = first.more ? first.next_cursor : null;
  const more = h('button', { type: 'button', class: 'secondary', hidden: !cursor }, 'Show more');
  more.addEventListener('click', async () => {
    const page = await get(['connections'], { cursor });
    const rows = connectionsTable(page).querySelectorAll('tbody tr');
    listing.querySelector('tbody').append(...rows);
    cursor = page.more ? page.next_cursor : null;
    more.hidden = !cursor;
    announce(`${rows.length} more connections shown.`);
  });
  listing.append(more);
  return h('section', { 'aria-labelledby': 'connections-title' },
    h('h1', { id: 'connections-title' }, 'Connections'),
    h('p', { class: 'lead' }, "Each user signs in with their own Microsoft account; a space through a staff member's sign-in or the app's own access. Their health shows here."),
    listing,
    connectForm(integration));
}

// --- one connection ------------------------------------------------------------------------------------------

function statusCard(connection, reload) {
  const message = messageBox();
  const again = h('button', { type: 'button' }, 'Authorize again');
  again.addEventListener('click', () => busy(again, authorize(connection.kind, connection.id, {}, message)));
  const removeEvents = h('input', { type: 'checkbox', name: 'remove_events', id: uid('remove') });
  const remove = h('button', { type: 'button', class: 'danger' }, 'Remove authorization');
  remove.addEventListener('click', async () => {
    const also = removeEvents.checked ? ' and delete the events this product created' : '';
    if (!window.confirm(`Remove the authorization of ${connection.kind} ${connection.id}${also}?`)) return;
    await busy(remove, del(['connections', connection.kind, connection.id], { remove_events: removeEvents.checked ? 'true' : 'false' })
      .then((result) => {
        announce(`Authorization removed${result.events_removed ? `; ${result.events_removed} events deleted` : '; calendar events left in place'}.`, 'success');
        window.location.hash = '#/connections';
      })
      .catch((error) => message.show('error', h('h3', {}, 'Not removed'), explain(error))));
  });
  const app = connection.mode === 'app';
  const rows = [
    ['Status', badge(connection.status)],
    ['Access', app ? "The app's own access (no sign-in)" : 'A signed-in Microsoft account'],
    ['Microsoft account', app ? 'None' : connection.account.username ? (connection.account.name ? `${connection.account.name} (${connection.account.username})` : connection.account.username) : '–'],
    ['Syncs to mailbox', connection.sync_resource || '–'],
    ['Authorized', when(connection.authorized_at)],
    ['Token last refreshed', when(connection.token_refreshed_at)],
  ];
  if (connection.last_error) {
    rows.push(['Last problem', `${problem(connection.last_error)}, ${when(connection.last_error.at)}`]);
  }
  return h('section', { class: 'card', 'aria-labelledby': 'health-title' },
    h('h2', { id: 'health-title' }, 'Authorization and health'),
    facts(rows),
    connection.status === 'reauthorization_required'
      ? h('p', { class: 'advice' }, h('strong', {}, 'What to do: '), 'the account must sign in again. Choose "Authorize again".')
      : null,
    connection.status === 'access_denied'
      ? h('p', { class: 'advice' }, h('strong', {}, 'What to do: '), "Microsoft refuses the app this room: an Exchange administrator must put it back into the app's management scope (see the last problem). It recovers by itself at the next call that works; listing the calendars below is one.")
      : null,
    connection.next_step ? h('p', { class: 'advice' }, h('strong', {}, 'Next step: '), connection.next_step) : null,
    message.element,
    h('div', { class: 'actions' }, app ? null : again,
      h('span', { class: 'check' }, removeEvents, h('label', { for: removeEvents.id }, 'Also delete the events this product created')),
      remove));
}

// The room's mailbox: a dropdown when the app can list the directory's rooms (GET .../rooms, with the app's own
// token, or else through this space's sign-in), a free-text address when it cannot (403, 404, 409).
async function roomControl(current, via, { own = true } = {}) {
  let rooms = null;
  let why = '';
  for (const query of [{}, via ? { via } : null].filter(Boolean)) {
    try {
      rooms = (await get(['rooms'], query)).rooms;
      break;
    } catch (error) {
      if (!(error instanceof ApiError) || ![403, 404, 409].includes(error.status)) throw error;
      why = error.message;
    }
  }
  if (rooms && rooms.length) {
    const describe = (r) => [r.display_name || r.address, r.capacity ? `${r.capacity} seats` : '', r.building || '']
      .filter(Boolean).join(', ');
    const choices = [...(own ? [['', "The signed-in account's own mailbox"]] : [['', 'Choose a room…', true]]),
      ...rooms.map((r) => [r.address.toLowerCase(), `${describe(r)} (${r.address})`])];
    if (current && !choices.some(([value]) => value === current)) choices.push([current, current]);
    return { control: h('select', { name: 'sync_resource' }, options(choices, current || '')), hint: "The directory's rooms." };
  }
  return {
    control: h('input', { name: 'sync_resource', type: 'email', value: current || '', spellcheck: 'false', autocomplete: 'off', class: 'mono' }),
    hint: `The room mailbox's address (e.g. room-101@contoso.org)${own ? ', when full access to it was delegated to the signed-in account. Empty: the signed-in account\'s own mailbox (a room calendar shared with it)' : ''}.${why ? ` No room list: ${why}` : ''}`,
  };
}

async function roomCard(connection, reload) {
  const app = connection.mode === 'app';
  const own = !app && connection.sync_resource.toLowerCase() === (connection.account.username || '').toLowerCase();
  const room = await roomControl(own ? '' : connection.sync_resource.toLowerCase(), app ? null : `space/${connection.id}`, { own: !app });
  const location = h('input', { name: 'location', value: connection.location || '', spellcheck: 'false', autocomplete: 'off', pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,63}' });
  const twoWay = h('input', { type: 'checkbox', role: 'switch', name: 'two_way', checked: connection.two_way });
  const message = messageBox();
  const save = h('button', { type: 'submit' }, 'Save the room settings');
  const form = h('form', { class: 'card', 'aria-labelledby': 'room-title', novalidate: true },
    h('h2', { id: 'room-title' }, 'Sync resource'),
    field('Room mailbox', room.control, room.hint),
    field('Location ID', location, 'The booking system\'s location: its settings title the events.'),
    check('Two-way sync: bring bookings made in Outlook back', twoWay),
    message.element, save);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.clear();
    const body = { sync_resource: room.control.value.trim(), two_way: twoWay.checked };
    if (location.value.trim()) body.location = location.value.trim();
    await busy(save, patch(['connections', connection.kind, connection.id], body)
      .then(async (saved) => { announce('Room settings saved. Choose the calendar next.', 'success'); await reload(saved); })
      .catch((error) => { message.show('error', h('h3', {}, 'Not saved'), explain(error)); room.control.focus(); }));
  });
  return form;
}

async function calendarsCard(connection, reload) {
  const message = messageBox();
  let calendars = [];
  try {
    calendars = (await get(['connections', connection.kind, connection.id, 'calendars'])).calendars;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    message.show('error', h('h3', {}, 'The calendars cannot be listed'), explain(error));
    return h('section', { class: 'card', 'aria-labelledby': 'calendars-title' }, h('h2', { id: 'calendars-title' }, 'Calendars'), message.element);
  }
  const writable = calendars.map((c) => [c.id, `${c.name || c.id}${c.is_default ? ' (default)' : ''}${c.can_edit ? '' : ' (read only)'}`, !c.can_edit]);
  const sync = h('select', { name: 'sync_calendar_id' }, options([['', 'Choose a calendar…', true], ...writable], connection.sync_calendar_id || ''));
  const parts = [field(connection.kind === 'user' ? 'Calendar to sync shifts with' : 'Calendar to sync bookings with', sync,
    `Calendars of ${connection.sync_resource}.`)];
  let freebusy = null;
  if (connection.kind === 'user') {
    freebusy = h('select', { name: 'freebusy_calendar_id' }, options([['', 'Choose a calendar…', true],
      ...calendars.map((c) => [c.id, `${c.name || c.id}${c.is_default ? ' (default)' : ''}`])], connection.freebusy_calendar_id || ''));
    parts.push(field('Calendar to check free/busy status', freebusy));
  }
  const save = h('button', { type: 'submit' }, 'Save calendars');
  const form = h('form', { class: 'card', 'aria-labelledby': 'calendars-title', novalidate: true },
    h('h2', { id: 'calendars-title' }, 'Calendars'), parts, message.element, save);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.clear();
    const body = {};
    if (sync.value) body.sync_calendar_id = sync.value;
    if (freebusy && freebusy.value) body.freebusy_calendar_id = freebusy.value;
    if (!Object.keys(body).length) {
      message.show('error', 'Choose a calendar first.');
      sync.focus();
      return;
    }
    await busy(save, patch(['connections', connection.kind, connection.id], body)
      .then(async (saved) => { announce('Calendars saved.', 'success'); await reload(saved); })
      .catch((error) => message.show('error', h('h3', {}, 'Not saved'), explain(error))));
  });
  return form;
}

// Items as the host app would send them: a few future shifts or bookings, for trying the export out.
function sampleItems(kind, count) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const pad = (n) => String(n).padStart(2, '0');
  const items = [];
  for (let n = 1; n <= count; n += 1) {
    const day = new Date(Date.now() + n * 86400000);
    const date = `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}`;
    const hour = 9 + (n % 8);
    const occurrence = { key: date, start: `${date}T${pad(hour)}:00:00`, end: `${date}T${pad(hour + 1)}:00:00`, time_zone: zone };
    items.push(kind === 'user'
      ? { item: `sample-shift-${n}`, title: 'Reference desk', location_text: 'Main library', occurrences: [occurrence] }
      : { item: `sample-booking-${n}`, patron: { first_name: 'Sample', last_name: `Patron ${n}` }, public_nickname: `Group ${n}`, occurrences: [occurrence] });
  }
  return items;
}

function progressView() {
  const bar = h('progress', { max: 1, value: 0, id: uid('progress') });
  const label = h('label', { for: bar.id }, 'Export progress');
  const figures = h('p', { class: 'figures', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const failures = h('div');
  const box = h('div', { class: 'progress', hidden: true }, label, bar, figures, failures);
  return {
    element: box,
    update(job) {
      box.hidden = false;
      const finished = job.done + job.failed;
      bar.max = Math.max(job.total, 1);
      bar.value = finished;
      const percent = job.total ? Math.floor((finished / job.total) * 100) : 100;
      bar.setAttribute('aria-valuetext', `${percent}%`);
      figures.textContent = `${percent}%: ${job.done} of ${job.total} done, ${job.failed} failed, ${job.retrying} retrying, ${job.pending} waiting (${job.state.replaceAll('_', ' ')}).`;
      failures.replaceChildren(job.failures.length ? h('table', {},
        h('caption', {}, 'Failures'),
        h('thead', {}, h('tr', {}, ['Item', 'Occurrence', "Microsoft's code", 'Message'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, job.failures.map((f) => h('tr', {}, h('td', {}, f.item), h('td', {}, f.occurrence), h('td', {}, f.microsoft_code || '–'), h('td', {}, f.message || '–'))))) : '');
    },
  };
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function exportCard(connection) {
  const modeNew = h('input', { type: 'radio', name: 'mode', value: 'not_exported', checked: true, id: uid('mode') });
  const modeAll = h('input', { type: 'radio', name: 'mode', value: 'all', id: uid('mode') });
  const items = h('textarea', { name: 'items', rows: 12, class: 'mono', spellcheck: 'false' });
  const count = h('input', { type: 'number', name: 'sample_count', min: 1, max: 500, value: 20, class: 'short' });
  const fill = h('button', { type: 'button', class: 'secondary' }, 'Fill in sample items');
  fill.addEventListener('click', () => {
    const n = Math.min(Math.max(Number(count.value) || 20, 1), 500);
    items.value = JSON.stringify(sampleItems(connection.kind, n), null, 1);
    announce(`${n} sample items filled in.`);
  });
  const message = messageBox();
  const progress = progressView();
  const run = h('button', { type: 'submit' }, 'Run the export');
  const what = connection.kind === 'user' ? 'shifts' : 'bookings';
  const form = h('form', { class: 'card', 'aria-labelledby': 'export-title', novalidate: true },
    h('h2', { id: 'export-title' }, 'Bulk export'),
    h('p', {}, `Future ${what} from the booking system, written to the chosen calendar as a job; what fails is retried and reported.`),
    h('div', { class: 'columns' },
      h('div', {},
        h('fieldset', {}, h('legend', {}, 'Export option'),
          h('div', { class: 'check' }, modeNew, h('label', { for: modeNew.id }, `Export ${what} not exported before`)),
          h('div', { class: 'check' }, modeAll, h('label', { for: modeAll.id }, `Export all ${what} (updates the ones already exported; no duplicates)`))),
        h('div', { class: 'inline compact' }, field('Sample items', count), fill),
        message.element, h('div', { class: 'actions' }, run), progress.element),
      field(`The ${what} (JSON, as the booking system sends them to POST …/exports)`, items)));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.clear();
    let parsed;
    try {
      parsed = JSON.parse(items.value);
    } catch (error) {
      message.show('error', `The items are not valid JSON: ${error.message}`);
      items.focus();
      return;
    }
    const body = { mode: modeAll.checked ? 'all' : 'not_exported', items: parsed };
    await busy(run, (async () => {
      let job;
      try {
        job = await post(['connections', connection.kind, connection.id, 'exports'], body);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        message.show('error', h('h3', {}, 'The export did not start'), explain(error));
        return;
      }
      announce(`Export started: ${job.total} occurrences.`);
      for (;;) {
        job = await get(['connections', connection.kind, connection.id, 'exports', job.job]);
        progress.update(job);
        if (job.state.startsWith('completed')) break;
        await sleep(700);
      }
      announce(job.failed ? `Export finished: ${job.done} done, ${job.failed} failed.` : `Export finished: all ${job.done} done.`, job.failed ? 'error' : 'success');
    })());
  });
  return form;
}

function feedCard(connection) {
  const body = h('tbody');
  const table = h('table', { hidden: true }, h('caption', {}, 'Changes made in Outlook, oldest first'),
    h('thead', {}, h('tr', {}, ['#', 'Change', 'Subject', 'Starts', 'Ends', 'Booked by', 'Conflict'].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  const status = h('p', { 'aria-live': 'polite' });
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Check for new changes');
  const message = messageBox();
  let cursor = '0';
  const load = async () => {
    message.clear();
    let added = 0;
    try {
      for (;;) {
        const page = await call('GET', systemPath(['connections', 'space', connection.id, 'external-events'], { cursor, limit: 100 }));
        for (const change of page.changes) {
          const event = change.event || {};
          const creator = event.creator ? [event.creator.name, event.creator.email].filter(Boolean).join(', ') : '–';
          body.append(h('tr', {}, h('td', {}, change.seq), h('td', {}, change.type.replaceAll('_', ' ')),
            h('td', {}, event.subject || '–'), h('td', {}, event.is_all_day ? event.start_date || '–' : when(event.start)),
            h('td', {}, event.is_all_day ? event.end_date || '–' : when(event.end)), h('td', {}, creator),
            h('td', {}, event.conflict ? 'Yes' : 'No')));
          added += 1;
        }
        cursor = page.next_cursor;
        if (!page.more) break;
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      message.show('error', explain(error));
      return;
    }
    table.hidden = !body.children.length;
    status.textContent = body.children.length
      ? `${added} new change${added === 1 ? '' : 's'}; ${body.children.length} in all (cursor ${cursor}).`
      : 'No bookings made in Outlook yet. The pull runs every few minutes.';
  };
  refresh.addEventListener('click', () => busy(refresh, load()));
  load();
  return h('section', { class: 'card wide', 'aria-labelledby': 'feed-title' },
    h('h2', { id: 'feed-title' }, 'Bookings made in Outlook'),
    h('p', {}, 'The external-events feed the booking system reads by cursor: bookings created, changed or cancelled in the room\'s Outlook calendar.'),
    status, message.element, table, refresh);
}

const TITLE_MODES = [
  ['patron_name', "The patron's name"],
  ['patron_name_email', "The patron's name and email"],
  ['public_nickname', 'The public nickname (no title when there is none)'],
];

// The location's settings (GET and PUT .../locations/{location}): how events are titled, and whether bookings made
// in Outlook carry their creator's name and email.
async function locationCard(connection) {
  const settings = await get(['locations', connection.location]);
  const mode = h('select', { name: 'title_mode' }, options(TITLE_MODES, settings.title_mode));
  const creator = h('input', { type: 'checkbox', role: 'switch', name: 'populate_creator', checked: settings.populate_creator });
  const message = messageBox();
  const save = h('button', { type: 'submit' }, 'Save the location settings');
  const form = h('form', { class: 'card', 'aria-labelledby': 'location-title', novalidate: true },
    h('h2', { id: 'location-title' }, `Location ${connection.location}`),
    field('Outlook event title', mode, 'For every space of this location.'),
    check('Populate name and email from Outlook', creator, 'Bookings made in Outlook carry their creator from now on.'),
    message.element, save);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.clear();
    await busy(save, call('PUT', systemPath(['locations', connection.location]), { title_mode: mode.value, populate_creator: creator.checked })
      .then(() => announce('Location settings saved.', 'success'))
      .catch((error) => message.show('error', h('h3', {}, 'Not saved'), explain(error))));
  });
  return form;
}

export async function connectionView(kind, id) {
  const container = h('section', { 'aria-labelledby': 'connection-title' });
  const fill = async (connection) => {
    const settings = [];
    if (connection.status !== 'reauthorization_required') {
      if (kind === 'space') settings.push(await roomCard(connection, fill));
      if (kind === 'space' && connection.location) settings.push(await locationCard(connection));
      settings.push(await calendarsCard(connection, fill));
    }
    container.replaceChildren(...[
      h('p', {}, h('a', { href: '#/connections' }, '← All connections')),
      h('h1', { id: 'connection-title' }, `${kind === 'user' ? 'User' : 'Space'} ${id}`),
      statusCard(connection, fill),
      settings.length ? h('div', { class: 'grid' }, settings) : null,
      settings.length && connection.sync_calendar_id ? exportCard(connection) : null,
      kind === 'space' && connection.two_way ? feedCard(connection) : null].filter(Boolean));
  };
  try {
    await fill(await get(['connections', kind, id]));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    container.replaceChildren(h('h1', { id: 'connection-title' }, `${kind} ${id}`),
      h('div', { class: 'card' }, explain(error).map((line) => h('p', {}, line)),
        h('p', {}, 'It is not connected. ', h('a', { href: '#/connections' }, 'Connect it from the list of connections.'))));
  }
  return container;
}
