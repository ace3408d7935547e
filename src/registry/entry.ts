import * as t from 'io-ts';

const NullableString = t.union([t.string, t.null]);
const NullableNumber = t.union([t.number, t.null]);

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
