import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { redactText } from './redact.js';

export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * The most characters of one string (a key, an error, the message) a log line carries. A bucket index can hold
 * a line of megabytes, and every event about that key would repeat it whole.
 */
export const LOG_VALUE_MAX_CHARS = 1000;

/**
 * `text` masked, then, if longer than LOG_VALUE_MAX_CHARS, its head and tail with the number of characters left
 * out between them (the tail of a message usually says what went wrong). Masked before it is cut, so no cut can
 * separate a password from the `@` that marks it.
 */
export function logValue(text: string): string {
  const masked = redactText(text);
  if (masked.length <= LOG_VALUE_MAX_CHARS) return masked;
  // Never split a surrogate pair: a lone half would print as an escape, or as U+FFFD.
  let head = Math.floor(LOG_VALUE_MAX_CHARS * 0.7);
  let tail = masked.length - (LOG_VALUE_MAX_CHARS - head);
  if (isHighSurrogate(masked.charCodeAt(head - 1))) head--;
  if (isHighSurrogate(masked.charCodeAt(tail - 1))) tail++;
  return `${masked.slice(0, head)}…(${tail - head} characters left out)…${masked.slice(tail)}`;
}

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;

/** Masks credentials in every string field of a log line (and in lists of strings), whatever event wrote it, and caps their length. */
function redactFields(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(obj)) {
    let shown: unknown = v;
    if (typeof v === 'string') shown = logValue(v);
    else if (Array.isArray(v) && v.some((x) => typeof x === 'string')) shown = v.map((x: unknown) => (typeof x === 'string' ? logValue(x) : x));
    if (shown !== v) (out ??= { ...obj })[k] = shown;
  }
  return out ?? obj;
}

/**
 * JSON lines when stdout is not a terminal (or with `json`), readable lines on a terminal. Passwords and
 * tokens in URLs are masked in the message and in every field, and each is cut to LOG_VALUE_MAX_CHARS.
 */
export function createLogger(opts: {
  level: string;
  format?: LogFormat | undefined;
  destination?: NodeJS.WritableStream;
  /** Called before each line that is written (not for levels filtered out): a progress bar clears itself. */
  beforeWrite?: (() => void) | undefined;
}): Logger {
  const dest = opts.destination ?? process.stdout;
  const format = !opts.format || opts.format === 'auto' ? ((dest as { isTTY?: boolean }).isTTY ? 'pretty' : 'json') : opts.format;
  const options: pino.LoggerOptions = {
    level: opts.level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { log: redactFields },
    hooks: {
      logMethod(args, method) {
        opts.beforeWrite?.();
        method.apply(this, args.map((a) => (typeof a === 'string' ? logValue(a) : a)) as Parameters<typeof method>);
      },
    },
  };
  if (format === 'pretty') {
    return pino(options, pretty({ destination: dest as never, sync: true, translateTime: 'SYS:HH:MM:ss', hideObject: true }));
  }
  return pino(options, dest as pino.DestinationStream);
}
