import type { Argv } from 'yargs';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import type { SettingKey } from '../config/schema.js';

/** Options every command shares: which settings to use and how loudly to fail. */
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

export function configFrom(args: CommonArgs, overrides: Partial<Record<SettingKey, string | number>> = {}): LoadedConfig {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return loadConfig({ configPath: args.config, profile: args.profile, overrides: defined });
}
