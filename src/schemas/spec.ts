import { IngestError } from '../errors.js';
import type { ColumnKind } from '../records/types.js';

/**
 * A record-type schema file once checked (see parse.ts): only what the compiler supports, every value of the right
 * type, every name resolved. Each part keeps the JSON pointer it came from, for the errors of later checks.
 */
export interface SchemaSpec {
  /** The file as the operator named it (for errors). */
  readonly file: string;
  /** `title`: the record's `type` value. */
  readonly type: string;
  /** `x-table`. */
  readonly table: string;
  /** `properties`, in the file's order. */
  readonly properties: readonly PropertySpec[];
  /** `x-derived`, in the file's order. */
  readonly derived: readonly DerivedSpec[];
  /** `x-key`: property or derived column names. */
  readonly key: readonly string[];
  /** `x-extra`: what a property the schema does not declare does to a record (default `ignore`). */
  readonly extra: ExtraPolicy;
}

/** `ignore`: dropped; `rescue`: kept as one JSON object in the `_rescued` column; `reject`: the record is a rejection. */
export type ExtraPolicy = 'ignore' | 'rescue' | 'reject';
export const EXTRA_POLICIES: readonly ExtraPolicy[] = ['ignore', 'rescue', 'reject'];
/** The column of rescued properties (`x-extra: rescue`). */
export const RESCUED_COLUMN = '_rescued';

export type JsonType = 'string' | 'integer' | 'number' | 'boolean';
export type EnumValue = string | number | boolean | null;

export interface PropertySpec {
  readonly name: string;
  readonly pointer: string;
  readonly type: JsonType;
  /** `type` listed `"null"`: null is a value (stored as NULL). */
  readonly nullable: boolean;
  /** Listed in `required`: a missing property rejects the record. */
  readonly required: boolean;
  readonly enum: readonly EnumValue[] | undefined;
  readonly minimum: number | undefined;
  readonly maximum: number | undefined;
  readonly exclusiveMinimum: number | undefined;
  readonly exclusiveMaximum: number | undefined;
  readonly minLength: number | undefined;
  readonly maxLength: number | undefined;
  readonly pattern: string | undefined;
  readonly format: string | undefined;
  /** `default` given: the value a missing property takes (`hasDefault` because a default may be null). */
  readonly hasDefault: boolean;
  readonly default: unknown;
  /** `x-column`, or the kind of the JSON type; undefined for a string without `x-column`, inferred in compile.ts. */
  readonly column: ColumnKind | undefined;
  /** `x-pii: "hash"`: stored as the keyed HMAC-SHA256 of the value, never as itself. */
  readonly pii: boolean;
}

/** A derived column (`x-derived`): a value computed from the record by one of a few named derivations. */
export type DerivedSpec =
  | {
    readonly derive: 'normalize-title';
    readonly name: string;
    readonly pointer: string;
    readonly from: string;
    /** The normalized title must not be empty (it is part of a key): the source property is then a TitleWithLetterOrDigit. */
    readonly nonEmpty: boolean;
    readonly maxLength: number | undefined;
    /** undefined: inferred as for a string property. */
    readonly column: 'string' | 'text' | undefined;
  }
  | {
    readonly derive: 'less-than';
    readonly name: string;
    readonly pointer: string;
    readonly from: string;
    readonly value: number;
    readonly column: 'boolean';
  }
  | { readonly derive: 'load-time'; readonly name: string; readonly pointer: string; readonly column: 'string' };

/** A JSON pointer (RFC 6901) one step further down. */
export function pointerTo(pointer: string, key: string | number): string {
  return `${pointer}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

/**
 * The one error of a schema file: `BI_SCHEMA: schemas/song.json at #/properties/year/type: ...`. The pointer is in
 * URI-fragment form (`#` is the whole document). Never retriable: the file must change.
 */
export function schemaError(file: string, pointer: string, what: string): IngestError {
  return new IngestError('BI_SCHEMA', `${file} at #${pointer}: ${what}`);
}
