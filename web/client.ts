/**
 * Requests to the daemon. The token (DASHBOARD_TOKEN, typed in by the operator) stays in this tab's sessionStorage and
 * goes only in the Authorization header of actions; reads need none.
 */
const KEY = 'bucket-ingest.dashboard-token';

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, value);
}

async function answer<T>(res: Response): Promise<T> {
  const body = (await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }))) as T & { error?: string };
  if (!res.ok) throw new Error(body.error ?? `${res.status} ${res.statusText}`);
  return body;
}

export async function api<T>(path: string): Promise<T> {
  return answer<T>(await fetch(path, { headers: { accept: 'application/json' } }));
}

export async function action(path: string, body: unknown): Promise<{ message: string }> {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token() ?? ''}` },
    body: JSON.stringify(body),
  });
  if (res.status === 401) setToken(null);
  return answer<{ message: string }>(res);
}
