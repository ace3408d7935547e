import * as t from 'io-ts';

const NullableString = t.union([t.string, t.null]);
const NullableNumber = t.union([t.number, t.null]);

/**
 * AFTER_LOAD's action on the loaded version of a file (absent with AFTER_LOAD=keep): recorded `pending` with the
 * file's done entry, in the same write (so a crash between the commit and the action leaves it to do), and `done`
 * once the source has deleted or moved the object. Failures stay `pending`, with the error and the next try.
 */
export const afterLoadCodec = t.type({
  /** `delete` or `move:PREFIX`: the action AFTER_LOAD named when it was recorded or last tried. */
  action: t.string,
  state: t.keyof({ pending: null, done: null }),
  /** Tries so far; drives the backoff before the next one. */
  attempts: t.number,
  error: NullableString,
  /** While pending after a failure: not tried again before this time. */
  nextAttemptAt: NullableString,
  /** When it was done. */
  doneAt: NullableString,
});

export type AfterLoadState = t.TypeOf<typeof afterLoadCodec>;

/** What the registry knows of one key. Timestamps are UTC ISO-8601. */
export const registryEntryCodec = t.intersection([
  t.type({
    status: t.keyof({ done: null, failed: null }),
    etag: NullableString,
    size: NullableNumber,
    /** Times the file was processed (fetched and, if it parsed, loaded), successes and failures alike. */
    attempts: t.number,
    /** Failures since the last success; drives the backoff before the next try. */
    failures: t.number,
    loaded: t.number,
    rejected: t.number,
    skipped: t.number,
    error: NullableString,
    firstSeenAt: t.string,
    updatedAt: t.string,
    doneAt: NullableString,
    /** Last time the bucket confirmed the loaded version (ETag/size) is current. */
    checkedAt: NullableString,
    /** For failed files: not retried before this time. */
    nextAttemptAt: NullableString,
  }),
  t.partial({
    /** Set by `reprocess`: the next cycle processes the file whatever its status. */
    reprocess: t.boolean,
    /** AFTER_LOAD's action on the loaded version (done files only). */
    afterLoad: afterLoadCodec,
  }),
]);

export type RegistryEntry = t.TypeOf<typeof registryEntryCodec>;

/** What a registry is bound to (see binding.ts); absent from registries written before they were bound. */
export const bindingCodec = t.type({ database: t.union([t.string, t.null]), bucket: t.string });

export const snapshotCodec = t.intersection([
  t.type({
    version: t.literal(1),
    entries: t.record(t.string, registryEntryCodec),
  }),
  t.partial({ binding: bindingCodec }),
]);
