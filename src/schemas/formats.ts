import { isCalendarDate } from '../records/codecs.js';

/**
 * The `format` values a schema may use, each a predicate on a string and the type name a reason shows
 * (`release_date: expected CalendarDate(YYYY-MM-DD), got "2021-02-30"`). Formats are assertions here, not
 * annotations: a value that does not match rejects its record.
 */
export interface Format {
  readonly name: string;
  readonly test: (s: string) => boolean;
}

const DATE_TIME_RE = /^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))$/;

/**
 * RFC 3339 `date-time` (section 5.6): a real calendar date, `T`, a time of day, and an offset (`Z` or `±hh:mm`): a
 * time without offset names no instant. Second 60 is a leap second and only exists at 23:59 UTC.
 */
export function isDateTime(s: string): boolean {
  const m = DATE_TIME_RE.exec(s);
  if (m === null || !isCalendarDate(m[1] as string)) return false;
  const hour = Number(m[2]);
  const minute = Number(m[3]);
  const second = Number(m[4]);
  if (hour > 23 || minute > 59 || second > 60) return false;
  let offset = 0;
  if (m[5] !== undefined) {
    const oh = Number(m[6]);
    const om = Number(m[7]);
    if (oh > 23 || om > 59) return false;
    offset = (m[5] === '+' ? 1 : -1) * (oh * 60 + om);
  }
  if (second === 60) {
    const utcMinutes = (((hour * 60 + minute - offset) % 1440) + 1440) % 1440;
    return utcMinutes === 23 * 60 + 59;
  }
  return true;
}

/**
 * A practical `email` (the shape every mail system accepts, as ajv-formats' "fast" mode checks it): a dot-atom local
 * part, `@`, and a domain of dot-separated labels of letters, digits and inner hyphens. Quoted local parts and
 * address literals (`"a b"@x`, `a@[127.0.0.1]`) are refused: no producer of records sends them.
 */
const EMAIL_RE = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** RFC 9562 textual form: 8-4-4-4-12 hexadecimal digits, either case (also the nil and max UUIDs). */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const FORMATS: ReadonlyMap<string, Format> = new Map([
  ['date', { name: 'CalendarDate(YYYY-MM-DD)', test: isCalendarDate }],
  ['date-time', { name: 'DateTime(RFC 3339 with offset)', test: isDateTime }],
  ['email', { name: 'Email', test: (s: string) => s.length <= 254 && EMAIL_RE.test(s) }],
  ['uuid', { name: 'UUID', test: (s: string) => UUID_RE.test(s) }],
]);
