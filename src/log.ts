import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { redactText } from './redact.js';

export type LogFormat = 'auto' | 'json' | 'pretty';

/** Masks credentials in every string field of a log line, whatever event wrote it. */
function redactFields(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v !== 'string') continue;
    const masked = redactText(v);
    if (masked !== v) (out ??= { ...obj })[k] = masked;
  }
  return out ?? obj;
}

/**
 * JSON lines when stdout is not a terminal (or with `json`), readable lines on a terminal. Passwords and
 * tokens in URLs are masked in the message and in every field.
 */
export function createLogger(opts: { level: string; format?: LogFormat | undefined; destination?: NodeJS.WritableStream }): Logger {
  const dest = opts.destination ?? process.stdout;
  const format = !opts.format || opts.format === 'auto' ? ((dest as { isTTY?: boolean }).isTTY ? 'pretty' : 'json') : opts.format;
  const options: pino.LoggerOptions = {
    level: opts.level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { log: redactFields },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? redactText(a) : a)) as Parameters<typeof method>);
      },
    },
  };
  if (format === 'pretty') {
    return pino(options, pretty({ destination: dest as never, sync: true, translateTime: 'SYS:HH:MM:ss', hideObject: true }));
  }
  return pino(options, dest as pino.DestinationStream);
}
