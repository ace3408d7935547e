import type { CommandModule } from 'yargs';
import { IngestError } from '../errors.js';
import { DEFAULT_SAMPLES, withCommonOptions } from './options.js';
import type { EraseArgs } from './erase.js';
import type { ExplainArgs } from './explain.js';
import type { InspectArgs } from './inspect.js';
import type { ReprocessArgs } from './reprocess.js';
import type { RunArgs } from './run.js';
import type { SchemaArgs } from './schema.js';
import type { StatusArgs } from './status.js';

/**
 * Options that take a number. Not `type: 'number'`: yargs turns `abc` into NaN, and the error could then only say
 * `got null`. Left untyped, yargs still reads `4` as 4 and keeps `abc` as the text it was, for the settings' codecs
 * (or a command's check) to refuse with what was typed.
 */
const NUMERIC = { requiresArg: true } as const;

/**
 * The commands as yargs sees them: names, options and help text here, the code behind each in its own module,
 * imported only when that command runs. `--help`, and each command, load just what they use.
 */
export const eraseCommand: CommandModule<object, EraseArgs> = {
  command: 'erase <values..>',
  describe: "delete a type's rows and stored rejections whose field holds one of the values (hashed first for x-pii fields), and keep later files from loading them again",
  builder: (y) =>
    withCommonOptions(y)
      .positional('values', { type: 'string', array: true, demandOption: true, describe: 'the values to erase, as sent in the records' })
      .option('type', { type: 'string', requiresArg: true, demandOption: true, describe: 'the record type (a schema title)' })
      .option('field', { type: 'string', requiresArg: true, demandOption: true, describe: "a column of the type's table" }) as never,
  handler: async (args) => (await import('./erase.js')).eraseMain(args),
};

export const explainCommand: CommandModule<object, ExplainArgs> = {
  command: 'explain <key>',
  describe: 'what the registry knows of one key and what the next cycle will do with it, and why (reads only)',
  builder: (y) =>
    withCommonOptions(y)
      .positional('key', { type: 'string', demandOption: true, describe: 'a key of the bucket index' })
      .option('json', { type: 'boolean', describe: 'print JSON' }) as never,
  handler: async (args) => (await import('./explain.js')).explainMain(args),
};

export const inspectCommand: CommandModule<object, InspectArgs> = {
  command: 'inspect',
  describe: "the profile's database: row counts, sample rows per table, rejected records grouped by reason (reads only)",
  builder: (y) =>
    withCommonOptions(y)
      .option('samples', { ...NUMERIC, describe: `sample rows per table (default ${DEFAULT_SAMPLES})` })
      .option('json', { type: 'boolean', describe: 'print JSON' })
      .check((argv) => {
        const n: unknown = argv.samples;
        if (n !== undefined && !(typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 10_000)) {
          throw new IngestError('BI_USAGE', `--samples: expected an integer from 0 to 10000, got ${JSON.stringify(n)}`);
        }
        return true;
      }) as never,
  handler: async (args) => (await import('./inspect.js')).inspectMain(args),
};

export const reprocessCommand: CommandModule<object, ReprocessArgs> = {
  command: 'reprocess [keys..]',
  describe: 'mark files so the next cycle processes them again (keys, globs (quote them) or --failed), or replay stored rejections (--rejected)',
  builder: (y) =>
    withCommonOptions(y)
      .positional('keys', { type: 'string', array: true, describe: 'keys or globs (picomatch; * stops at /, ** does not) of keys the registry knows' })
      .option('failed', { type: 'boolean', describe: 'every file recorded failed (their backoff is skipped)' })
      .option('now', { type: 'boolean', describe: 'then run one cycle here (like run --once), unless a daemon holds the registry' })
      .option('rejected', { type: 'boolean', describe: 'instead: validate the stored rejected records again against the current schemas and load those that now pass (fetches nothing)' })
      .option('type', { type: 'string', requiresArg: true, describe: 'with --rejected: only rejections of this record type' })
      .option('reason', { type: 'string', requiresArg: true, describe: 'with --rejected: only rejections whose reason matches this glob (quote it), e.g. "year: expected*"' })
      .option('dry-run', { type: 'boolean', describe: 'with --rejected: write nothing, print what would happen' })
      .check((argv) => {
        // Two modes: marking files for the next cycle, and replaying what is stored. Mixed, one would be ignored.
        const keys = (argv.keys as string[] | undefined) ?? [];
        if (argv.rejected === true) {
          const marking = [...(keys.length > 0 ? ['keys'] : []), ...(['failed', 'now'] as const).filter((o) => argv[o] !== undefined).map((o) => `--${o}`)];
          if (marking.length > 0) {
            throw new IngestError('BI_USAGE', `--rejected replays stored rejections and marks no files: it cannot be combined with ${marking.join(' or ')}; run them separately`);
          }
        } else {
          const replay = (['type', 'reason', 'dry-run'] as const).filter((o) => argv[o] !== undefined);
          if (replay.length > 0) throw new IngestError('BI_USAGE', `${replay.map((o) => `--${o}`).join(' and ')} select${replay.length === 1 ? 's' : ''} rejections to replay: use with --rejected`);
        }
        return true;
      }) as never,
  handler: async (args) => (await import('./reprocess.js')).reprocessMain(args),
};

export const runCommand: CommandModule<object, RunArgs> = {
  command: ['run', '$0'],
  describe: 'ingest the bucket: one cycle with --once, else every POLL_INTERVAL_SECONDS until SIGTERM',
  builder: (y) =>
    withCommonOptions(y)
      .option('once', { type: 'boolean', describe: 'run one cycle and exit (exit 1 if files failed)' })
      .option('force', { type: 'boolean', describe: 'process every listed file again, whatever the registry says' })
      .option('dry-run', { type: 'boolean', describe: 'list, plan, fetch and validate, write nothing; print what each file would give' })
      .option('json', { type: 'boolean', describe: 'with --dry-run: print the report as JSON' })
      .option('concurrency', { ...NUMERIC, describe: 'files fetched at once (CONCURRENCY)' })
      .option('http-port', { ...NUMERIC, describe: 'serve /healthz, /readyz, /metrics and /api on this port (HTTP_PORT; 0 = any free port)' })
      .option('log-format', { choices: ['auto', 'json', 'pretty'] as const, describe: 'log format (LOG_FORMAT; auto = pretty on a terminal, else JSON lines)' })
      .option('since', { type: 'string', describe: 'only objects last modified at or after this date (ISO-8601; a listed bucket: s3://)' })
      .option('until', { type: 'string', describe: 'only objects last modified before this date (ISO-8601; a listed bucket: s3://)' })
      .check((argv) => {
        // An option that would be ignored is refused: `run --json` used to start a daemon without a word.
        if (argv.json === true && argv['dry-run'] !== true) {
          throw new IngestError('BI_USAGE', '--json is for --dry-run (run --dry-run --json); without --dry-run, run ingests and logs, and --json means nothing');
        }
        if (argv['dry-run'] === true) {
          const ignored = (['http-port', 'log-format'] as const).filter((o) => argv[o] !== undefined);
          if (ignored.length > 0) {
            throw new IngestError('BI_USAGE', `${ignored.map((o) => `--${o}`).join(' and ')} mean${ignored.length === 1 ? 's' : ''} nothing with --dry-run, which serves no HTTP and writes a report, not log lines`);
          }
        }
        return true;
      }) as never,
  handler: async (args) => (await import('./run.js')).runMain(args),
};

export const schemaCommand: CommandModule<object, SchemaArgs> = {
  command: 'schema <action>',
  describe: "the record tables against the schema files: check (reads only) prints each table's columns and the statements apply would run; apply runs them",
  builder: (y) =>
    withCommonOptions(y)
      .positional('action', { choices: ['check', 'apply'] as const, demandOption: true, describe: 'check: compare and print the plan; apply: run it' })
      .option('json', { type: 'boolean', describe: 'print JSON' }) as never,
  handler: async (args) => (await import('./schema.js')).schemaMain(args),
};

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'what the registry knows: files by status, record totals, the last cycle, failed files and pending reprocessing',
  builder: (y) => withCommonOptions(y).option('json', { type: 'boolean', describe: 'print JSON' }) as never,
  handler: async (args) => (await import('./status.js')).statusMain(args),
};
