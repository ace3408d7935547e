import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { IngestError } from '../errors.js';
import { compileSchema, type SchemaRecordType } from './compile.js';
import { parseSchema } from './parse.js';
import { schemaError } from './spec.js';

/**
 * Record types declared as JSON Schema files (issue 14), not yet used by the pipeline, which still takes its types
 * from src/records/. `loadSchemaDirectory('schemas')` gives the three MacPaw types compiled from schemas/*.json.
 */

/** Parses, checks and compiles one schema document; `file` names it in errors. */
export function compileSchemaDocument(file: string, doc: unknown): SchemaRecordType {
  return compileSchema(parseSchema(file, doc));
}

/**
 * Every `*.json` file of `dir` (in name order) compiled to a record type. The first problem stops it with one
 * `BI_SCHEMA` error naming the file, the JSON pointer and what is wrong; so do two files of one type or table.
 */
export function loadSchemaDirectory(dir: string): SchemaRecordType[] {
  let names: string[];
  try {
    // A symbolic link to a file counts (a Kubernetes ConfigMap mounts every file as one).
    names = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.name.endsWith('.json') && (e.isFile() || (e.isSymbolicLink() && statSync(join(dir, e.name), { throwIfNoEntry: false })?.isFile() === true)))
      .map((e) => e.name)
      .sort();
  } catch (err) {
    throw new IngestError('BI_SCHEMA', `${dir}: cannot read the schema directory: ${(err as Error).message}`, { cause: err });
  }
  if (names.length === 0) throw new IngestError('BI_SCHEMA', `${dir}: no *.json schema files`);
  const types: SchemaRecordType[] = [];
  for (const name of names) {
    const file = join(dir, name);
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw schemaError(file, '', `not a JSON file: ${(err as Error).message}`);
    }
    const type = compileSchemaDocument(file, doc);
    const sameType = types.find((other) => other.type === type.type);
    if (sameType !== undefined) throw schemaError(file, '/title', `record type ${JSON.stringify(type.type)} is already declared by ${sameType.file}`);
    const sameTable = types.find((other) => other.table === type.table);
    if (sameTable !== undefined) throw schemaError(file, '/x-table', `table ${JSON.stringify(type.table)} is already the table of ${sameTable.file}`);
    types.push(type);
  }
  return types;
}

export type { SchemaColumnSpec, SchemaData, SchemaRecordType } from './compile.js';
export { compileSchema } from './compile.js';
export { parseSchema } from './parse.js';
