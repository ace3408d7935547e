import { normalizeTitle } from '../records/normalize.js';
import type { Row } from '../records/types.js';
import { RESCUED_COLUMN, type DerivedSpec, type PropertySpec } from './spec.js';

/** The `toRow` of a compiled record type. */
export type RowBuilder = (d: Readonly<Record<string, unknown>>, now: string) => Row;

/** Names the generated code may hold (parse.ts admits no other column names). */
const SAFE_NAME_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Builds `toRow` for columns in `order`, as generated code: one object literal reading each property by name, like
 * the coded types' `toRow`. It runs once per valid record, and the obvious closure (a loop of getters storing
 * `row[name]`) goes through V8's megamorphic keyed loads and stores, ~13x slower than a literal (~100 ns against
 * ~8 ns a song). The code holds nothing from the schema but column names, each checked to be a plain identifier
 * here again, and the finite number of a `less-than`; no text of the file is ever evaluated. `rescue` (`x-extra:
 * rescue`) gives the `_rescued` column, last.
 */
export function rowBuilder(order: ReadonlyArray<PropertySpec | DerivedSpec>, rescue?: (d: Readonly<Record<string, unknown>>) => string | null): RowBuilder {
  const parts = order.map((c) => {
    if (!SAFE_NAME_RE.test(c.name)) throw new Error(`unsafe column name ${JSON.stringify(c.name)}`); // parse.ts refuses such names
    const value = (() => {
      if (!('derive' in c)) return `d.${c.name} === undefined ? null : d.${c.name}`;
      if (c.derive === 'load-time') return 'now';
      if (!SAFE_NAME_RE.test(c.from)) throw new Error(`unsafe column name ${JSON.stringify(c.from)}`);
      if (c.derive === 'normalize-title') return `typeof d.${c.from} === 'string' ? normalizeTitle(d.${c.from}) : null`;
      if (!Number.isFinite(c.value)) throw new Error(`not a finite number: ${c.value}`);
      return `typeof d.${c.from} === 'number' ? d.${c.from} < ${JSON.stringify(c.value)} : null`;
    })();
    return `${c.name}: ${value}`;
  });
  if (rescue !== undefined) parts.push(`${RESCUED_COLUMN}: rescue(d)`);
  const make = new Function('normalizeTitle', 'rescue', `return function toRow(d, now) { return { ${parts.join(', ')} }; };`) as
    (n: typeof normalizeTitle, r: typeof rescue) => RowBuilder;
  return make(normalizeTitle, rescue);
}
