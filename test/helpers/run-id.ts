import { randomBytes } from 'node:crypto';

/**
 * One id per mocha run, in the name of every schema, database and temp dir the tests make
 * (`bi_<RUN_ID>_…`, `…-<RUN_ID>-…`): the check at the end of the run (root-hooks.ts) can then tell what this run
 * left behind from what other runs on the same servers own.
 */
export const RUN_ID = randomBytes(3).toString('hex');

/** Prefix of this run's PostgreSQL schemas and MySQL databases. */
export const DB_PREFIX = `bi_${RUN_ID}_`;

/** A fresh name for a schema or database of this run. */
export function dbName(): string {
  return `${DB_PREFIX}${randomBytes(4).toString('hex')}`;
}
