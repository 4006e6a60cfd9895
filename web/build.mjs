// Bundles web/src/<entry>.js into api/web/static/dist/<entry>.js and <entry>.css (plus the
// fonts they use under dist/assets/). Plain IIFE scripts: each sets its window.Tradeflow* global.
// Run by `make install` (see the Makefile); exits non-zero on any error.

import { rmSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'api', 'web', 'static', 'dist');
const entries = ['form', 'viewer', 'modeler', 'form-editor', 'dmn', 'charts'];

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

function kib(bytes) {
  return `${(bytes / 1024).toFixed(1).padStart(8)} KiB`;
}

const started = process.hrtime.bigint();
try {
  // Start from an empty folder so that renamed or removed entries leave nothing behind.
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });

  const result = await build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(entries.map((name) => [name, join('web', 'src', `${name}.js`)])),
    outdir,
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2020',
    platform: 'browser',
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
    assetNames: 'assets/[name]-[hash]',
    loader: {
      '.woff': 'file',
      '.woff2': 'file',
      '.ttf': 'file',
      '.eot': 'file',
      '.svg': 'file',
      '.png': 'dataurl',
      '.gif': 'dataurl',
    },
    define: { 'process.env.NODE_ENV': '"production"' },
    metafile: true,
  });
  if (result.errors.length) throw new Error(`${result.errors.length} build error(s)`);

  const files = walk(outdir).sort();
  let total = 0;
  for (const file of files) {
    const size = statSync(file).size;
    total += size;
    console.log(`${kib(size)}  ${relative(root, file)}`);
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`${kib(total)}  total, ${files.length} files, built in ${ms.toFixed(0)} ms`);
} catch (error) {
  // esbuild has already printed its diagnostics; make sure make stops here.
  if (!error.errors) console.error(error);
  console.error('web/build.mjs: build failed');
  process.exit(1);
}
