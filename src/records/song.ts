import * as t from 'io-ts';
import { SafeInt, Str } from './codecs.js';
import type { RecordType } from './types.js';

export const SongData = t.type(
  {
    artist_name: Str,
    title: Str,
    year: SafeInt, // 0 means "unknown" and is common
    release: Str,
  },
  'SongData',
);
export type SongData = t.TypeOf<typeof SongData>;

/**
 * `song` records → table `songs`, keyed by (artist_name, title).
 * Column kinds: `string` for the artist name, `text` for the possibly long title and release, `bigint` for
 * the year, and `string` for `ingestion_time`: ISO-8601 text reads back identically in every dialect, which
 * a `timestamp` column would not (time zones, precision).
 */
export const song: RecordType<SongData> = {
  type: 'song',
  table: 'songs',
  codec: SongData,
  columns: [
    { name: 'artist_name', kind: 'string' },
    { name: 'title', kind: 'text' },
    { name: 'year', kind: 'bigint' },
    { name: 'release', kind: 'text' },
    { name: 'ingestion_time', kind: 'string' },
  ],
  key: ['artist_name', 'title'],
  toRow(d, now) {
    return { artist_name: d.artist_name, title: d.title, year: d.year, release: d.release, ingestion_time: now };
  },
};
