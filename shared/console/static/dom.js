// Small DOM helpers. Everything the API answers is put on the page as text nodes (never as HTML), so no answer
// can inject markup or script.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'value') element.value = value;
    else if (name === 'checked') element.checked = Boolean(value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

// A label tied to its control, with an optional hint the control is described by.
export function field(label, control, hint) {
  control.id = control.id || uid('field');
  const parts = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('p', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

// A checkbox (or switch) with its label after it.
export function check(label, control, hint) {
  control.id = control.id || uid('check');
  const parts = [h('div', { class: 'check' }, control, h('label', { for: control.id }, label))];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('p', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

export function options(choices, selected) {
  return choices.map(([value, label, disabled]) =>
    h('option', { value, selected: value === selected, disabled: Boolean(disabled) }, label));
}

// A region for a form's outcome: errors are announced at once (role=alert), successes politely.
export function messageBox() {
  const box = h('div', { class: 'message', hidden: true });
  return {
    element: box,
    clear() { box.hidden = true; box.replaceChildren(); box.removeAttribute('role'); },
    show(kind, ...content) {
      box.className = `message ${kind}`;
      box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
      box.replaceChildren(...content.flat().map((c) => (c instanceof Node ? c : h('p', {}, c))));
      box.hidden = false;
    },
  };
}

const announcer = () => document.getElementById('announce');

let announcedAt = 0;

export function announce(text, kind = 'info') {
  announcedAt = Date.now();
  const region = announcer();
  region.className = `announce ${kind}`;
  region.textContent = text;
}

// On navigation: an announcement older than a moment belongs to the page left behind.
export function clearStaleAnnouncement() {
  if (Date.now() - announcedAt > 2000) announcer().textContent = '';
}

export function when(value) {
  if (!value) return '–';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString(undefined, {
    dateStyle: 'medium', timeStyle: 'short',
  });
}

export function badge(status) {
  const labels = {
    connected: 'Connected', reauthorization_required: 'Reauthorization required', disabled: 'Sync disabled',
    access_denied: 'App access denied',
    open: 'Open', resolved: 'Resolved', queued: 'Queued', running: 'Running', completed: 'Completed',
    completed_with_failures: 'Completed with failures',
  };
  return h('span', { class: `badge badge-${status}` }, labels[status] || status);
}

export function busy(button, promise) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  return promise.finally(() => { button.disabled = false; button.removeAttribute('aria-busy'); });
}

// Facts as a description list, one group per fact (laid out as a grid of pairs).
export function facts(rows) {
  return h('dl', { class: 'facts' }, rows.map(([term, value]) => h('div', {}, h('dt', {}, term), h('dd', {}, value))));
}
