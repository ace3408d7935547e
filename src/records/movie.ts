import * as t from 'io-ts';
import { CalendarDate, isText, NonNegativeSafeInt, NOT_TEXT, StrictBoolean, Str } from './codecs.js';
import { normalizeTitle } from './normalize.js';
import type { RecordType } from './types.js';

/** Text (see {@link Str}) whose {@link normalizeTitle} form is non-empty (it is part of the key). */
export const MovieTitle = new t.Type<string, string, unknown>(
  'TitleWithLetterOrDigit',
  (u): u is string => typeof u === 'string' && isText(u) && normalizeTitle(u) !== '',
  (u, c) => {
    if (typeof u === 'string' && !isText(u)) return t.failure(u, c, NOT_TEXT);
    return typeof u === 'string' && normalizeTitle(u) !== '' ? t.success(u) : t.failure(u, c);
  },
  t.identity,
);

export const MovieData = t.type(
  {
    original_title: MovieTitle,
    original_language: Str,
    budget: NonNegativeSafeInt,
    is_adult: StrictBoolean,
    release_date: CalendarDate,
  },
  'MovieData',
);
export type MovieData = t.TypeOf<typeof MovieData>;

/**
 * `movie` records → table `movies`, keyed by (original_title_normalized, release_date).
 * Column kinds: `text` for titles, `string` for the language and for `release_date` (kept as `YYYY-MM-DD`
 * text so it reads back identically in every dialect, no driver date conversion), `bigint` for the budget.
 */
export const movie: RecordType<MovieData> = {
  type: 'movie',
  table: 'movies',
  codec: MovieData,
  columns: [
    { name: 'original_title', kind: 'text' },
    { name: 'original_title_normalized', kind: 'text' },
    { name: 'original_language', kind: 'string' },
    { name: 'budget', kind: 'bigint' },
    { name: 'is_adult', kind: 'boolean' },
    { name: 'release_date', kind: 'string' },
  ],
  key: ['original_title_normalized', 'release_date'],
  toRow(d) {
    return {
      original_title: d.original_title,
      original_title_normalized: normalizeTitle(d.original_title),
      original_language: d.original_language,
      budget: d.budget,
      is_adult: d.is_adult,
      release_date: d.release_date,
    };
  },
};
