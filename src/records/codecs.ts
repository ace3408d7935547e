import * as t from 'io-ts';

/**
 * Shared io-ts building blocks for record `data` fields.
 *
 * They are plain (non-branded) `t.Type`s with descriptive names: the name is what a reject reason shows
 * (`year: expected SafeInteger, got "1999"`). None of them coerces: a number is never a string, a boolean is
 * never a number, and `null`/`undefined` always fail.
 */

/** An integer `n` with `Number.isSafeInteger(n)`; `"1999"`, `1.5`, `2 ** 53`, `NaN` fail. */
export const SafeInt = new t.Type<number, number, unknown>(
  'SafeInteger',
  (u): u is number => Number.isSafeInteger(u),
  (u, c) => (Number.isSafeInteger(u) ? t.success(u as number) : t.failure(u, c)),
  t.identity,
);

/** A safe integer `>= 0` (sizes, budgets). */
export const NonNegativeSafeInt = new t.Type<number, number, unknown>(
  'NonNegativeSafeInteger',
  (u): u is number => Number.isSafeInteger(u) && (u as number) >= 0,
  (u, c) => (Number.isSafeInteger(u) && (u as number) >= 0 ? t.success(u as number) : t.failure(u, c)),
  t.identity,
);

/** Any finite number, integral or not (`4` and `4.5`); `NaN`, `±Infinity` and `"4"` fail. */
export const FiniteNumber = new t.Type<number, number, unknown>(
  'FiniteNumber',
  (u): u is number => typeof u === 'number' && Number.isFinite(u),
  (u, c) => (typeof u === 'number' && Number.isFinite(u) ? t.success(u) : t.failure(u, c)),
  t.identity,
);

/** `true` or `false` only: `0`, `1`, `"false"` fail. (`t.boolean` is already strict.) */
export const StrictBoolean = t.boolean;

/** What a reason says of a string that is not {@link isText}. */
export const NOT_TEXT = 'expected text without U+0000 or lone surrogates';

/**
 * Whether a string is text every dialect stores and gives back exactly: well-formed Unicode (no lone surrogate such as
 * `"\ud800"`, which has no UTF-8 form: SQLite would store bytes other readers cannot decode, PostgreSQL's and MySQL's
 * drivers would write U+FFFD) without U+0000 (PostgreSQL's text cannot hold it, and C readers of SQLite stop there).
 * Two scans of a flat string, tens of nanoseconds for a field.
 */
export function isText(s: string): boolean {
  return s.isWellFormed() && s.indexOf('\0') === -1;
}

/**
 * Any {@link isText} string (possibly empty): every text field of every record type. A non-string fails as `expected
 * string`, a string holding U+0000 or a lone surrogate with {@link NOT_TEXT}, so the record is a stored rejection, never
 * a value one dialect refuses (failing its whole file) and another alters.
 */
export const Str = new t.Type<string, string, unknown>(
  'string',
  (u): u is string => typeof u === 'string' && isText(u),
  (u, c) => (typeof u !== 'string' ? t.failure(u, c) : isText(u) ? t.success(u) : t.failure(u, c, NOT_TEXT)),
  t.identity,
);

const DATE_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Whether `s` is exactly `YYYY-MM-DD` (ASCII digits, zero-padded) naming a real day of the proleptic
 * Gregorian calendar: `2020-02-29` yes; `2021-02-30`, `2021-2-3`, `2021-02-03T00:00` no.
 *
 * The day-of-month check is done arithmetically rather than with a `Date.UTC` round-trip: it is equivalent,
 * allocation-free, and avoids `Date.UTC` mapping years 0–99 to 1900–1999.
 */
export function isCalendarDate(s: string): boolean {
  const m = DATE_RE.exec(s);
  if (m === null) return false;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
}

/** A `YYYY-MM-DD` string that is a real calendar date; decodes to the same string. */
export const CalendarDate = new t.Type<string, string, unknown>(
  'CalendarDate(YYYY-MM-DD)',
  (u): u is string => typeof u === 'string' && isCalendarDate(u),
  (u, c) => (typeof u === 'string' && isCalendarDate(u) ? t.success(u) : t.failure(u, c)),
  t.identity,
);
