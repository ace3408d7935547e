const SECRET_PARAM = /^(password|passwd|pwd|token|access_token|secret|api_key|apikey|key|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token)$/i;

/**
 * Hides credentials in a URL: the password (and a lone user-info token) and the values of query parameters
 * that usually carry secrets. Anything that does not parse as a URL is returned with `user:pass@` masked.
 *
 * @example redactUrl('postgres://app:s3cret@db:5432/x') === 'postgres://app:***@db:5432/x'
 */
export function redactUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return maskUserinfo(raw);
  }
  if (url.password) url.password = '***';
  else if (url.username && url.protocol.startsWith('http')) url.username = '***';
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) url.searchParams.set(name, '***');
  }
  return url.toString();
}

/**
 * Masks every URL-with-credentials found inside free text (error messages from drivers quote them). Linear in
 * the length of the text, whatever it holds: it runs on every log line, and a key of the bucket index can be a
 * megabyte long (a backtracking regular expression took minutes on one).
 */
export function redactText(text: string): string {
  return maskUserinfo(text)
    .replace(/([?&](?:password|token|access_token|secret|sig|signature|x-amz-signature|x-amz-security-token)=)[^&\s]*/gi, '$1***');
}

const isSchemeChar = (c: number): boolean =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2e || c === 0x2d;
const isLetter = (c: number): boolean => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
/** Where an authority ends: `/` or white space. */
const endsAuthority = (c: number): boolean => c === 0x2f || c <= 0x20 || c === 0x85 || c === 0xa0 || c === 0x2028 || c === 0x2029;

/**
 * `scheme://user:password@` → `scheme://user:***@`, for every URL in `text`, in one pass: each character is
 * looked at a bounded number of times (the scheme is read backwards only down to where the last URL ended).
 */
function maskUserinfo(text: string): string {
  let out = '';
  let copied = 0;
  let from = 0;
  for (let sep = text.indexOf('://', from); sep !== -1; sep = text.indexOf('://', from)) {
    const start = sep + 3;
    let end = start;
    let colon = -1;
    let at = -1;
    for (let c = text.charCodeAt(end); end < text.length && !endsAuthority(c); c = text.charCodeAt(++end)) {
      if (c === 0x3a && colon === -1) colon = end;
      else if (c === 0x40 && at === -1) at = end;
    }
    let s = sep;
    let letter = false;
    while (s > from && isSchemeChar(text.charCodeAt(s - 1))) {
      s--;
      if (isLetter(text.charCodeAt(s))) letter = true;
    }
    if (letter && at !== -1 && colon !== -1 && colon < at) {
      out += `${text.slice(copied, colon + 1)}***`;
      copied = at;
    }
    from = Math.max(end, start);
  }
  return copied === 0 ? text : out + text.slice(copied);
}
