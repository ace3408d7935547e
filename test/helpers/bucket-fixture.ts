import { generateFiles, type GenerateOptions } from '../../bench/generate.js';

export interface Fixture {
  files: Record<string, string>;
  keys: string[];
  valid: number;
  invalid: number;
  skipped: number;
}

/** A generated bucket in the real format, in memory, for the HTTP test bucket. */
export function fixture(opts: GenerateOptions): Fixture {
  const out: Fixture = { files: {}, keys: [], valid: 0, invalid: 0, skipped: 0 };
  for (const f of generateFiles(opts)) {
    out.files[f.key] = f.body;
    out.keys.push(f.key);
    out.valid += f.valid;
    out.invalid += f.invalid;
    out.skipped += f.skipped;
  }
  return out;
}
