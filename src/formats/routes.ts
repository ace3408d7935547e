import { ConfigError, IngestError } from '../errors.js';
import { matcher } from './detect.js';

/** ROUTES: the record type of the files a glob matches, for formats whose records carry no `{"type"}` envelope (CSV). */
export interface Route {
  glob: string;
  type: string;
}

/**
 * The record type ROUTES gives `key`: that of the first glob that matches it (picomatch, as FORMAT_OVERRIDES). A file
 * no route matches fails with BI_ROUTE naming the key: its records could be of any type, and are never skipped silently.
 */
export function routeOf(key: string, routes: readonly Route[], format: string): string {
  const route = routes.find((r) => matcher(r.glob)(key));
  if (route === undefined) throw new IngestError('BI_ROUTE', `${key}: no ROUTES glob matches this key, and ${format} records carry no type`);
  return route.type;
}

/** At start-up: a route naming a type no schema declares is refused, in one line, before any file is read. */
export function checkRoutes(routes: readonly Route[], declared: (type: string) => boolean): void {
  const bad = routes.find((r) => !declared(r.type));
  if (bad !== undefined) throw new ConfigError(`ROUTES: "${bad.glob}=${bad.type}" names type "${bad.type}", which no schema of SCHEMAS declares`);
}
