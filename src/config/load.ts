import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ini from 'ini';
import { ConfigError } from '../errors.js';
import { redactText } from '../redact.js';
import { catalogOf, type Catalog } from '../schemas/catalog.js';
import { checkRoutes } from '../formats/routes.js';
import { afterLoadText, defaultSettings, SECRET_SETTINGS, SETTING_KEYS, settingsCodec, type SettingKey, type Settings } from './schema.js';

export interface ConfigInput {
  /** `--config`; when absent, ./config.ini, else the config.ini shipped with the package. */
  configPath?: string | undefined;
  /** `--profile`; else `PROFILE` from the environment, else `default`. */
  profile?: string | undefined;
  /** Values from command-line flags, already named like the settings. */
  overrides?: Partial<Record<SettingKey, string | number>>;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface LoadedConfig {
  profile: string;
  configPath: string | null;
  settings: Settings;
  /** Where each value came from, for `status` and debugging. */
  sources: Record<SettingKey, 'flag' | 'env' | 'profile' | 'default'>;
  /** The record types of `SCHEMAS`, compiled. */
  catalog: Catalog;
}

/** Precedence of where a value came from. */
const RANK = { default: 0, profile: 1, env: 2, flag: 3 } as const;

const PACKAGE_CONFIG = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'config.ini');

/**
 * Resolves the settings of one profile. Precedence: flag > environment variable of the same name > profile
 * in config.ini > built-in default. Unknown keys and bad values stop here with one line naming the key.
 */
export function loadConfig(input: ConfigInput = {}): LoadedConfig {
  const env = input.env ?? process.env;
  const cwd = input.cwd ?? process.cwd();
  const profile = input.profile ?? env.PROFILE ?? 'default';
  const configPath = findConfig(input.configPath, cwd);
  const sections = configPath ? readIni(configPath) : new Map<string, Record<string, unknown>>();
  const section = sections.get(profile);
  if (configPath && section === undefined) {
    const names = [...sections.keys()];
    throw new ConfigError(`profile "${profile}" is not in ${configPath}${suggest(profile, names)} (profiles: ${names.join(', ') || 'none'})`);
  }
  if (!configPath && profile !== 'default') throw new ConfigError(`profile "${profile}" needs a config.ini, and none was found`);

  const fromProfile = section ?? {};
  for (const key of Object.keys(fromProfile)) {
    if (!(SETTING_KEYS as string[]).includes(key)) {
      throw new ConfigError(`unknown key ${key} in [${profile}] of ${configPath}${suggest(key, SETTING_KEYS)}`);
    }
  }
  const defaults = defaultSettings(profile);
  const raw: Record<string, unknown> = {};
  const sources = {} as LoadedConfig['sources'];
  for (const key of SETTING_KEYS) {
    const flag = input.overrides?.[key];
    if (flag !== undefined) [raw[key], sources[key]] = [flag, 'flag'];
    else if (env[key] !== undefined && env[key] !== '') [raw[key], sources[key]] = [env[key], 'env'];
    else if (fromProfile[key] !== undefined) [raw[key], sources[key]] = [fromProfile[key], 'profile'];
    else [raw[key], sources[key]] = [defaults[key], 'default'];
  }
  const decoded = settingsCodec.decode(raw);
  if (decoded._tag === 'Left') {
    const first = decoded.left[0];
    const key = first?.context[1]?.key ?? '?';
    const where = sources[key as SettingKey] === 'profile' ? ` in [${profile}] of ${configPath}` : sources[key as SettingKey] === 'env' ? ' in the environment' : sources[key as SettingKey] === 'flag' ? ' on the command line' : '';
    const shown = SECRET_SETTINGS.has(key as SettingKey) ? '(not shown: a secret)' : key.endsWith('_URL') ? redactText(String(first?.value)) : JSON.stringify(first?.value);
    throw new ConfigError(`${key}${where}: ${first?.message ?? 'invalid value'}, got ${shown}`);
  }
  const settings = decoded.right;
  // An S3 bucket is listed, not read from an index, unless FILES_LIST_KEY is set where BUCKET_URL is or above it: the
  // default names no index there, nor does the key a profile sets for its own bucket when BUCKET_URL comes from elsewhere.
  if (/^s3:\/\//i.test(settings.BUCKET_URL) && RANK[sources.FILES_LIST_KEY] < Math.max(1, RANK[sources.BUCKET_URL])) settings.FILES_LIST_KEY = '';
  const catalog = catalogOf(settings.SCHEMAS, cwd, { piiKey: settings.PII_HASH_KEY });
  checkRoutes(settings.ROUTES, (type) => catalog.typeFor(type) !== undefined);
  if (settings.AFTER_LOAD.kind !== 'keep' && /^https?:\/\//i.test(settings.BUCKET_URL)) {
    const where = sources.AFTER_LOAD === 'profile' ? ` in [${profile}] of ${configPath}` : sources.AFTER_LOAD === 'env' ? ' in the environment' : ' on the command line';
    throw new ConfigError(`AFTER_LOAD${where}: ${afterLoadText(settings.AFTER_LOAD)} needs a bucket the daemon can delete from (a local directory or S3); ` +
      `an HTTP bucket ${redactText(settings.BUCKET_URL)} is read-only: use AFTER_LOAD=keep`);
  }
  return { profile, configPath, settings, sources, catalog };
}

function findConfig(explicit: string | undefined, cwd: string): string | null {
  if (explicit !== undefined) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path)) throw new ConfigError(`config file ${path} does not exist`);
    return path;
  }
  const local = resolve(cwd, 'config.ini');
  if (existsSync(local)) return local;
  return existsSync(PACKAGE_CONFIG) ? PACKAGE_CONFIG : null;
}

/**
 * The profiles of a config file. A Map, not a plain object: a profile is looked up by a name from the command
 * line, and `constructor`, `__proto__` or `toString` must be unknown profiles, not Object.prototype's members.
 */
function readIni(path: string): Map<string, Record<string, unknown>> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  refuseKeylessLines(text, path);
  const parsed = ini.parse(text) as Record<string, unknown>;
  const sections = new Map<string, Record<string, unknown>>();
  for (const [name, value] of Object.entries(parsed)) {
    if (value === null || typeof value !== 'object') {
      throw new ConfigError(`key ${name} in ${path} is outside any [profile] section`);
    }
    sections.set(name, value as Record<string, unknown>);
  }
  return sections;
}

/**
 * `= 5` (nothing before the `=`): ini drops such a line without a word, or keeps it under an empty name; either
 * way a setting the user wrote would be ignored. Refused here with its line number, since ini gives none.
 */
function refuseKeylessLines(text: string, path: string): void {
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line.startsWith('=')) throw new ConfigError(`${path}:${i + 1}: "${line}" has no key before "="`);
  }
}

/** `, did you mean "X"?` for the closest candidate within edit distance 2 (or a case-only difference). */
export function suggest(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.toUpperCase() === word.toUpperCase() ? 0 : editDistance(word.toUpperCase(), c.toUpperCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best !== undefined && bestDistance <= 2 ? `; did you mean ${best}?` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}
