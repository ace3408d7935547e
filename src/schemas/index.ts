import { Catalog, readSchemaDirectory } from './catalog.js';
import { compileSchema, type CompileOptions, type SchemaRecordType } from './compile.js';
import { parseSchema } from './parse.js';

/** Record types declared as JSON Schema files: parse.ts checks a file, compile.ts compiles it, catalog.ts holds a directory's. */

/** Parses, checks and compiles one schema document; `file` names it in errors. */
export function compileSchemaDocument(file: string, doc: unknown, options: CompileOptions = {}): SchemaRecordType {
  return compileSchema(parseSchema(file, doc), options);
}

/**
 * Every `*.json` file of `dir` (in name order) compiled to a record type. The first problem stops it with one
 * `BI_SCHEMA` error naming the file, the JSON pointer and what is wrong; so do two files of one type or table.
 */
export function loadSchemaDirectory(dir: string): SchemaRecordType[] {
  return [...new Catalog(readSchemaDirectory(dir)).types];
}

export type { CompileOptions, SchemaColumnSpec, SchemaData, SchemaRecordType } from './compile.js';
export { compileSchema } from './compile.js';
export { parseSchema } from './parse.js';
export { BUNDLED_SCHEMAS, bundledCatalog, Catalog, catalogOf, readSchemaDirectory, type SchemaSource } from './catalog.js';
