// The public HTTP API, called with the keys the admin pasted in. They live in this tab's sessionStorage only
// (gone with the tab), are sent as headers (never in a URL) and are never written anywhere else.

const STORE = 'outlook-sync-console';

export const session = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(STORE) || 'null');
    } catch {
      return null;
    }
  },
  set(value) { sessionStorage.setItem(STORE, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(STORE); },
};

// This module is served at <base>/<route prefix>/console/api.js: the API is one level up.
export const API_BASE = new URL('../', import.meta.url);
// Where Microsoft's sign-in comes back to (the callback appends the outcome to it).
export const CONSOLE_URL = new URL('../console', import.meta.url).href;

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The app answered HTTP ${status}.`);
    this.status = status;
    this.code = error.code || (status ? `http_${status}` : 'network_error');
    this.microsoftCode = error.microsoft_code || null;
    this.field = (error.details && error.details.field) || null;
    this.details = error.details || {};
  }
}

export async function call(method, path, body) {
  const keys = session.get() || {};
  const headers = { Accept: 'application/json' };
  if (keys.functionKey) headers['x-functions-key'] = keys.functionKey;
  if (keys.systemKey) headers['x-system-key'] = keys.systemKey;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(new URL(path, API_BASE), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'same-origin', redirect: 'error',
    });
  } catch (error) {
    throw new ApiError(0, { error: { code: 'network_error', message: `The app could not be reached (${error.message}).` } });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// `systems/<system>/<parts...>`, each part escaped, plus an optional query.
export function systemPath(parts, query) {
  const system = (session.get() || {}).system || '';
  const path = ['systems', system, ...parts].map(encodeURIComponent).join('/');
  const search = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== null && v !== undefined && v !== '')) : null;
  return search && [...search].length ? `${path}?${search}` : path;
}

export const get = (parts, query) => call('GET', systemPath(parts, query));
export const put = (parts, body) => call('PUT', systemPath(parts), body);
export const post = (parts, body) => call('POST', systemPath(parts), body);
export const patch = (parts, body) => call('PATCH', systemPath(parts), body);
export const del = (parts, query) => call('DELETE', systemPath(parts, query));

// An error in words an admin can act on: the message, Microsoft's code, and the field at fault.
export function explain(error) {
  const lines = [error.message];
  if (error.microsoftCode) lines.push(`Microsoft's code: ${error.microsoftCode}`);
  if (error.field && !error.message.startsWith(error.field)) lines.push(`Field: ${error.field}`);
  if (error.status === 401) lines.push('Check the function key and the system key (Forget the keys, then paste them again).');
  if (error.status === 403 && error.code === 'system_key_invalid') lines.push('The system key is not a key of this system.');
  return lines;
}
