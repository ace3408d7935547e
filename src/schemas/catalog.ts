import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IngestError } from '../errors.js';
import { compileSchema, type CompileOptions, type SchemaRecordType } from './compile.js';
import { parseSchema } from './parse.js';
import { schemaError } from './spec.js';

/**
 * The record types a daemon loads: every `*.json` file of the `SCHEMAS` directory, compiled once at start-up. Decoding
 * threads are given the same documents (`sources`), read once by the main thread, and compile them again there: a
 * compiled type holds functions, which cannot cross to a thread, and reading the directory again could see files
 * changed since. They are given its `options` too (the PII hash key), so both compile the same types.
 */

/** The `schemas/` directory shipped with the package: the three MacPaw types (the default of `SCHEMAS`). */
export const BUNDLED_SCHEMAS = fileURLToPath(new URL('../../schemas', import.meta.url));

/** One schema file as read: its name (for errors) and its parsed JSON. */
export interface SchemaSource {
  readonly file: string;
  readonly doc: unknown;
}

export class Catalog {
  /** The types in the file names' order: the order tables are created and written in. */
  readonly types: readonly SchemaRecordType[];
  private readonly byType: ReadonlyMap<string, SchemaRecordType>;
  /** A private field, not a property: the key is a secret, and a catalog printed or serialized must not show it. */
  readonly #options: CompileOptions;

  /**
   * Compiles `sources`; the first problem stops it with one `BI_SCHEMA` error (`BI_CONFIG` for personal data without
   * `options.piiKey`).
   */
  constructor(readonly sources: readonly SchemaSource[], options: CompileOptions = {}) {
    this.#options = { ...options };
    const types: SchemaRecordType[] = [];
    for (const { file, doc } of sources) {
      const type = compileSchema(parseSchema(file, doc), options);
      const sameType = types.find((other) => other.type === type.type);
      if (sameType !== undefined) throw schemaError(file, '/title', `record type ${JSON.stringify(type.type)} is already declared by ${sameType.file}`);
      const sameTable = types.find((other) => other.table === type.table);
      if (sameTable !== undefined) throw schemaError(file, '/x-table', `table ${JSON.stringify(type.table)} is already the table of ${sameTable.file}`);
      types.push(type);
    }
    this.types = types;
    this.byType = new Map(types.map((t) => [t.type, t]));
  }

  /** What the types were compiled with, for a decoding thread to compile the same `sources` the same way. */
  get options(): CompileOptions {
    return this.#options;
  }

  /** The type of a record's `type` value, or undefined for a type not declared (e.g. `book`: skipped). */
  typeFor(type: string): SchemaRecordType | undefined {
    return this.byType.get(type);
  }

  /** The type writing `table`, if any. */
  typeOfTable(table: string): SchemaRecordType | undefined {
    return this.types.find((t) => t.table === table);
  }

  /** Every `*.json` file of `dir` (in name order), read and compiled. */
  static load(dir: string, options: CompileOptions = {}): Catalog {
    return new Catalog(readSchemaDirectory(dir), options);
  }
}

/**
 * The catalog of `dir` (resolved against `cwd`) compiled with `options`, read now: a daemon reads its schemas once, at
 * start-up, and a changed file takes a restart (or `schema check`, which reads them again).
 */
export function catalogOf(dir: string, cwd = process.cwd(), options: CompileOptions = {}): Catalog {
  const path = resolve(cwd, dir);
  return path === BUNDLED_SCHEMAS && options.piiKey === undefined ? bundledCatalog() : Catalog.load(path, options);
}

let bundled: Catalog | undefined;

/** The bundled MacPaw types, read once per process (the package's own files do not change under it). */
export function bundledCatalog(): Catalog {
  bundled ??= Catalog.load(BUNDLED_SCHEMAS);
  return bundled;
}

/** The `*.json` files of `dir` in name order, parsed; one `BI_SCHEMA` line for a directory or file that cannot be read. */
export function readSchemaDirectory(dir: string): SchemaSource[] {
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
  return names.map((name) => {
    const file = join(dir, name);
    try {
      return { file, doc: JSON.parse(readFileSync(file, 'utf8')) as unknown };
    } catch (err) {
      throw schemaError(file, '', `not a JSON file: ${(err as Error).message}`);
    }
  });
}
