/**
 * Second step of `npm run build`: links tsc's output (dist/cli.js and the decoding thread's dist/formats/threads/worker.js)
 * into dist/bundle/, the files `bucket-ingest`, `npm start` and the Docker image run.
 *
 * Why: Node 20 spends ~0.35 s of every start resolving, stat-ing and reading the ~800 modules of knex, undici,
 * yargs, pino and prom-client one by one (README → Performance). Bundled, that takes ~0.15 s: most of a
 * `run --once` cycle's fixed cost, and `status`/`inspect` answer sooner.
 *
 * What stays in node_modules: the database drivers (better-sqlite3 is a native addon; pg and mysql2 load only when a
 * URL names them) and the drivers knex can name but this package does not install. Bundled CommonJS packages get
 * a real `require` (createRequire) for Node's built-ins and those drivers.
 *
 * esbuild reads tsc's source maps, so dist/bundle/*.js.map lead back to src/*.ts (`NODE_OPTIONS=--enable-source-maps`).
 *
 * Then the dashboard (web/): its script and styles, uPlot included, into dist/dashboard/ under names that carry their
 * content's hash (served as immutable by src/http/assets.ts), and web/index.html with those names filled in.
 */
import { build } from 'esbuild';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');

const DRIVERS = ['better-sqlite3', 'pg', 'mysql2'];
/** Drivers knex requires by name for clients this package does not support or install. */
const UNUSED_KNEX_DRIVERS = ['sqlite3', 'mysql', 'mariadb', 'oracledb', 'tedious', 'pg-query-stream', 'pg-native'];

await rm(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { cli: 'dist/cli.js', worker: 'dist/formats/threads/worker.js' },
  outdir,
  bundle: true,
  // Shared code and the lazily imported command handlers become chunks: `--help` and `status` load no pipeline.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  external: [...DRIVERS, ...UNUSED_KNEX_DRIVERS].flatMap((name) => [name, `${name}/*`]),
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  // Bundled CommonJS that names its own directory (yargs' CommonJS build, for its locale files) gets the bundle's.
  define: { __dirname: 'import.meta.dirname' },
  logLevel: 'warning',
  metafile: true,
});
const inputs = Object.keys(result.metafile.inputs).length;
process.stdout.write(`bundle: ${inputs} modules into ${Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js')).length} files in dist/bundle\n`);

const webdir = join(root, 'dist', 'dashboard');
await rm(webdir, { recursive: true, force: true });
const web = await build({
  absWorkingDir: root,
  entryPoints: { app: 'web/app.ts' },
  outdir: webdir,
  entryNames: '[name]-[hash]',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
  metafile: true,
});
const built = Object.keys(web.metafile.outputs).map((f) => basename(f));
const named = (ext) => {
  const file = built.find((f) => f.startsWith('app-') && f.endsWith(ext));
  if (!file) throw new Error(`bundle: the dashboard build wrote no app-*${ext}`);
  return file;
};
const page = (await readFile(join(root, 'web', 'index.html'), 'utf8')).replace('{{app.js}}', named('.js')).replace('{{app.css}}', named('.css'));
await writeFile(join(webdir, 'index.html'), page);
process.stdout.write(`bundle: the dashboard into ${built.filter((f) => !f.endsWith('.map')).length + 1} files in dist/dashboard\n`);
