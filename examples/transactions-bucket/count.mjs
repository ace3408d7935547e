// Counts what a load of this bucket gives, the way the daemon decides (src/records/classify.ts and src/validate.ts),
// with the record types compiled from schemas/transactions/ by src/schemas/, and checks every record against the
// outcome generate.mjs declares for it. Run from the repository root:
//   node --import tsx examples/transactions-bucket/count.mjs
// Exits 1 if a data file differs from what generate.mjs writes or a record's outcome differs from its `expect`.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileSchemaDocument } from '../../src/schemas/index.ts';
import { formatErrors, describeValue } from '../../src/records/reasons.ts';
import { maxLength } from '../../src/load/schema.ts';
import { FILES } from './generate.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const schemaDir = join(here, '..', '..', 'schemas', 'transactions');

/** The parser does not know `x-pii` yet: until it does, the keyword is dropped here (it changes no decision). */
function withoutPii(doc) {
  const stripped = structuredClone(doc);
  let dropped = 0;
  for (const p of Object.values(stripped.properties ?? {})) if (Object.hasOwn(p, 'x-pii')) { delete p['x-pii']; dropped++; }
  return { stripped, dropped };
}

const types = new Map();
for (const name of readdirSync(schemaDir).filter((n) => n.endsWith('.json')).sort()) {
  const file = join(schemaDir, name);
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  let type;
  try {
    type = compileSchemaDocument(file, doc);
  } catch (err) {
    if (!/unknown keyword "x-pii"/.test(err.message)) throw err;
    const { stripped, dropped } = withoutPii(doc);
    type = compileSchemaDocument(file, stripped);
    console.log(`(${name}: ${dropped} "x-pii" keyword(s) dropped, the parser does not know it yet)`);
  }
  types.set(type.type, type);
}

const isPlainObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

/** classifyRecord of src/records/classify.ts, then the column-limit check of src/validate.ts. */
function classify(raw, now) {
  if (!isPlainObject(raw)) return { kind: 'reject', reason: `record is not an object, got ${describeValue(raw)}` };
  if (typeof raw.type !== 'string') return { kind: 'reject', reason: `type: expected string, got ${describeValue(raw.type)}` };
  if (!isPlainObject(raw.data)) return { kind: 'reject', reason: `data: expected object, got ${describeValue(raw.data)}` };
  const rt = types.get(raw.type);
  if (rt === undefined) return { kind: 'skip' };
  const decoded = rt.codec.decode(raw.data);
  if (decoded._tag === 'Left') return { kind: 'reject', reason: formatErrors(decoded.left) };
  const row = rt.toRow(decoded.right, now);
  for (const c of rt.columns) {
    const limit = maxLength(rt, c);
    const v = row[c.name];
    if (limit !== null && typeof v === 'string' && v.length > limit) return { kind: 'reject', reason: `${c.name}: longer than ${limit} characters (${v.length}), the column's limit` };
  }
  return { kind: 'row', type: rt, row };
}

const index = readFileSync(join(here, 'files_list.data'), 'utf8').split(/\r?\n/).map((s) => s.trim()).filter((s) => s !== '');
const declared = new Map(FILES.map((f) => [f.key, f]));
const now = '2024-01-01T00:00:00.000Z';
const rowsByTable = new Map([...types.values()].map((t) => [t.table, new Map()]));
const validByType = new Map([...types.keys()].map((t) => [t, 0]));
const rejected = [];
let problems = 0;
let skipped = 0;
let records = 0;
const perFile = [];

for (const [position, key] of [...new Set(index)].entries()) {
  const text = readFileSync(join(here, key), 'utf8');
  const spec = declared.get(key);
  const expectedText = spec && `[\n${spec.records.map((r) => JSON.stringify(r.record)).join(',\n')}\n]\n`;
  if (text !== expectedText) { console.log(`PROBLEM ${key}: not what generate.mjs writes`); problems++; }
  const array = JSON.parse(text);
  const counts = { key, records: array.length, valid: 0, rejected: 0, skipped: 0, validByType: {}, rejectedByType: {} };
  array.forEach((raw, i) => {
    const r = classify(raw, now);
    const outcome = r.kind === 'row' ? 'valid' : r.kind === 'skip' ? 'skip' : r.reason;
    const expect = spec?.records[i]?.expect;
    if (outcome !== expect) { console.log(`PROBLEM ${key}[${i}]: got ${JSON.stringify(outcome)}, expected ${JSON.stringify(expect)}`); problems++; }
    if (r.kind === 'row') {
      counts.valid++;
      counts.validByType[r.type.type] = (counts.validByType[r.type.type] ?? 0) + 1;
      validByType.set(r.type.type, validByType.get(r.type.type) + 1);
      const k = JSON.stringify(r.type.key.map((c) => r.row[c]));
      const table = rowsByTable.get(r.type.table);
      if (table.has(k)) console.log(`key ${k} of ${r.type.table} again in ${key}[${i}] (first in ${table.get(k).key}): the later file wins`);
      table.set(k, { key, position, row: r.row }); // files in index order: a later one replaces
    } else if (r.kind === 'skip') {
      counts.skipped++;
      skipped++;
    } else {
      counts.rejected++;
      counts.rejectedByType[raw?.type] = (counts.rejectedByType[raw?.type] ?? 0) + 1;
      rejected.push({ key, i, type: raw?.type ?? null, reason: r.reason });
    }
  });
  records += array.length;
  perFile.push(counts);
}

console.log('\nper file:');
const byType = (o) => Object.entries(o).map(([t, n]) => `${n} ${t}`).join(', ');
for (const f of perFile) console.log(`  ${f.key}: ${f.records} records, ${f.valid} valid (${byType(f.validByType)}), ${f.rejected} rejected (${byType(f.rejectedByType)}), ${f.skipped} skipped`);
console.log(`  total: ${records} records`);
console.log('valid per type:', Object.fromEntries(validByType), `(${[...validByType.values()].reduce((a, b) => a + b, 0)})`);
console.log('rows per table after a load:', Object.fromEntries([...rowsByTable].map(([t, m]) => [t, m.size])));
console.log(`rejected: ${rejected.length}`);
for (const r of rejected) console.log(`  ${r.key.slice(0, 8)}[${r.i}] ${r.type}: ${r.reason}`);
console.log(`skipped: ${skipped}`);
if (problems > 0) {
  console.log(`\n${problems} problem(s)`);
  process.exit(1);
}
