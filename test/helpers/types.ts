import { bundledCatalog } from '../../src/schemas/catalog.js';
import type { SchemaRecordType } from '../../src/schemas/compile.js';

/** The bundled MacPaw types (schemas/*.json), as the daemon loads them by default. */
export const catalog = bundledCatalog();

function typeOf(name: string): SchemaRecordType {
  const type = catalog.typeFor(name);
  if (type === undefined) throw new Error(`schemas/ declares no ${name}`);
  return type;
}

export const song = typeOf('song');
export const movie = typeOf('movie');
export const app = typeOf('app');
