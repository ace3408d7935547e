// `yargs/yargs`, not `yargs`: yargs' ESM entry wraps help text with cliui's ESM stand-in for wrap-ansi, which cuts
// lines at the width whatever it hits ("el se", "re cord", "HTTP_P ORT"); this entry is the same yargs with the
// CommonJS platform shim, whose cliui wraps between words (wrap-ansi, string-width).
import yargs from 'yargs/yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, describeError, IngestError } from './errors.js';
import { redactText } from './redact.js';
import { eraseCommand, explainCommand, inspectCommand, reprocessCommand, runCommand, schemaCommand, statusCommand } from './commands/index.js';

/** Exit codes: 0 success, 1 some files failed (run --once), 2 usage, configuration or start-up error. */
export const EXIT = { ok: 0, filesFailed: 1, usage: 2 } as const;

/**
 * Parses the command line and runs the command. Every error ends as one line `code: message` on stderr
 * (secrets masked) and exit code 2; `--verbose` adds the stack.
 */
export async function main(argv: string[] = hideBin(process.argv)): Promise<void> {
  const verbose = argv.includes('--verbose');
  try {
    await yargs(argv)
      .scriptName('bucket-ingest')
      .command(runCommand)
      .command(statusCommand)
      .command(inspectCommand)
      .command(reprocessCommand)
      .command(explainCommand)
      .command(schemaCommand)
      .command(eraseCommand)
      .strict()
      // The terminal's width (yargs caps it at 80), or 80 when the help goes to a pipe or a file.
      .wrap(process.stdout.isTTY && process.stdout.columns > 0 ? process.stdout.columns : 80)
      .help()
      .version()
      .fail((msg, err) => {
        // yargs' own complaints (a missing value, an unknown option) arrive as a YError, or as a message alone.
        if (err === undefined || err === null || err.name === 'YError') throw new IngestError('BI_USAGE', msg ?? err?.message ?? 'bad command line');
        throw err;
      })
      .parseAsync();
  } catch (err) {
    const line = err instanceof ConfigError || err instanceof IngestError ? describeError(err) : `error: ${describeError(err)}`;
    process.stderr.write(`bucket-ingest: ${redactText(line)}\n`);
    if (verbose && err instanceof Error && err.stack) process.stderr.write(`${redactText(err.stack)}\n`);
    process.exitCode = EXIT.usage;
  }
}
