/**
 * Tests of values that several modules share: what counts as text every dialect stores, and what a calendar date is.
 * The compiled record types (src/schemas/compile.ts) and the checks of schema files both use them.
 */

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
