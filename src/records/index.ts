export type { Cell, ColumnKind, ColumnSpec, RecordType, Row } from './types.js';
export { normalizeTitle } from './normalize.js';
export { formatErrors, describeValue, capReason } from './reasons.js';
export { isText, NOT_TEXT, isCalendarDate } from './codecs.js';
export { classifyRecord, type Classification, type RecordTypes } from './classify.js';
