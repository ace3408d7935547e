import type { Argv } from 'yargs';

/**
 * Options every command shares: which settings to use and how loudly to fail. Kept apart from the commands' code
 * so the command line is parsed (and `--help` printed) without loading what the other commands need.
 */
export interface CommonArgs {
  profile?: string | undefined;
  config?: string | undefined;
  verbose?: boolean | undefined;
}

export function withCommonOptions<T>(y: Argv<T>): Argv<T & CommonArgs> {
  return y
    .option('profile', { type: 'string', describe: 'config.ini profile (default: $PROFILE or "default")' })
    .option('config', { type: 'string', describe: 'path to config.ini (default: ./config.ini, else the packaged one)' })
    .option('verbose', { type: 'boolean', describe: 'debug logs, and stack traces on errors' }) as Argv<T & CommonArgs>;
}

/** Sample rows per table `inspect` shows unless `--samples` says otherwise. */
export const DEFAULT_SAMPLES = 3;
