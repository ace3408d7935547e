import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The dashboard's files, built with the project by scripts/bundle.mjs into dist/dashboard/: `index.html` and
 * content-hashed `app-XXXX.js` / `.css` (uPlot bundled in). Nothing is fetched from elsewhere, so the page works offline.
 */
interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/**
 * Where the built files are: dist/dashboard beside dist/bundle (the CLI) and dist/http (tsc's output), or, run from
 * src/ (tests under tsx), the build's dist/dashboard.
 */
function assetDir(): string | null {
  const candidates = ['../dashboard/', '../../dist/dashboard/'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  return candidates.find((dir) => existsSync(join(dir, 'index.html'))) ?? null;
}

let loaded: Map<string, Asset> | null = null;

/** Reads the files once (a few hundred KB), on the first request for one. */
function assets(): Map<string, Asset> {
  if (loaded) return loaded;
  const out = new Map<string, Asset>();
  const dir = assetDir();
  if (dir !== null) {
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (type === undefined) continue;
      const body = readFileSync(join(dir, name));
      out.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
    }
  }
  loaded = out;
  return out;
}

/**
 * The page asks for nothing outside this server (`connect-src 'self'`: its data and events); it may not be framed.
 * uPlot sizes its elements through the CSSOM, which `style-src 'self'` allows.
 */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * Serves `/` (the page: revalidated every time, so a new build shows at once) and `/assets/<name>` (named by their
 * content's hash: cached for a year). Answers 304 to a matching If-None-Match. False when `path` is neither.
 */
export function serveAsset(req: IncomingMessage, res: ServerResponse, path: string): boolean {
  const name = path === '/' || path === '/index.html' ? 'index.html' : path.startsWith('/assets/') ? path.slice('/assets/'.length) : null;
  if (name === null || name.includes('/')) return false;
  const files = assets();
  const asset = files.get(name);
  if (asset === undefined) {
    if (name !== 'index.html') return false;
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end('the dashboard is not built: run `npm run build` (scripts/bundle.mjs writes dist/dashboard/)\n');
    return true;
  }
  const headers = {
    ...PAGE_HEADERS,
    'content-type': asset.type,
    etag: asset.etag,
    'cache-control': name === 'index.html' ? 'no-cache' : 'public, max-age=31536000, immutable',
  };
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  res.writeHead(200, { ...headers, 'content-length': asset.body.length });
  res.end(req.method === 'HEAD' ? undefined : asset.body);
  return true;
}
