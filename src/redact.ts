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
    return raw.replace(/\/\/([^/@:\s]*):[^/@\s]*@/g, '//$1:***@');
  }
  if (url.password) url.password = '***';
  else if (url.username && url.protocol.startsWith('http')) url.username = '***';
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) url.searchParams.set(name, '***');
  }
  return url.toString();
}

/** Masks every URL-with-credentials found inside free text (error messages from drivers quote them). */
export function redactText(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)([^/@:\s]*):([^/@\s]*)@/gi, '$1$2:***@')
    .replace(/([?&](?:password|token|access_token|secret|sig|signature|x-amz-signature|x-amz-security-token)=)[^&\s]*/gi, '$1***');
}
