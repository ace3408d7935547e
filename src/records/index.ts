import { app } from './app.js';
import { movie } from './movie.js';
import { song } from './song.js';
import type { RecordType } from './types.js';

/** Every record type the daemon loads. Add a module like `song.ts` and list it here. */
export const recordTypes: readonly RecordType[] = [song, movie, app];

const byType: ReadonlyMap<string, RecordType> = new Map(recordTypes.map((rt) => [rt.type, rt]));

/** The record type for a record's `type` value, or `undefined` for types that are not loaded (e.g. `book`). */
export function recordTypeFor(type: string): RecordType | undefined {
  return byType.get(type);
}

export type { Cell, ColumnKind, ColumnSpec, RecordType, Row } from './types.js';
export { song, SongData } from './song.js';
export { movie, MovieData, MovieTitle } from './movie.js';
export { app, AppData, AWESOME_SIZE_LIMIT } from './app.js';
export { normalizeTitle } from './normalize.js';
export { formatErrors, describeValue, capReason } from './reasons.js';
export { SafeInt, NonNegativeSafeInt, FiniteNumber, StrictBoolean, CalendarDate, isCalendarDate } from './codecs.js';
export { classifyRecord, type Classification } from './classify.js';
