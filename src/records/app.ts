import * as t from 'io-ts';
import { FiniteNumber, NonNegativeSafeInt, Str } from './codecs.js';
import type { RecordType } from './types.js';

/** Apps strictly smaller than this many bytes are awesome. */
export const AWESOME_SIZE_LIMIT = 1_000_000;

export const AppData = t.type(
  {
    name: Str,
    genre: Str,
    version: Str,
    rating: FiniteNumber, // 4.0 arrives as 4
    size_bytes: NonNegativeSafeInt, // can exceed 2^31
  },
  'AppData',
);
export type AppData = t.TypeOf<typeof AppData>;

/**
 * `app` records → table `apps`, keyed by (name, version).
 * Column kinds: `string` for name/genre/version, `float` for the rating, `bigint` for sizes beyond 2^31.
 */
export const app: RecordType<AppData> = {
  type: 'app',
  table: 'apps',
  codec: AppData,
  columns: [
    { name: 'name', kind: 'string' },
    { name: 'genre', kind: 'string' },
    { name: 'version', kind: 'string' },
    { name: 'rating', kind: 'float' },
    { name: 'size_bytes', kind: 'bigint' },
    { name: 'is_awesome', kind: 'boolean' },
  ],
  key: ['name', 'version'],
  toRow(d) {
    return {
      name: d.name,
      genre: d.genre,
      version: d.version,
      rating: d.rating,
      size_bytes: d.size_bytes,
      is_awesome: d.size_bytes < AWESOME_SIZE_LIMIT,
    };
  },
};
