import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { events, runCli } from '../helpers/cli.js';
import { dialects, dump, type Dump, type TestDatabase } from '../helpers/databases.js';
import { schemaSuite } from '../helpers/schema-suite.js';

/**
 * A bucket of record types the daemon has no code for, loaded with nothing but a schema file (SCHEMAS): the table is
 * made from the schema (nullable columns for optional properties), rows, defaults and rejections follow it, in the
 * decoding threads as in the main thread, and every dialect ends with the same table.
 */
const EVENT_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'event',
  type: 'object',
  'x-table': 'events',
  properties: {
    event_id: { type: 'string', format: 'uuid', maxLength: 36 },
    seq: { type: 'integer', minimum: 1 },
    amount: { type: 'number', exclusiveMinimum: 0 },
    big: { type: 'integer' },
    flag: { type: ['boolean', 'null'] },
    note: { type: 'string' },
    tier: { type: 'string', enum: ['bronze', 'gold'], default: 'bronze' },
    at: { type: 'string', format: 'date-time', maxLength: 35 },
  },
  required: ['event_id', 'seq', 'amount', 'big', 'flag', 'at'],
  'x-derived': { received_at: { derive: 'load-time' } },
  'x-key': ['event_id'],
};

const ID = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const event = (n: number, extra: Record<string, unknown> = {}) => ({
  type: 'event',
  data: { event_id: ID(n), seq: n, amount: n + 0.25, big: 2 ** 53 - n, flag: n % 3 === 0 ? null : n % 2 === 0, at: `2024-03-0${(n % 9) + 1}T10:00:00+02:00`, ...extra },
});

const FILES: Record<string, string> = {
  'a.data': JSON.stringify([
    event(1, { note: 'first', tier: 'gold' }), event(2), event(3, { note: 'x'.repeat(2000) }),
    event(4, { amount: 0 }), event(5, { at: '2024-03-01T10:00:00' }), { type: 'song', data: { title: 't' } },
  ]),
  'b.data': JSON.stringify([event(2, { note: 'later file wins' }), event(6, { event_id: 'not-a-uuid' }), event(7, { big: 2 ** 53 }), event(8)]),
};

describe('record types declared by schema files only (integration)', function () {
  this.timeout(180_000);
  let reference: Dump | undefined;
  const { setUp } = schemaSuite(FILES, { 'event.json': EVENT_SCHEMA });

  for (const dialect of dialects()) {
    for (const threads of ['0', '2']) {
      it(`${dialect.name}, DECODE_THREADS=${threads}: makes the table from the schema and loads, defaults, rejects and skips by it`, async () => {
        const { dir, db, env } = await setUp((d) => dialect.create(d));
        const run = await runCli(['run', '--once'], { cwd: dir, env: { ...env, DECODE_THREADS: threads, COMMIT_MAX_FILES: '1', CONCURRENCY: '1' } });
        expect(run.code, run.stderr + run.stdout).to.equal(0);
        expect(events(run.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 2, recordsLoaded: 5, recordsRejected: 4, recordsSkipped: 1 });
        const tables = await dump(db.knex(), ['events', 'rejected_records']);
        // Only the declared tables: no MacPaw table in a database that does not load them.
        const k = db.knex();
        try {
          for (const table of ['songs', 'movies', 'apps']) expect(await k.schema.hasTable(table), table).to.equal(false);
        } finally {
          await k.destroy();
        }
        const rows = tables.events as Array<Record<string, unknown>>;
        expect(rows.map((r) => r.event_id)).to.deep.equal([ID(1), ID(2), ID(3), ID(8)].sort());
        const byId = new Map(rows.map((r) => [r.event_id, r]));
        expect(byId.get(ID(1))).to.deep.include({ seq: 1, amount: 1.25, big: 2 ** 53 - 1, flag: 0, note: 'first', tier: 'gold', at: '2024-03-02T10:00:00+02:00' });
        // Missing optional: NULL; missing with a default: the default; the later file's row for a key.
        expect(byId.get(ID(2))).to.deep.include({ note: 'later file wins', tier: 'bronze', flag: 1, source_key: 'b.data' });
        expect(byId.get(ID(3))).to.deep.include({ flag: null, note: 'x'.repeat(2000) });
        expect(byId.get(ID(8))).to.deep.include({ note: null, tier: 'bronze' });
        expect((tables.rejected_records as Array<Record<string, unknown>>).map((r) => r.reason).sort()).to.deep.equal([
          'amount: expected FiniteNumber > 0, got 0',
          'at: expected DateTime(RFC 3339 with offset), got "2024-03-01T10:00:00"',
          'big: expected SafeInteger, got 9007199254740992',
          'event_id: expected UUID, got "not-a-uuid"',
        ]);
        for (const r of rows) expect(r.received_at).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        const comparable = { ...tables, events: rows.map(({ received_at: _, ...r }) => r) };
        reference ??= comparable;
        expect(comparable).to.deep.equal(reference);
      });
    }
  }

  it('a schema file the compiler refuses stops start-up with one BI_SCHEMA line naming the file and the JSON pointer', async () => {
    const { dir, env } = await setUp((d) => (dialects()[0] as { create(d: string): Promise<TestDatabase> }).create(d));
    await writeFile(join(dir, 'types', 'event.json'), JSON.stringify({ ...EVENT_SCHEMA, properties: { ...EVENT_SCHEMA.properties, seq: { type: 'integer', multipleOf: 2 } } }));
    const r = await runCli(['run', '--once'], { cwd: dir, env });
    expect(r.code).to.equal(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).to.have.length(1);
    expect(lines[0]).to.match(/BI_SCHEMA/).and.include(`${join('types', 'event.json')} at #/properties/seq/multipleOf: unknown keyword "multipleOf"`);
  });
});
