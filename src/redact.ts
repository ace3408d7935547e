const SECRET_PARAM = /^(password|passwd|pwd|token|access_token|secret|api_key|apikey|key|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token)$/i;

/**
 * Hides credentials in one URL: everything between `//` and the last `@` (see `redactText`), and the values of
 * query parameters that usually carry secrets.
 *
 * @example redactUrl('postgres://app:s3cret@db:5432/x') === 'postgres://app:***@db:5432/x'
 * @example redactUrl('postgres://ingest:p@ss:w/rd@db/x') === 'postgres://ingest:***@db/x'
 */
export function redactUrl(raw: string): string {
  // One URL, however it is spelled: its user-info may run up to its last `@`, even past a space.
  const masked = maskUserinfo(raw, true);
  let url: URL;
  try {
    url = new URL(masked);
  } catch {
    return masked;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) url.searchParams.set(name, '***');
  }
  return url.toString();
}

/**
 * Masks every URL-with-credentials found inside free text (error messages from drivers quote them). Linear in
 * the length of the text, whatever it holds: it runs on every log line, and a key of the bucket index can be a
 * megabyte long (a backtracking regular expression took minutes on one).
 *
 * The user-info of a URL is taken to run from `//` to the last `@` before the next white space, not to the
 * first `/`, `?` or `#`: a password typed into a URL unencoded may hold all of those (and `@` and `:`), and
 * stopping early would print the rest of it. A path or query holding an `@` then loses its start to the mask;
 * showing too little is the safe side. `user:` is kept (a role name helps to read an error), a lone user-info
 * is masked too (a token), except for database URLs, where it is the role.
 *
 * @example redactText('cannot open postgres://ingest:p@ss:w/rd@db/x') === 'cannot open postgres://ingest:***@db/x'
 */
export function redactText(text: string): string {
  return maskUserinfo(text)
    .replace(/([?&](?:password|token|access_token|secret|sig|signature|x-amz-signature|x-amz-security-token)=)[^&\s]*/gi, '$1***')
    .replace(AWS_SECRET_TEXT, '$1$2***');
}

/**
 * An AWS secret named in free text: `AWS_SECRET_ACCESS_KEY=…`, `aws_session_token = …` (a credentials file quoted by an
 * error), `X-Amz-Security-Token: …` (a header). The name and what stands between it and the value are kept.
 */
const AWS_SECRET_TEXT = /\b(aws_secret_access_key|aws_session_token|aws_security_token|x-amz-security-token)(["']?[ \t]*[=:][ \t]*["']?)[^\s"',;&]+/gi;

/** Schemes whose lone user-info (`postgres://ingest@db/x`) is a role name, not a token. */
const ROLE_SCHEMES = new Set(['postgres', 'postgresql', 'mysql', 'mariadb', 'sqlite', 'sqlite3']);

const isSchemeChar = (c: number): boolean =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2e || c === 0x2d;
const isLetter = (c: number): boolean => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
/** White space (ASCII and Unicode), which no URL holds unencoded: where a URL in free text ends. */
const isSpace = (c: number): boolean =>
  c <= 0x20 || c === 0x7f || c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
  c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;

/**
 * `scheme://user:password@host` → `scheme://user:***@host`, for every URL in `text`, in one pass: each character
 * is looked at a bounded number of times (the scheme is read backwards only down to where the last URL ended).
 * `whole`: `text` is one URL, so white space does not end it.
 */
function maskUserinfo(text: string, whole = false): string {
  let out = '';
  let copied = 0;
  let from = 0;
  for (let sep = text.indexOf('://', from); sep !== -1; sep = text.indexOf('://', from)) {
    const start = sep + 3;
    let end = start;
    let colon = -1;
    let at = -1;
    for (let c = text.charCodeAt(end); end < text.length && (whole || !isSpace(c)); c = text.charCodeAt(++end)) {
      if (c === 0x3a && colon === -1) colon = end;
      else if (c === 0x40) at = end;
    }
    // The scheme: the run of scheme characters before `://`, from its first letter.
    let s = sep;
    let first = -1;
    while (s > from && isSchemeChar(text.charCodeAt(s - 1))) {
      s--;
      if (isLetter(text.charCodeAt(s))) first = s;
    }
    // `scheme:///path` has no authority, so no user-info, whatever `@` the path holds.
    if (first !== -1 && at !== -1 && text.charCodeAt(start) !== 0x2f) {
      if (colon !== -1 && colon < at) {
        out += `${text.slice(copied, colon + 1)}***`;
        copied = at;
      } else if (!ROLE_SCHEMES.has(text.slice(first, sep).toLowerCase())) {
        out += `${text.slice(copied, start)}***`;
        copied = at;
      }
    }
    from = Math.max(end, start);
  }
  return copied === 0 ? text : out + text.slice(copied);
}
