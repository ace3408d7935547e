/**
 * The two parts of undici this daemon uses, `Agent` and the `request` API, loaded from their own modules rather than
 * from undici's index, which loads all of undici (fetch, WebSocket, EventSource, cookies, caches, mocks): ~0.6 MB of
 * the bundle's 2 MB. An HTTP run then takes ~20–35 ms less, with ~70 ms less CPU and ~5–7 MB less memory
 * (README, Performance).
 *
 * undici has no `exports` map, so these paths resolve. package-lock.json pins the version, and
 * test/undici-core.test.ts checks that they are still undici's own `Agent` and `request`.
 */
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import requestApi from 'undici/lib/api/api-request.js';

export const Agent: typeof UndiciAgent = AgentClass;
export type Agent = UndiciAgent;

export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Dispatcher };

/** undici's `request(url, opts)` on `opts.dispatcher`: the URL split into origin and path, as undici's own wrapper does. */
export function request(url: string, opts: RequestOptions): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = opts;
  const u = new URL(url);
  return requestApi.call(dispatcher, { ...rest, origin: u.origin, path: u.search ? `${u.pathname}${u.search}` : u.pathname });
}
