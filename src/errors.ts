/**
 * Every error the daemon raises on purpose. Callers match on `code`, never on message text; `retriable`
 * says whether trying the same thing again later can help, and `isRetriable` is the one place that decides
 * retries for errors that did not come from here (sockets, drivers).
 */
export type ErrorCode =
  | 'BI_CONFIG'
  | 'BI_USAGE'
  | 'BI_SOURCE_UNAVAILABLE'
  | 'BI_HTTP_STATUS'
  | 'BI_HTTP_TIMEOUT'
  | 'BI_NETWORK'
  | 'BI_BODY_TOO_LARGE'
  | 'BI_BODY_TRUNCATED'
  | 'BI_NOT_FOUND'
  | 'BI_BAD_KEY'
  | 'BI_DECODE'
  /** A file whose format is recognised (by extension or first bytes) but cannot be read as it is (a ZIP not named as one, a ZIP inside a ZIP). */
  | 'BI_FORMAT'
  /** A ZIP archive that cannot be read (corrupt, cut short), or a member of one refused (a path that escapes, encrypted, a link). */
  | 'BI_ARCHIVE'
  /** A file whose records carry no type (CSV) that no ROUTES glob matches. */
  | 'BI_ROUTE'
  | 'BI_DATABASE'
  /** A bucket notification that is not an S3 event, or the broker it comes from refusing us. */
  | 'BI_NOTIFY'
  /** AFTER_LOAD could not delete or move a loaded file; its rows stay, and the action is tried again on a later cycle. */
  | 'BI_AFTER_LOAD'
  /** The HTTP endpoints cannot listen where HTTP_HOST/HTTP_PORT say (port in use, no permission, no such address). */
  | 'BI_HTTP_LISTEN'
  /** A record-type schema file (SCHEMAS directory) uses something the compiler does not support, or is not valid. */
  | 'BI_SCHEMA'
  | 'BI_REGISTRY_CORRUPT'
  | 'BI_REGISTRY_IO'
  | 'BI_SHUTDOWN';

export class IngestError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  /** Server-dictated delay before the next attempt (from `Retry-After`), in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, opts: { retriable?: boolean; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'IngestError';
    this.code = code;
    this.retriable = opts.retriable ?? false;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** Configuration or command-line mistakes: exit code 2, never retried. */
export class ConfigError extends IngestError {
  constructor(message: string) {
    super('BI_CONFIG', message);
    this.name = 'ConfigError';
  }
}

/**
 * The SQLite file at DATABASE_URL is not the one the daemon opened any more (deleted, or another file put in its
 * place): nothing more is committed through the old connection, whose writes a restart would not find.
 */
export class DatabaseReplacedError extends IngestError {
  constructor(display: string, how: 'deleted' | 'replaced') {
    super('BI_DATABASE', `${display}: the database file was ${how} while the daemon ran; the commit was rolled back and its files stay to do; ` +
      'restart the daemon to use the file now at that path');
    this.name = 'DatabaseReplacedError';
  }
}

// Socket-level failures that a second attempt can fix. Codes from Node (errno) and undici (UND_ERR_*).
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_ABORTED',
]);

/** The single place that decides whether an error is worth another attempt. */
export function isRetriable(err: unknown): boolean {
  if (err instanceof IngestError) return err.retriable;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code);
}

/** One line for people: `code: message`, following `cause` when it adds information. */
export function describeError(err: unknown): string {
  if (err instanceof IngestError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
