import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Settings } from '../config/schema.js';

/**
 * The base path of a daemon's side files (`<base>.cycle.json`, `<base>.cycles.json`, `<base>.requests`), absolute.
 *
 * With the JSON registry it is the registry path itself: one daemon holds that registry (its lock file), and
 * `reprocess` from another process, or another container on the same volume, must find the same `.requests`.
 *
 * With the database registry any number of daemons share one REGISTRY_PATH (replicas of a compose service on one
 * volume, say), so each gets its own: `<REGISTRY_PATH>.<worker>`, the worker being WORKER_NAME or else the host
 * name, as in its claims. Otherwise every replica would overwrite the others' last cycle and history, and read
 * theirs back as its own cycle number at start. `status` run in the daemon's container (`docker compose exec --index N ingest
 * bucket-ingest status`) thus shows that replica's last cycle; the files' counts come from the shared table.
 *
 * @example
 *   sideFilesBase({ REGISTRY_PATH: '/registry/docker.json', WORKER_NAME: '' }, 'database', 'c0ffee')
 *   // '/registry/docker.json.c0ffee'
 */
export function sideFilesBase(
  settings: Pick<Settings, 'REGISTRY_PATH' | 'WORKER_NAME'>, mode: 'json' | 'database', host: string = hostname(),
): string {
  const path = resolve(settings.REGISTRY_PATH);
  if (mode === 'json') return path;
  // A worker name is free text (a pod name, anything): only what is safe in a file name goes into one (no `/`,
  // so the file stays beside the registry path).
  const worker = (settings.WORKER_NAME || host).replace(/[^A-Za-z0-9._-]/g, '_') || '_';
  return `${path}.${worker}`;
}
